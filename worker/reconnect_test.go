package worker_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/worker"
)

// TestPoolConsumesAgainAfterItsConnectionIsClosed: the broker closes the
// pool's connection twice while jobs flow; the pool consumes again on the
// next connection, and every job is handled (some twice: those whose ack
// was lost with the connection), none lost, Run still running.
func TestPoolConsumesAgainAfterItsConnectionIsClosed(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	name := brokertest.ConnName(t, "pool")
	f.conn = testkit.Dial(t, name, broker.WithReconnectBackoff(50*time.Millisecond, time.Second))

	l := newLedger()
	var seen atomic.Int64
	h := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		l.add(job.ID)
		seen.Add(1)
		time.Sleep(time.Millisecond)
		return nil
	})
	stop := f.run(h, worker.WithObserver(worker.OutcomeFunc(l.observe)))

	const n = 3000
	payloads := make([]any, n)
	for i := range payloads {
		payloads[i] = i
	}
	done := make(chan []string, 1)
	go func() { done <- f.publish(jobTypes[0], payloads...) }()
	for _, at := range []int64{n / 4, n / 2} {
		testkit.WaitFor(t, 30*time.Second, "jobs to be handled", func() bool { return seen.Load() >= at })
		closeLiveConnection(t, f.conn, name)
	}
	ids := testkit.Recv(t, done, 60*time.Second, "the jobs to be published")
	testkit.WaitFor(t, 60*time.Second, "every job to be handled", func() bool { return l.count() >= n })
	testkit.WaitFor(t, 10*time.Second, "the queue to be empty", func() bool { return brokertest.Depth(t, f.queue) == 0 })

	dups := 0
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		switch c := l.handled[id]; {
		case c == 0:
			t.Errorf("job %s never handled", id)
		case c > 1:
			dups += c - 1
		}
	}
	if f.conn.Reconnects() < 2 {
		t.Errorf("reconnects %d, want 2", f.conn.Reconnects())
	}
	t.Logf("%d jobs, %d handled twice (acks lost with the connection), %d reconnections", n, dups, f.conn.Reconnects())
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestNotReadyWhileDisconnected: between a lost connection and the next,
// the pool says it is not ready, then ready again.
func TestNotReadyWhileDisconnected(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	name := brokertest.ConnName(t, "ready")
	// After the loss the Conn tries the dead URL first, then waits a
	// second before the live one: a window to see.
	conn, err := broker.Dial(brokertest.Context(t, 30*time.Second),
		[]string{"amqp://guest:guest@127.0.0.1:1/", brokertest.URL(t)},
		broker.WithName(name), broker.WithReconnectBackoff(time.Second, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	pool, err := worker.NewPool(conn, f.topo, worker.HandlerFunc(func(context.Context, *worker.Job) error { return nil }), worker.WithSender(f.snd))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(ctx) }()
	testkit.WaitFor(t, 10*time.Second, "the pool to be ready", func() bool { return pool.Ready() == nil })
	brokertest.CloseConnections(t, name)
	testkit.WaitFor(t, 10*time.Second, "the pool to report the lost connection", func() bool { return pool.Ready() != nil })
	testkit.WaitFor(t, 20*time.Second, "the pool to be ready again", func() bool { return pool.Ready() == nil })
	cancel()
	if err := testkit.Recv(t, errc, 20*time.Second, "Run to return"); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestPoolConsumesAgainWhileAHandlerIsStuck: the pool's connection is lost
// while one of its two handlers is stuck in a long job. The pool consumes
// again at once, and its free slot handles the jobs that follow while the
// stuck one still runs; never more than two handlers run at once.
func TestPoolConsumesAgainWhileAHandlerIsStuck(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	name := brokertest.ConnName(t, "stuck")
	f.conn = testkit.Dial(t, name, broker.WithReconnectBackoff(50*time.Millisecond, time.Second))

	l := newLedger()
	var running, most atomic.Int64
	stuck, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	mux := worker.NewMux()
	track := func() func() {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		return func() { running.Add(-1) }
	}
	mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
		defer track()()
		first := false
		once.Do(func() { first = true })
		if first {
			close(stuck)
			<-release
		}
		l.add(job.ID)
		return nil
	})
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
		defer track()()
		l.add(job.ID)
		return nil
	})
	stop := f.run(mux, worker.WithQueue(f.queue, worker.Concurrency(2)), worker.WithObserver(worker.OutcomeFunc(l.observe)))

	slow := f.publish("slow", 0)[0]
	testkit.Recv(t, stuck, 10*time.Second, "the slow job to start")
	brokertest.CloseConnections(t, name)
	payloads := make([]any, 20)
	for i := range payloads {
		payloads[i] = i
	}
	ids := f.publish("ok", payloads...)
	testkit.WaitFor(t, 20*time.Second, "the jobs after the loss to be handled while the slow one is stuck", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, id := range ids {
			if l.handled[id] == 0 {
				return false
			}
		}
		return true
	})
	close(release)
	// Its ack was lost with the channel: the job comes back and is handled.
	testkit.WaitFor(t, 20*time.Second, "the slow job to be handled", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.handled[slow] > 0
	})
	testkit.WaitFor(t, 10*time.Second, "the queue to be empty", func() bool { return brokertest.Depth(t, f.queue) == 0 })
	if m := most.Load(); m > 2 {
		t.Errorf("%d handlers ran at once, want at most the concurrency, 2", m)
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// closeLiveConnection has the broker close conn's current connection and
// waits for conn to reconnect. The broker's listing may still show the
// connection closed a moment ago, and not yet the new one: closing that
// one is no fault, so it tries again until conn has reconnected.
func closeLiveConnection(t *testing.T, conn *broker.Conn, name string) {
	t.Helper()
	before := conn.Reconnects()
	deadline := time.Now().Add(30 * time.Second)
	for {
		brokertest.CloseConnections(t, name)
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if conn.Reconnects() > before {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection %s: not reconnected 30s after the broker was asked to close it (reconnects %d)", name, conn.Reconnects())
		}
	}
}
