package worker_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/worker"
)

// startPool runs a pool on the fixture's queue and returns it; the pool
// stops when the test ends.
func (f *fixture) startPool(h worker.Handler, opts ...worker.Option) (*worker.Pool, func() error) {
	f.t.Helper()
	opts = append([]worker.Option{worker.WithSender(f.snd)}, opts...)
	pool, err := worker.NewPool(f.conn, f.topo, h, opts...)
	if err != nil {
		f.t.Fatalf("NewPool: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(60 * time.Second):
			return errors.New("Run did not return within 60s of its ctx ending")
		}
	}
	f.t.Cleanup(func() { _ = stop() })
	return pool, stop
}

// setPaused pauses or resumes the fixture's queue; the test's end resumes
// it (deleting the marker queue).
func (f *fixture) setPaused(paused bool) {
	f.t.Helper()
	ctx := brokertest.Context(f.t, 30*time.Second)
	if err := broker.SetPaused(ctx, f.conn, f.queue, paused); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = broker.SetPaused(context.Background(), f.conn, f.queue, false) })
}

// queueInfo is the fixture queue's ready jobs and consumers.
func (f *fixture) queueInfo() broker.QueueInfo {
	f.t.Helper()
	d := broker.NewDeclarer(f.conn)
	defer d.Close(context.Background())
	info, err := d.QueueInfo(brokertest.Context(f.t, 30*time.Second), f.queue)
	if err != nil {
		f.t.Fatal(err)
	}
	return info
}

// TestPauseHoldsJobsInTheQueueThenResume: a pause heard while jobs run lets
// them finish, takes no more (the jobs published meanwhile wait in the
// queue, none retried or dead-lettered), and a resume handles every one,
// once.
func TestPauseHoldsJobsInTheQueueThenResume(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	seen := newLedger()
	mux := worker.NewMux()
	mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
		time.Sleep(5 * time.Millisecond)
		seen.add(job.ID)
		return nil
	})
	pool, _ := f.startPool(mux, worker.WithQueue(f.queue, worker.Concurrency(4), worker.Prefetch(32)),
		worker.WithObserver(worker.OutcomeFunc(seen.observe)))
	first := f.publish("slow", make([]any, 300)...)
	testkit.WaitFor(t, 30*time.Second, "some jobs handled", func() bool { return seen.count() >= 20 })

	f.setPaused(true)
	testkit.WaitFor(t, 30*time.Second, "the pool to hear the pause", func() bool { return slices.Equal(pool.Paused(), []string{f.queue}) })
	testkit.WaitFor(t, 30*time.Second, "the consumer gone and the jobs left back in the queue", func() bool {
		info := f.queueInfo()
		return info.Consumers == 0 && seen.count()+info.Messages == len(first)
	})
	if err := pool.Ready(); err != nil {
		t.Errorf("Ready while paused: %v; want ready (a pause is what the operator asked)", err)
	}
	handled := seen.count()
	if handled == len(first) {
		t.Fatal("every job was handled before the pause took effect; the test proves nothing")
	}
	second := f.publish("slow", make([]any, 50)...)
	testkit.WaitFor(t, 30*time.Second, "the new jobs in the queue", func() bool {
		return f.queueInfo().Messages == len(first)-handled+len(second)
	})
	if got := seen.count(); got != handled {
		t.Errorf("%d jobs handled while paused", got-handled)
	}
	if n := seen.status(worker.Retried) + seen.status(worker.DeadLettered); n != 0 {
		t.Errorf("%d jobs retried or dead-lettered around the pause, want 0", n)
	}

	f.setPaused(false)
	testkit.WaitFor(t, 60*time.Second, "every job handled after the resume", func() bool { return seen.count() >= len(first)+len(second) })
	for _, id := range slices.Concat(first, second) {
		if n := seen.handled[id]; n != 1 {
			t.Errorf("job %s handled %d times, want once", id, n)
		}
	}
	if st := pool.Status(); st != "" {
		t.Errorf("Status after the resume: %q, want none", st)
	}
}

// TestPauseSeenByAPoolStartedLater: a pool started while its queue is
// paused does not consume it, and consumes it once resumed.
func TestPauseSeenByAPoolStartedLater(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	f.setPaused(true)
	ids := f.publish("ok", make([]any, 20)...)
	seen := newLedger()
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
		seen.add(job.ID)
		return nil
	})
	pool, stop := f.startPool(mux)
	testkit.WaitFor(t, 30*time.Second, "the pool running and ready", func() bool { return pool.Ready() == nil })
	if got := pool.Paused(); !slices.Equal(got, []string{f.queue}) {
		t.Fatalf("Paused() = %v, want [%s]", got, f.queue)
	}
	if info := f.queueInfo(); info.Consumers != 0 || info.Messages != len(ids) {
		t.Fatalf("a pool started on a paused queue: %d consumer(s), %d job(s) in the queue; want 0 and %d", info.Consumers, info.Messages, len(ids))
	}
	if seen.count() != 0 {
		t.Fatalf("%d jobs handled on a paused queue", seen.count())
	}
	f.setPaused(false)
	testkit.WaitFor(t, 30*time.Second, "every job handled after the resume", func() bool { return seen.count() >= len(ids) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if seen.handled[id] != 1 {
			t.Errorf("job %s handled %d times", id, seen.handled[id])
		}
	}
}

// TestPauseStopWhilePaused: a pool stops cleanly while a queue is paused.
func TestPauseStopWhilePaused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	f.setPaused(true)
	pool, stop := f.startPool(worker.NewMux())
	testkit.WaitFor(t, 30*time.Second, "the pool ready", func() bool { return pool.Ready() == nil })
	if err := stop(); err != nil {
		t.Fatalf("Run after a stop while paused: %v", err)
	}
}
