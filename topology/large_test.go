package topology

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// largeFile writes a topology file with n work queues, each with a binding
// and a route, and an exchange for every 100 queues: the shape of a large
// deployment, written the way the docs write files.
func largeFile(n int) []byte {
	var b strings.Builder
	b.WriteString("version: 1\ndefaults:\n  queue_type: quorum\n  retry: {max_attempts: 5, initial_interval: 1s}\n")
	b.WriteString("exchanges:\n")
	for x := 0; x < (n+99)/100; x++ {
		fmt.Fprintf(&b, "  jobs.%04d:\n    type: direct\n", x)
	}
	b.WriteString("queues:\n")
	for i := range n {
		fmt.Fprintf(&b, "  work.%06d:\n    delivery_limit: 20\n", i)
	}
	b.WriteString("bindings:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - exchange: jobs.%04d\n    queue: work.%06d\n    routing_key: job.%06d\n", i/100, i, i)
	}
	b.WriteString("routes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  job.%06d: {exchange: jobs.%04d}\n", i, i/100)
	}
	return []byte(b.String())
}

// largeTopicFile writes a topology file with n work queues bound to one
// topic exchange by patterns, each dead-lettering to its own queue through
// one direct exchange, and a route per work queue: the shape that makes
// routing and dead-letter checks try every binding of an exchange for every
// route and queue, unless they are indexed.
func largeTopicFile(n int) []byte {
	var b strings.Builder
	b.WriteString("version: 1\nexchanges:\n  jobs: {type: topic}\n  dead: {type: direct}\nqueues:\n")
	for i := range n {
		fmt.Fprintf(&b, "  work.%06d: {dead_letter_exchange: dead, dead_letter_routing_key: dead.%06d}\n  dead.%06d:\n", i, i, i)
	}
	b.WriteString("bindings:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {exchange: jobs, queue: work.%06d, routing_key: \"tenant.%06d.#\"}\n", i, i)
		fmt.Fprintf(&b, "  - {exchange: dead, queue: dead.%06d, routing_key: dead.%06d}\n", i, i)
	}
	b.WriteString("routes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  job.%06d: {exchange: jobs, routing_key: tenant.%06d.run}\n", i, i)
	}
	return []byte(b.String())
}

// TestLargeFiles checks that files with tens of thousands of entities load,
// resolve and plan.
func TestLargeFiles(t *testing.T) {
	tests := []struct {
		name string
		n    int
		file func(n int) []byte
		// per work queue, file and derived dead-letter queues (each
		// file queue has a quarantine too)
		fileQueues, derivedQueues int
		// where the last job type goes
		lastQueue string
	}{
		{"10k queues", 10_000, largeFile, 1, 1, "work.009999"},
		{"50k queues", 50_000, largeFile, 1, 1, "work.049999"},
		{"20k queues on a topic exchange", 20_000, largeTopicFile, 2, 1, "work.019999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && tt.n > 20_000 {
				t.Skip("a large file; runs without -short")
			}
			top, err := Parse("large.yaml", tt.file(tt.n))
			if err != nil {
				t.Fatalf("Parse: %.2000v", err)
			}
			if len(top.Warnings) > 0 {
				t.Errorf("warnings: %.2000v", top.Warnings)
			}
			if got, want := len(top.WorkQueues()), tt.fileQueues*tt.n; got != want {
				t.Errorf("%d work queues, want %d", got, want)
			}
			if got := len(top.Routes); got != tt.n {
				t.Errorf("%d routes, want %d", got, tt.n)
			}
			// Then come the dead-letter queues, a quarantine per work
			// queue, the delay levels and the queue for undeliverable
			// delayed jobs.
			if got, want := len(top.Queues), (2*tt.fileQueues+tt.derivedQueues)*tt.n+DelayLevels+1; got != want {
				t.Errorf("%d queues, want %d", got, want)
			}
			if qs, err := top.QueuesFor(fmt.Sprintf("job.%06d", tt.n-1)); err != nil || len(qs) != 1 || qs[0] != tt.lastQueue {
				t.Errorf("QueuesFor(last job) = %v, %v; want [%s]", qs, err, tt.lastQueue)
			}
			// Against an empty broker, everything is to create.
			changes := Plan(top, Live{})
			if got, want := len(changes), len(top.Exchanges)+len(top.Queues)+len(top.Bindings); got != want {
				t.Errorf("Plan: %d changes, want %d", got, want)
			}
			// Against a broker that has it all, nothing changes.
			live := Live{Exchanges: top.Exchanges, Queues: top.Queues, Bindings: top.Bindings}
			if changes := Plan(top, live); len(changes) != 0 {
				t.Errorf("Plan against itself: %d changes, first %v", len(changes), changes[0])
			}
		})
	}
}

// benchmarkLoad measures Load of a generated file: time and memory, from
// reading the file to the resolved Topology.
func benchmarkLoad(b *testing.B, data []byte) {
	path := filepath.Join(b.TempDir(), "large.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatalf("Load: %.2000v", err)
		}
	}
}

func BenchmarkLoad10k(b *testing.B)      { benchmarkLoad(b, largeFile(10_000)) }
func BenchmarkLoad50k(b *testing.B)      { benchmarkLoad(b, largeFile(50_000)) }
func BenchmarkLoadTopic20k(b *testing.B) { benchmarkLoad(b, largeTopicFile(20_000)) }

// BenchmarkRefuseFlowList measures Load refusing a 50 MB flow list, which
// has far more nodes than MaxNodes.
func BenchmarkRefuseFlowList(b *testing.B) {
	path := filepath.Join(b.TempDir(), "flow.yaml")
	data := []byte("queues: [" + strings.Repeat("{name: a}, ", 50<<20/11) + "]\n")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(path); err == nil {
			b.Fatal("Load succeeded")
		}
	}
}
