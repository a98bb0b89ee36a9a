// Package queuetest gives tests a work queue on the test broker, routed
// from a few job types, with a publisher and a way to run worker pools on
// it and wait for the outcomes of their jobs.
package queuetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// Retry is the queue's retry policy: three attempts, one second apart.
const Retry = "{max_attempts: 3, initial_interval: 1s, jitter: 0}"

// Fixture is one test's exchange and classic work queue (with its
// derived dead-letter and quarantine queues), deleted at cleanup.
type Fixture struct {
	t        testing.TB
	Exchange string
	Queue    string
	YAML     string // the topology file
	Topo     *topology.Topology
	Pub      *broker.Publisher

	mu       sync.Mutex
	outcomes []worker.Outcome
}

// New declares the fixture's topology, routing the job types given to
// its queue.
func New(t testing.TB, types ...string) *Fixture {
	t.Helper()
	f := &Fixture{t: t, Exchange: brokertest.Name(t, "x"), Queue: brokertest.Name(t, "q")}
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nexchanges:\n  %s: {type: direct}\nqueues:\n  %s:\n    type: classic\n    retry: %s\n", f.Exchange, f.Queue, Retry)
	fmt.Fprintf(&b, "bindings:\n  - exchange: %s\n    queue: %s\n    routing_keys: [%s]\nroutes:\n", f.Exchange, f.Queue, strings.Join(types, ", "))
	for _, jt := range types {
		fmt.Fprintf(&b, "  %s: {exchange: %s}\n", jt, f.Exchange)
	}
	f.YAML = b.String()
	f.Topo = topotest.Apply(t, f.YAML)
	pub, err := broker.NewPublisher(testkit.Dial(t, "queuetest-publish"), broker.WithRouter(f.Topo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	f.Pub = pub
	return f
}

// Publish publishes job, failing the test on an error.
func (f *Fixture) Publish(job broker.Job) {
	f.t.Helper()
	if err := f.Pub.Publish(brokertest.Context(f.t, 30*time.Second), job); err != nil {
		f.t.Fatalf("publish %s: %v", job.ID, err)
	}
}

// Run starts a pool of h on the fixture's queue, on a connection of its
// own, with opts after the fixture's (an observer recording outcomes). It
// returns a func that stops the pool and waits for it, called at cleanup
// too.
func (f *Fixture) Run(h worker.Handler, opts ...worker.Option) (stop func()) {
	f.t.Helper()
	conn := testkit.Dial(f.t, "queuetest-consume")
	opts = append([]worker.Option{worker.WithObserver(worker.OutcomeFunc(f.record))}, opts...)
	pool, err := worker.NewPool(conn, f.Topo, h, opts...)
	if err != nil {
		f.t.Fatalf("NewPool: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := testkit.Recv(f.t, errc, 60*time.Second, "the pool to stop"); err != nil {
				f.t.Errorf("pool: %v", err)
			}
		})
	}
	f.t.Cleanup(stop)
	return stop
}

func (f *Fixture) record(o worker.Outcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomes = append(f.outcomes, o)
}

// Outcomes returns the outcomes of the jobs the fixture's pools settled,
// in order.
func (f *Fixture) Outcomes() []worker.Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]worker.Outcome(nil), f.outcomes...)
}

// Count returns how many outcomes have status s.
func (f *Fixture) Count(s worker.Status) int {
	n := 0
	for _, o := range f.Outcomes() {
		if o.Status == s {
			n++
		}
	}
	return n
}

// WaitCount waits until n outcomes have status s, failing the test after
// timeout.
func (f *Fixture) WaitCount(s worker.Status, n int, timeout time.Duration) {
	f.t.Helper()
	testkit.WaitFor(f.t, timeout, fmt.Sprintf("%d jobs %s", n, s), func() bool { return f.Count(s) >= n })
}
