package worker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// TestGracefulShutdownLosesNothing stops a pool while jobs are in flight
// and prefetched: the ones in flight finish and are acked, the prefetched
// ones go back to the queue, and another pool handles exactly those.
func TestGracefulShutdownLosesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	const n = 200
	ids := f.publish("slow", make([]any, n)...)

	first := newLedger()
	mux := worker.NewMux()
	mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
		time.Sleep(50 * time.Millisecond)
		first.add(job.ID)
		return nil
	})
	stop := f.run(mux, worker.WithQueue(f.queue, worker.Concurrency(4), worker.Prefetch(16)), worker.WithObserver(worker.OutcomeFunc(first.observe)))
	testkit.WaitFor(t, 30*time.Second, "some jobs handled", func() bool { return first.count() >= 20 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	handled := first.count()
	if handled == n {
		t.Fatal("every job was handled before the shutdown; the test proves nothing")
	}
	if got := first.status(worker.Succeeded); got != handled {
		t.Errorf("%d outcomes Succeeded, %d jobs handled", got, handled)
	}
	// The prefetched jobs no handler took were returned, and observed.
	if got := first.status(worker.Requeued); got < 1 || got > 16 {
		t.Errorf("%d outcomes Requeued, want the prefetched jobs (1 to 16)", got)
	}
	if d := brokertest.Depth(t, f.queue); d != n-handled {
		t.Errorf("after shutdown %d jobs are in the queue, want %d (handled %d of %d): jobs were lost or left unacked", d, n-handled, handled, n)
	}

	second := newLedger()
	mux2 := worker.NewMux()
	mux2.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
		second.add(job.ID)
		return nil
	})
	stop2 := f.run(mux2, worker.WithObserver(worker.OutcomeFunc(second.observe)))
	testkit.WaitFor(t, 30*time.Second, "the rest handled", func() bool { return first.count()+second.count() >= n })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	// Returned at a graceful shutdown, they are not suspects: none of them
	// was running when the pool stopped, so none has to run alone.
	if got := second.status(worker.Quarantined); got != 0 {
		t.Errorf("%d jobs returned at shutdown were quarantined, want 0", got)
	}
	for _, id := range ids {
		a, b := first.handled[id], second.handled[id]
		if a+b != 1 {
			t.Errorf("job %s handled %d times before the shutdown and %d after", id, a, b)
		}
	}
}

// TestShutdownDeadlineReturnsJobUntouched: a job still running at the
// shutdown deadline has its ctx cancelled and goes back to the queue as it
// was, not retried or dead-lettered.
func TestShutdownDeadlineReturnsJobUntouched(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	started := make(chan struct{})
	var once sync.Once
	mux := worker.NewMux()
	mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return ctx.Err()
	})
	l := newLedger()
	stop := f.run(mux, worker.WithShutdownTimeout(300*time.Millisecond), worker.WithObserver(worker.OutcomeFunc(l.observe)))
	id := f.publish("slow", 1)[0]
	testkit.Recv(t, (<-chan struct{})(started), 20*time.Second, "the handler to start")
	begin := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if el := time.Since(begin); el > 10*time.Second {
		t.Errorf("shutdown took %s with a 300ms deadline", el)
	}
	if got := l.status(worker.Requeued); got != 1 {
		t.Errorf("%d outcomes Requeued, want 1", got)
	}
	d := brokertest.Get(t, f.queue, 5*time.Second)
	if d.MessageId != id || !d.Redelivered {
		t.Errorf("got %s (redelivered %v), want %s back", d.MessageId, d.Redelivered, id)
	}
	if a, ok := d.Headers[broker.HeaderAttempt]; ok {
		t.Errorf("attempt header %v, want none (the first attempt): the job was changed", a)
	}
	if _, ok := d.Headers[broker.HeaderError]; ok {
		t.Error("the job came back with a failure recorded")
	}
	if n := brokertest.Depth(t, topology.DeadLetterQueueName(f.queue)); n != 0 {
		t.Errorf("%d jobs dead-lettered", n)
	}
}

// The child worker process of TestWorkerKilledMidJobLosesNothing: it
// consumes the queue named in the environment and never finishes a job.
const (
	childEnv      = "WARREN_TEST_CHILD_TOPOLOGY"
	childQueueEnv = "WARREN_TEST_CHILD_QUEUE"
	childURLEnv   = "WARREN_TEST_CHILD_URL"
)

func childWorker() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child worker:", err)
		return 1
	}
	topo, err := topology.Parse("child.yaml", []byte(os.Getenv(childEnv)))
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	conn, err := broker.Dial(ctx, []string{os.Getenv(childURLEnv)}, broker.WithName("worker-test-child"))
	if err != nil {
		return fail(err)
	}
	var mu sync.Mutex
	h := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		mu.Lock()
		fmt.Printf("started %s\n", job.ID)
		mu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	})
	pool, err := worker.NewPool(conn, topo, h, worker.WithQueue(os.Getenv(childQueueEnv), worker.Concurrency(4), worker.Prefetch(8)))
	if err != nil {
		return fail(err)
	}
	if err := pool.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// TestWorkerKilledMidJobLosesNothing kills a worker process with SIGKILL
// while it holds jobs, in its handlers and prefetched; another worker then
// handles every job.
func TestWorkerKilledMidJobLosesNothing(t *testing.T) {
	t.Parallel()
	for _, qt := range []string{"classic", "quorum"} {
		t.Run(qt, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOpts{queueType: qt})
			const n = 50
			ids := f.publish("slow", make([]any, n)...)

			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), childEnv+"="+f.yaml, childQueueEnv+"="+f.queue, childURLEnv+"="+brokertest.URL(t))
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			started := map[string]bool{}
			sc := bufio.NewScanner(out)
			for len(started) < 4 && sc.Scan() {
				if id, ok := strings.CutPrefix(sc.Text(), "started "); ok {
					started[id] = true
				}
			}
			if len(started) < 4 {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the child worker started %d jobs, want 4", len(started))
			}
			if err := cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown, no acks
				t.Fatal(err)
			}
			cmd.Wait()

			l := newLedger()
			var mu sync.Mutex
			redelivered := map[string]bool{}
			mux := worker.NewMux()
			mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
				l.add(job.ID)
				mu.Lock()
				redelivered[job.ID] = job.Redelivered
				mu.Unlock()
				return nil
			})
			stop := f.run(mux)
			testkit.WaitFor(t, 60*time.Second, "every job handled", func() bool { return l.count() == n })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				if l.handled[id] == 0 {
					t.Errorf("job %s lost", id)
				}
			}
			for id := range started {
				if !redelivered[id] {
					t.Errorf("job %s, held by the killed worker, was not flagged as redelivered", id)
				}
			}
		})
	}
}

func TestScheduledJobArrivesOnTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	arrived := make(chan time.Time, 1)
	mux := worker.NewMux()
	mux.HandleFunc("later", func(ctx context.Context, job *worker.Job) error {
		arrived <- time.Now()
		return nil
	})
	f.run(mux)
	begin := time.Now()
	if err := f.pub.Publish(brokertest.Context(t, 10*time.Second), broker.Job{Type: "later", Payload: 1}, broker.In(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-arrived:
		checkDelay(t, "scheduled job", at.Sub(begin), 3*time.Second)
	case <-time.After(15 * time.Second):
		t.Fatal("the scheduled job never arrived")
	}
}

// TestReadyFollowsTheConsumers: a pool is ready only while it consumes
// every queue and is not shutting down.
func TestReadyFollowsTheConsumers(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		started <- struct{}{}
		<-release
		return nil
	})
	pool, err := worker.NewPool(f.conn, f.topo, h, worker.WithSender(f.snd), worker.WithShutdownTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Ready(); !errors.Is(err, worker.ErrNotReady) {
		t.Fatalf("before Run: Ready = %v, want ErrNotReady", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(ctx) }()
	testkit.WaitFor(t, 10*time.Second, "the pool to be ready", func() bool { return pool.Ready() == nil })

	// Draining: not ready while the job in flight finishes.
	f.publish(jobTypes[0], 1)
	testkit.Recv(t, started, 10*time.Second, "the job to start")
	cancel()
	testkit.WaitFor(t, 10*time.Second, "the pool to report draining", func() bool {
		err := pool.Ready()
		return err != nil && strings.Contains(err.Error(), "shutting down")
	})
	close(release)
	if err := testkit.Recv(t, errc, 20*time.Second, "Run to return"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := pool.Ready(); !errors.Is(err, worker.ErrNotReady) {
		t.Errorf("after Run: Ready = %v, want ErrNotReady", err)
	}
}

// TestQueueDeletedWhileCancelArrives: the broker cancels the consumer
// while its queue still answers (RabbitMQ 4 deleting a quorum queue
// cancels its consumers first, then removes the queue), so the pool tries
// to consume again and finds no queue. Run still says what happened: the
// consumer was cancelled, and the queue is gone.
func TestQueueDeletedWhileCancelArrives(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var logs syncBuffer
	pool, err := worker.NewPool(f.conn, f.topo, worker.HandlerFunc(func(context.Context, *worker.Job) error { return nil }),
		worker.WithSender(f.snd), worker.WithLogger(zerolog.New(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	worker.SetQueueGoneCheck(pool, func() bool { return false })
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(context.Background()) }()
	testkit.WaitFor(t, 10*time.Second, "the pool to be ready", func() bool { return pool.Ready() == nil })
	if _, err := brokertest.Channel(t).QueueDelete(f.queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	err = testkit.Recv(t, (<-chan error)(errc), 20*time.Second, "Run to return")
	if !errors.Is(err, broker.ErrConsumerCancelled) || !errors.Is(err, broker.ErrNoQueue) || !strings.Contains(fmt.Sprint(err), f.queue) {
		t.Errorf("Run = %v, want an error naming %q, wrapping ErrConsumerCancelled and ErrNoQueue", err, f.queue)
	}
	// Each log line names the queue once (the consumer's own lines used
	// to carry the field twice).
	logs.mu.Lock()
	text := logs.b.String()
	logs.mu.Unlock()
	cancelled := false
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if n := strings.Count(line, `"queue":`); n > 1 {
			t.Errorf("log line names the queue %d times: %s", n, line)
		}
		cancelled = cancelled || strings.Contains(line, "cancelled the consumer")
	}
	if !cancelled {
		t.Errorf("no log line says the broker cancelled the consumer; logs:\n%s", text)
	}
}

// TestNotReadyWhenItsQueueIsDeleted: a pool whose queue disappears says
// so, rather than idle looking ready.
func TestNotReadyWhenItsQueueIsDeleted(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	pool, err := worker.NewPool(f.conn, f.topo, worker.HandlerFunc(func(context.Context, *worker.Job) error { return nil }), worker.WithSender(f.snd))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(context.Background()) }()
	testkit.WaitFor(t, 10*time.Second, "the pool to be ready", func() bool { return pool.Ready() == nil })
	if _, err := brokertest.Channel(t).QueueDelete(f.queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	if err := testkit.Recv(t, errc, 20*time.Second, "Run to return"); !errors.Is(err, broker.ErrConsumerCancelled) {
		t.Errorf("Run = %v, want ErrConsumerCancelled", err)
	}
	if err := pool.Ready(); !errors.Is(err, worker.ErrNotReady) {
		t.Errorf("Ready = %v, want ErrNotReady", err)
	}
}
