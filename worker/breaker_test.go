package worker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// breakerLog is an observer that records the outcomes of jobs and the
// changes of breakers.
type breakerLog struct {
	*ledger
	mu     sync.Mutex
	states []worker.BreakerState
	trips  int // outcomes whose error is a TripBreaker
}

func (b *breakerLog) Job(ctx context.Context, job *worker.Job, from worker.Source) (context.Context, func(worker.Outcome)) {
	return worker.OutcomeFunc(func(o worker.Outcome) {
		b.observe(o)
		if errors.Is(o.Err, worker.ErrBreakerTripped) {
			b.mu.Lock()
			b.trips++
			b.mu.Unlock()
		}
	}).Job(ctx, job, from)
}

func (b *breakerLog) BreakerChanged(queue string, state worker.BreakerState) {
	b.mu.Lock()
	b.states = append(b.states, state)
	b.mu.Unlock()
}

// seen returns how many times the breaker entered s.
func (b *breakerLog) seen(s worker.BreakerState) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, got := range b.states {
		if got == s {
			n++
		}
	}
	return n
}

func (b *breakerLog) last() worker.BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.states) == 0 {
		return worker.BreakerClosed
	}
	return b.states[len(b.states)-1]
}

// TestBreakerOpensHoldsHalfOpensAndCloses: jobs fail until a switch
// flips. The breaker opens after MinJobs failures; while open, the pool's
// consumer is gone and the jobs wait in the queue; each half-open spell
// lets at most HalfOpenJobs jobs fail before it opens again; once the
// jobs succeed, it closes and every job is handled. At the end, each job
// succeeded once, each failure was retried (none dead-lettered), and the
// failures are bounded by the trials.
func TestBreakerOpensHoldsHalfOpensAndCloses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{retry: "{max_attempts: 20, initial_interval: 1s, jitter: 0}"})
	var failing atomic.Bool
	failing.Store(true)
	var mu sync.Mutex
	succeeded := map[string]int{}
	var failures atomic.Int64
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
		if failing.Load() {
			failures.Add(1)
			return errors.New("the dependency is down")
		}
		mu.Lock()
		succeeded[job.ID]++
		mu.Unlock()
		return nil
	})
	const minJobs, halfOpenJobs = 4, 2
	obs := &breakerLog{ledger: newLedger()}
	pool, stop := f.startPool(mux,
		worker.WithQueue(f.queue, worker.Concurrency(2), worker.Breaker(worker.BreakerPolicy{
			Window: 10 * time.Second, MinJobs: minJobs, FailureRatio: 0.5,
			CoolDown: 300 * time.Millisecond, MaxCoolDown: 600 * time.Millisecond, HalfOpenJobs: halfOpenJobs,
		})),
		worker.WithObserver(obs))
	first := f.publish("ok", make([]any, minJobs)...)
	testkit.WaitFor(t, 30*time.Second, "the breaker open", func() bool { return obs.seen(worker.BreakerOpen) >= 1 })
	more := f.publish("ok", make([]any, 30)...)
	all := append(first, more...)

	// While open: no consumer on the queue, the jobs there.
	testkit.WaitFor(t, 30*time.Second, "the breaker open with no consumer on the queue", func() bool {
		return pool.Breakers()[f.queue] == worker.BreakerOpen && f.queueInfo().Consumers == 0
	})
	if st := pool.Status(); !strings.Contains(st, "breaker open: "+f.queue) && !strings.Contains(st, "breaker half-open: "+f.queue) {
		t.Errorf("Status() = %q, want it to name the breaker", st)
	}
	if err := pool.Ready(); err != nil {
		t.Errorf("Ready with the breaker open: %v; want ready", err)
	}
	testkit.WaitFor(t, 30*time.Second, "the pool holding the breaker's marker", func() bool {
		n, err := broker.BreakerOpen(brokertest.Context(t, 10*time.Second), f.conn, f.queue)
		return err == nil && n == 1
	})
	// Half-open spells with the jobs still failing open it again.
	testkit.WaitFor(t, 30*time.Second, "the breaker reopened after a failed trial", func() bool {
		return obs.seen(worker.BreakerOpen) >= 3
	})
	if got := obs.status(worker.DeadLettered); got != 0 {
		t.Errorf("%d jobs dead-lettered while the breaker held the queue", got)
	}

	failing.Store(false)
	testkit.WaitFor(t, 60*time.Second, "every job succeeded", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(succeeded) == len(all)
	})
	testkit.WaitFor(t, 30*time.Second, "the breaker closed", func() bool {
		return obs.last() == worker.BreakerClosed && len(pool.Breakers()) == 0
	})
	testkit.WaitFor(t, 30*time.Second, "the marker gone", func() bool {
		n, err := broker.BreakerOpen(brokertest.Context(t, 10*time.Second), f.conn, f.queue)
		return err == nil && n == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The ledger: every job succeeded once, nothing lost or parked; every
	// failure was retried; the failures are the first window's and at
	// most HalfOpenJobs per half-open spell.
	mu.Lock()
	defer mu.Unlock()
	for _, id := range all {
		if succeeded[id] != 1 {
			t.Errorf("job %s succeeded %d times, want once", id, succeeded[id])
		}
	}
	if got := obs.status(worker.DeadLettered); got != 0 {
		t.Errorf("%d jobs dead-lettered, want 0", got)
	}
	if n := brokertest.Depth(t, topology.DeadLetterQueueName(f.queue)); n != 0 {
		t.Errorf("dead-letter queue holds %d jobs, want 0", n)
	}
	if got, want := obs.status(worker.Retried), int(failures.Load()); got != want {
		t.Errorf("%d jobs retried, want %d (one per failure)", got, want)
	}
	halfOpens := obs.seen(worker.BreakerHalfOpen)
	if max := minJobs + 2 + halfOpenJobs*halfOpens; failures.Load() > int64(max) {
		// Up to Concurrency jobs in flight when it opened may fail too.
		t.Errorf("%d failures with %d half-open spells; the breaker lets at most %d through", failures.Load(), halfOpens, max)
	}
	if obs.seen(worker.BreakerClosed) != 1 {
		t.Errorf("breaker closed %d times, want 1 (states %v)", obs.seen(worker.BreakerClosed), obs.states)
	}
}

// TestBreakerTrippedByHandler: a handler's TripBreaker opens the breaker
// at once, below MinJobs; its job goes back to the queue without using
// an attempt (it runs again as attempt 1, not a suspect), and once the
// trial succeeds the breaker closes and every job is handled once.
func TestBreakerTrippedByHandler(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	var tripped atomic.Bool
	var mu sync.Mutex
	attempts := map[string][]int{}
	redelivered := 0
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
		mu.Lock()
		attempts[job.ID] = append(attempts[job.ID], job.Attempt)
		if job.Redelivered {
			redelivered++
		}
		mu.Unlock()
		if tripped.CompareAndSwap(false, true) {
			return worker.TripBreaker(errors.New("the database is down"))
		}
		return nil
	})
	obs := &breakerLog{ledger: newLedger()}
	f.startPool(mux,
		worker.WithQueue(f.queue, worker.Concurrency(1), worker.Breaker(worker.BreakerPolicy{
			MinJobs: 1000, CoolDown: 300 * time.Millisecond,
		})),
		worker.WithObserver(obs))
	ids := f.publish("ok", make([]any, 10)...)
	testkit.WaitFor(t, 30*time.Second, "every job handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) == len(ids) && obs.status(worker.Succeeded) == len(ids)
	})
	testkit.WaitFor(t, 30*time.Second, "the breaker closed", func() bool { return obs.last() == worker.BreakerClosed })
	mu.Lock()
	defer mu.Unlock()
	runs := 0
	for _, id := range ids {
		for _, a := range attempts[id] {
			runs++
			if a != 1 {
				t.Errorf("job %s ran as attempt %d; a trip must not use an attempt", id, a)
			}
		}
	}
	if runs != len(ids)+1 {
		t.Errorf("%d runs of %d jobs, want one more (the job that tripped, again)", runs, len(ids))
	}
	if redelivered != 0 {
		t.Errorf("%d jobs came back redelivered; the tripped job must come back as a new message", redelivered)
	}
	obs.mu.Lock()
	if obs.trips != 1 {
		t.Errorf("%d outcomes carry the trip, want 1", obs.trips)
	}
	obs.mu.Unlock()
	if got := obs.status(worker.Retried) + obs.status(worker.DeadLettered); got != 0 {
		t.Errorf("%d jobs retried or dead-lettered, want 0", got)
	}
	if got := obs.seen(worker.BreakerOpen); got != 1 {
		t.Errorf("breaker opened %d times, want 1", got)
	}
}

// TestBreakerTrippedByHandlersAtOnce: several handlers return
// TripBreaker together. Each job goes back to the queue once, reported
// Requeued once: whichever of them opened the breaker, the others' jobs
// are returned only once the open state is applied, the pool's consumer
// cancelled, so none comes back to this pool and is returned again.
func TestBreakerTrippedByHandlersAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	const n = 4
	var together sync.WaitGroup
	together.Add(n)
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
		together.Done()
		together.Wait()
		return worker.TripBreaker(errors.New("the database is down"))
	})
	obs := &breakerLog{ledger: newLedger()}
	_, stop := f.startPool(mux,
		worker.WithQueue(f.queue, worker.Concurrency(n), worker.Prefetch(4*n), worker.Breaker(worker.BreakerPolicy{
			MinJobs: 1000, CoolDown: time.Hour, // no trial during the test
		})),
		worker.WithObserver(obs))
	ids := f.publish("ok", make([]any, n)...)
	testkit.WaitFor(t, 30*time.Second, "every job tripped the breaker", func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return obs.trips == n
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, id := range ids {
		if got := obs.requeued[id]; got != 1 {
			t.Errorf("job %s reported Requeued %d times, want once", id, got)
		}
	}
	if d := brokertest.Depth(t, f.queue); d != n {
		t.Errorf("%d jobs in the queue, want %d", d, n)
	}
	if got := obs.seen(worker.BreakerOpen); got != 1 {
		t.Errorf("breaker opened %d times, want 1", got)
	}
}

// TestBreakerOptionErrors: a bad policy is an error from NewPool that
// names the field.
func TestBreakerOptionErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		pol  worker.BreakerPolicy
		want string
	}{
		{"negative window", worker.BreakerPolicy{Window: -time.Second}, "Window"},
		{"ratio above 1", worker.BreakerPolicy{FailureRatio: 1.5}, "FailureRatio"},
		{"negative min jobs", worker.BreakerPolicy{MinJobs: -1}, "MinJobs"},
		{"max below cool-down", worker.BreakerPolicy{CoolDown: time.Minute, MaxCoolDown: time.Second}, "MaxCoolDown"},
		{"half-open jobs", worker.BreakerPolicy{HalfOpenJobs: -2}, "HalfOpenJobs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := &topology.Topology{}
			_, err := worker.NewPool(testkit.Dial(t, "breaker-options"), topo, worker.NewMux(), worker.WithQueue("q", worker.Breaker(tc.pol)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewPool: %v; want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestCallFailsFastOnOpenBreaker: a Caller routed by the topology, with
// WithConsumerCheck, fails at once while no pool consumes the job's queue
// (ErrNoConsumer), and while the only pool's breaker is open
// (ErrBreakerOpen), instead of waiting for its deadline.
func TestCallFailsFastOnOpenBreaker(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	c := f.caller(broker.WithConsumerCheck(20 * time.Millisecond))
	ctx := brokertest.Context(t, 60*time.Second)
	if _, err := c.Call(ctx, broker.Job{Type: "ok"}); !errors.Is(err, broker.ErrNoConsumer) || errors.Is(err, broker.ErrBreakerOpen) {
		t.Fatalf("Call with no pool: %v, want ErrNoConsumer alone", err)
	}
	mux := worker.NewMux()
	mux.HandleFunc("perm", func(ctx context.Context, job *worker.Job) error {
		return worker.TripBreaker(errors.New("the database is down"))
	})
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
		job.SetResult("fine")
		return nil
	})
	pool, _ := f.startPool(mux, worker.WithQueue(f.queue, worker.Breaker(worker.BreakerPolicy{CoolDown: time.Hour})))
	testkit.WaitFor(t, 30*time.Second, "a call answered", func() bool {
		_, err := c.Call(ctx, broker.Job{Type: "ok"})
		return err == nil
	})
	f.publish("perm", nil)
	testkit.WaitFor(t, 30*time.Second, "the breaker open", func() bool { return pool.Breakers()[f.queue] == worker.BreakerOpen })
	testkit.WaitFor(t, 30*time.Second, "a call failing fast on the open breaker", func() bool {
		// A call checked just before the consumer left waits for its
		// deadline: keep it short.
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := c.Call(ctx, broker.Job{Type: "ok"})
		return errors.Is(err, broker.ErrBreakerOpen)
	})
	if info := f.queueInfo(); info.Consumers != 0 || info.Messages < 1 {
		t.Errorf("queue with %d consumers and %d jobs; want none, and the job that tripped the breaker waiting", info.Consumers, info.Messages)
	}
}

// TestBreakerPausedWhileHalfOpen: a job received while the trials of a
// half-open breaker run waits unstarted; a pause then sends it back to
// the queue instead of keeping it, and after the resume every job is
// handled once.
func TestBreakerPausedWhileHalfOpen(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	var tripped atomic.Bool
	slowStarted, release := make(chan struct{}), make(chan struct{})
	seen := newLedger()
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
		if tripped.CompareAndSwap(false, true) {
			return worker.TripBreaker(errors.New("down"))
		}
		seen.add(job.ID)
		return nil
	})
	mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
		close(slowStarted)
		<-release
		seen.add(job.ID)
		return nil
	})
	obs := &breakerLog{ledger: newLedger()}
	f.startPool(mux,
		worker.WithQueue(f.queue, worker.Concurrency(2), worker.Breaker(worker.BreakerPolicy{
			MinJobs: 1000, CoolDown: 300 * time.Millisecond, HalfOpenJobs: 2,
		})),
		worker.WithObserver(obs))
	ids := f.publish("ok", nil)
	testkit.WaitFor(t, 30*time.Second, "the breaker open", func() bool { return obs.seen(worker.BreakerOpen) == 1 })
	// The queue: the job that tripped (trial 1), slow (trial 2), then
	// five that wait for the trials.
	ids = append(ids, f.publish("slow", nil)...)
	ids = append(ids, f.publish("ok", make([]any, 5)...)...)
	testkit.Recv(t, slowStarted, 30*time.Second, "the slow trial started")
	testkit.WaitFor(t, 30*time.Second, "a job received and waiting for the trials", func() bool {
		return f.queueInfo().Messages == 4
	})
	f.setPaused(true)
	testkit.WaitFor(t, 30*time.Second, "the waiting job back in the queue", func() bool {
		return f.queueInfo().Messages == 5
	})
	close(release)
	f.setPaused(false)
	testkit.WaitFor(t, 30*time.Second, "every job handled", func() bool { return seen.count() == len(ids) })
	for _, id := range ids {
		if n := seen.handled[id]; n != 1 {
			t.Errorf("job %s handled %d times, want once", id, n)
		}
	}
}
