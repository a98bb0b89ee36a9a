package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/worker"
)

// TestPoolConsumesAgainAfterItsConnectionIsClosed: the broker closes the
// pool's connection twice while jobs flow; the pool consumes again on the
// next connection, and every job is handled (some twice: those whose ack
// was lost with the connection), none lost, Run still running.
func TestPoolConsumesAgainAfterItsConnectionIsClosed(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	name := brokertest.ConnName(t, "pool")
	conn, err := broker.Dial(brokertest.Context(t, 30*time.Second), []string{brokertest.URL(t)},
		broker.WithName(name), broker.WithReconnectBackoff(50*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.conn = conn

	l := newLedger()
	var seen atomic.Int64
	h := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		l.add(job.ID)
		seen.Add(1)
		time.Sleep(time.Millisecond)
		return nil
	})
	stop := f.run(h, worker.WithObserver(l.observe))

	const n = 3000
	payloads := make([]any, n)
	for i := range payloads {
		payloads[i] = i
	}
	done := make(chan []string, 1)
	go func() { done <- f.publish(jobTypes[0], payloads...) }()
	for _, at := range []int64{n / 4, n / 2} {
		waitFor(t, 30*time.Second, "jobs to be handled", func() bool { return seen.Load() >= at })
		brokertest.CloseConnections(t, name)
	}
	ids := recv(t, done, 60*time.Second, "the jobs to be published")
	waitFor(t, 60*time.Second, "every job to be handled", func() bool { return l.count() >= n })
	waitFor(t, 10*time.Second, "the queue to be empty", func() bool { return brokertest.Depth(t, f.queue) == 0 })

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
	if conn.Reconnects() < 2 {
		t.Errorf("reconnects %d, want 2", conn.Reconnects())
	}
	t.Logf("%d jobs, %d handled twice (acks lost with the connection), %d reconnections", n, dups, conn.Reconnects())
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
	pool, err := worker.NewPool(conn, f.topo, worker.HandlerFunc(func(context.Context, *worker.Job) error { return nil }), worker.WithPublisher(f.pub))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(ctx) }()
	waitFor(t, 10*time.Second, "the pool to be ready", func() bool { return pool.Ready() == nil })
	brokertest.CloseConnections(t, name)
	waitFor(t, 10*time.Second, "the pool to report the lost connection", func() bool { return pool.Ready() != nil })
	waitFor(t, 20*time.Second, "the pool to be ready again", func() bool { return pool.Ready() == nil })
	cancel()
	if err := recv(t, errc, 20*time.Second, "Run to return"); err != nil {
		t.Errorf("Run: %v", err)
	}
}
