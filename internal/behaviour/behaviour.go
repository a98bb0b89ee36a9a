package behaviour

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// Target is a broker the scenarios run against.
type Target interface {
	// Apply declares the topology file text on the broker and returns it;
	// what it declared is deleted when the test ends (on a shared broker,
	// the delay cascade and dead-letter exchange stay).
	Apply(t testing.TB, text string) *topology.Topology
	// Dial opens a connection to the broker, closed when the test ends.
	Dial(t testing.TB) *broker.Conn
	// Pass lets d of the broker's time go by: the emulation advances its
	// virtual clock; RabbitMQ is given d of real time.
	Pass(t testing.TB, d time.Duration)
	// Await waits until cond holds, failing t after Timeout of real time.
	// Meanwhile the broker's time moves on as far as needed: the
	// emulation advances its clock to the next delay or TTL whenever the
	// condition does not hold yet; RabbitMQ waits in real time.
	Await(t testing.TB, what string, cond func() bool)
}

// Timeout bounds every wait of the scenarios, in real time. On RabbitMQ
// the longest delay of a scenario is a few seconds.
const Timeout = 30 * time.Second

// Run runs every scenario against target, each as a subtest with names of
// its own.
func Run(t *testing.T, target Target) {
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) { s.run(t, target) })
	}
}

type scenario struct {
	name string
	run  func(t *testing.T, target Target)
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// name returns a name unique to the test for a queue, exchange or job type.
func name(t testing.TB, what string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	test := unsafe.ReplaceAllString(t.Name(), "_")
	if len(test) > 60 {
		test = test[len(test)-60:]
	}
	return "test.behaviour." + test + "." + what + "." + hex.EncodeToString(b[:])
}

func ctxOf(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ledger accounts for every job a scenario publishes: each must end
// with exactly one outcome (handled successfully, dead-lettered, purged).
type ledger struct {
	mu        sync.Mutex
	published []string
	attempts  map[string][]int    // attempt numbers handled, in order
	outcomes  map[string][]string // "handled", "dead-lettered", "purged"
}

func newLedger() *ledger {
	return &ledger{attempts: map[string][]int{}, outcomes: map[string][]string{}}
}

// publish publishes job (given an id here) with pub and records it.
func (l *ledger) publish(t testing.TB, pub *broker.Publisher, job broker.Job, opts ...broker.PublishOption) string {
	t.Helper()
	if job.ID == "" {
		id, err := broker.NewJobID()
		must(t, err)
		job.ID = id
	}
	if err := pub.Publish(ctxOf(t), job, opts...); err != nil {
		t.Fatalf("publish %s: %v", job.ID, err)
	}
	l.published1(job.ID)
	return job.ID
}

func (l *ledger) published1(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.published = append(l.published, id)
}

// handler wraps fn, recording each attempt and each success.
func (l *ledger) handler(fn func(ctx context.Context, job *worker.Job) error) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		err := fn(ctx, job)
		l.mu.Lock()
		l.attempts[job.ID] = append(l.attempts[job.ID], job.Attempt)
		l.mu.Unlock()
		if err == nil {
			l.outcome(job.ID, "handled")
		}
		return err
	})
}

// outcome records how a job ended.
func (l *ledger) outcome(id, how string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes[id] = append(l.outcomes[id], how)
}

func (l *ledger) attemptsOf(id string) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.attempts[id])
}

// count is the number of outcomes recorded as how.
func (l *ledger) count(how string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, os := range l.outcomes {
		for _, o := range os {
			if o == how {
				n++
			}
		}
	}
	return n
}

// deadLettered records the entries read from a dead-letter queue.
func (l *ledger) deadLettered(es []deadletter.Entry) {
	for _, e := range es {
		l.outcome(e.Envelope.ID, "dead-lettered")
	}
}

// check fails t on a published job without an outcome (lost), one with
// two or more (duplicated), and an id that was never published.
func (l *ledger) check(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	known := map[string]bool{}
	for _, id := range l.published {
		known[id] = true
		switch os := l.outcomes[id]; {
		case len(os) == 0:
			t.Errorf("ledger: job %s lost: published, then neither handled successfully, dead-lettered nor purged (attempts %v)", id, l.attempts[id])
		case len(os) > 1:
			t.Errorf("ledger: job %s duplicated: %v", id, os)
		}
	}
	for id := range l.attempts {
		if !known[id] {
			t.Errorf("ledger: job %s handled but never published", id)
		}
	}
	for id, os := range l.outcomes {
		if !known[id] {
			t.Errorf("ledger: job %s %v but never published", id, os)
		}
	}
}

// runPool runs a pool of h on conn until the test ends.
func runPool(t testing.TB, conn *broker.Conn, topo *topology.Topology, h worker.Handler, opts ...worker.Option) {
	t.Helper()
	pool, err := worker.NewPool(conn, topo, h, opts...)
	must(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1) // Run's one result
	go func() { done <- pool.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("pool: %v", err)
		}
	})
}

// depth is the ready message count of queue, by passive declare.
func depth(t testing.TB, conn *broker.Conn, queue string) int {
	t.Helper()
	ctx := ctxOf(t)
	d := broker.NewDeclarer(conn)
	defer d.Close(ctx)
	info, err := d.QueueInfo(ctx, queue)
	must(t, err)
	return info.Messages
}

// takeDeadLetters waits for n messages in the dead-letter queue dlq,
// reads and acks them, and returns them as warren dlq list reads them.
func takeDeadLetters(t testing.TB, target Target, conn *broker.Conn, dlq string, n int) []deadletter.Entry {
	t.Helper()
	target.Await(t, dlq+" to hold its dead letters", func() bool { return depth(t, conn, dlq) >= n })
	ctx := ctxOf(t)
	g := broker.NewGetter(conn, dlq)
	defer g.Close(ctx)
	var out []deadletter.Entry
	for {
		d, ok, err := g.Get(ctx)
		must(t, err)
		if !ok {
			break
		}
		out = append(out, deadletter.NewEntry(d))
		must(t, d.Ack())
	}
	if len(out) != n {
		t.Fatalf("%s held %d dead letters, want %d", dlq, len(out), n)
	}
	return out
}
