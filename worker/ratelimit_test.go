package worker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// TestRateLimitOptions: bad limits are errors from NewPool that say what
// to pass.
func TestRateLimitOptions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	tests := []struct {
		name string
		opts []worker.Option
		want string // in the error; "" for none
	}{
		{"queue limit", []worker.Option{worker.WithQueue(f.queue, worker.RateLimit(10, time.Second))}, ""},
		{"type limit", []worker.Option{worker.TypeRateLimit("ok", 1, time.Minute)}, ""},
		{"zero jobs", []worker.Option{worker.WithQueue(f.queue, worker.RateLimit(0, time.Second))}, "RateLimit: 0 per 1s: give a positive number of jobs per a positive interval"},
		{"negative jobs", []worker.Option{worker.WithQueue(f.queue, worker.RateLimit(-1, time.Second))}, "positive number of jobs"},
		{"zero interval", []worker.Option{worker.WithQueue(f.queue, worker.RateLimit(5, 0))}, "RateLimit: 5 per 0s"},
		{"negative interval", []worker.Option{worker.WithQueue(f.queue, worker.RateLimit(5, -time.Second))}, "positive interval"},
		{"type zero jobs", []worker.Option{worker.TypeRateLimit("ok", 0, time.Second)}, `TypeRateLimit "ok": 0 per 1s`},
		{"type zero interval", []worker.Option{worker.TypeRateLimit("ok", 1, 0)}, "positive interval"},
		{"type empty", []worker.Option{worker.TypeRateLimit("", 1, time.Second)}, "empty job type"},
		{"global limit", []worker.Option{worker.WithQueue(f.queue, worker.GlobalRateLimit(10, time.Second))}, ""},
		{"global zero jobs", []worker.Option{worker.WithQueue(f.queue, worker.GlobalRateLimit(0, time.Second))}, "GlobalRateLimit: 0 per 1s: give a positive number"},
		{"global zero interval", []worker.Option{worker.WithQueue(f.queue, worker.GlobalRateLimit(3, 0))}, "positive interval"},
		{"global and pool limits", []worker.Option{worker.WithQueue(f.queue, worker.RateLimit(1, time.Second), worker.GlobalRateLimit(3, time.Second))}, "give RateLimit (this pool's) or GlobalRateLimit (shared by the queue's consumers), not both"},
		{"type twice", []worker.Option{worker.TypeRateLimit("ok", 1, time.Second), worker.TypeRateLimit("ok", 2, time.Second)}, `TypeRateLimit "ok" is given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]worker.Option{worker.WithSender(f.snd)}, tt.opts...)
			_, err := worker.NewPool(f.conn, f.topo, worker.NewMux(), opts...)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("NewPool: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("NewPool: no error, want one with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("NewPool: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestRateLimitHandlesEveryJob: jobs held back by a queue's limit and by
// their type's are all handled, once each, and none is retried or
// dead-lettered.
func TestRateLimitHandlesEveryJob(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	const n = 40
	ids := append(f.publish("ok", make([]any, n)...), f.publish("slow", make([]any, n/4)...)...)

	l := newLedger()
	mux := worker.NewMux()
	handle := func(ctx context.Context, job *worker.Job) error {
		l.add(job.ID)
		return nil
	}
	mux.HandleFunc("ok", handle)
	mux.HandleFunc("slow", handle)
	var waited atomic.Int32 // outcomes with a RateWait
	stop := f.run(mux,
		worker.WithQueue(f.queue, worker.Concurrency(2), worker.Prefetch(8), worker.RateLimit(200, time.Second)),
		worker.TypeRateLimit("slow", 40, time.Second),
		worker.WithObserver(worker.OutcomeFunc(l.observe)),
		worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) {
			if o.RateWait > 0 {
				waited.Add(1)
			}
		})))
	testkit.WaitFor(t, 60*time.Second, "every job handled", func() bool { return l.count() == len(ids) })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, id := range ids {
		if c := l.handled[id]; c != 1 {
			t.Errorf("job %s handled %d times", id, c)
		}
	}
	for _, s := range []worker.Status{worker.Retried, worker.DeadLettered, worker.Requeued, worker.Rejected, worker.Quarantined} {
		if got := l.status(s); got != 0 {
			t.Errorf("%d outcomes %s, want none: a rate limit must only hold jobs back", got, s)
		}
	}
	if got := l.status(worker.Succeeded); got != len(ids) {
		t.Errorf("%d outcomes Succeeded, want %d", got, len(ids))
	}
	if d := brokertest.Depth(t, f.queue); d != 0 {
		t.Errorf("%d jobs left in the queue", d)
	}
	if d := brokertest.Depth(t, topology.DeadLetterQueueName(f.queue)); d != 0 {
		t.Errorf("%d jobs in the dead-letter queue", d)
	}
	// 50 jobs at 200 a second, burst 1: all but the first wait their turn.
	if waited.Load() == 0 {
		t.Error("no outcome has a RateWait")
	}
}

// TestRateLimitShutdownReturnsWaitingJobs stops a pool while jobs wait for
// their turn, under a queue's limit and under a type's: they go back to
// the queue, none lost, none marked redelivered (so none is quarantined),
// and another pool handles exactly them. Jobs of an unlimited type in the
// same queue are not held back by the limited type's.
//
// The first pool's ledger holds each job once: handled, or reported
// Requeued, never both, never Requeued twice (a job returned while the
// pool's consumer still consumed the queue came back to it, and was
// returned again at shutdown). How many it received before the shutdown
// depends on the prefetch's timing, unless the prefetch holds every job
// published: then each job not handled was returned.
func TestRateLimitShutdownReturnsWaitingJobs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      func(queue string) []worker.Option
		slow, oks int // published; slow first
		handled   int // before the shutdown
		// received: the prefetch holds every job published, and the
		// ok jobs, published last, were handled: every job was received.
		received bool
	}{
		{
			name: "queue limit",
			opts: func(queue string) []worker.Option {
				return []worker.Option{worker.WithQueue(queue, worker.Concurrency(2), worker.Prefetch(4), worker.RateLimit(1, time.Hour))}
			},
			slow: 10, handled: 1,
		},
		{
			// Two handlers, four slow jobs: the type's waiting jobs hold
			// no handler slot, so every ok job behind them is handled.
			name: "type limit",
			opts: func(queue string) []worker.Option {
				return []worker.Option{worker.WithQueue(queue, worker.Concurrency(2), worker.Prefetch(32)), worker.TypeRateLimit("slow", 1, time.Hour)}
			},
			slow: 4, oks: 20, handled: 1 + 20, received: true,
		},
		{
			// Four handlers find the type's one token at once: those
			// that lose it give their slot back rather than hold it for
			// an hour.
			name: "type limit, handlers racing for its turn",
			opts: func(queue string) []worker.Option {
				return []worker.Option{worker.WithQueue(queue, worker.Concurrency(4), worker.Prefetch(64)), worker.TypeRateLimit("slow", 1, time.Hour)}
			},
			slow: 16, oks: 40, handled: 1 + 40, received: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOpts{})
			ids := append(f.publish("slow", make([]any, tt.slow)...), f.publish("ok", make([]any, tt.oks)...)...)
			first := newLedger()
			mux := worker.NewMux()
			mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
				first.add(job.ID)
				return nil
			})
			mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
				first.add(job.ID)
				return nil
			})
			stop := f.run(mux, append(tt.opts(f.queue), worker.WithObserver(worker.OutcomeFunc(first.observe)))...)
			testkit.WaitFor(t, 30*time.Second, "the jobs that may start handled", func() bool { return first.count() >= tt.handled })
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := first.count(); got != tt.handled {
				t.Errorf("%d jobs handled before the shutdown, want %d", got, tt.handled)
			}
			for _, s := range []worker.Status{worker.Retried, worker.DeadLettered, worker.Rejected, worker.Quarantined} {
				if got := first.status(s); got != 0 {
					t.Errorf("%d outcomes %s, want none", got, s)
				}
			}
			rest := len(ids) - tt.handled
			if d := brokertest.Depth(t, f.queue); d != rest {
				t.Errorf("after shutdown %d jobs are in the queue, want %d: jobs were lost or left unacked", d, rest)
			}
			requeued := 0
			for _, id := range ids {
				h, r := first.handled[id], first.requeued[id]
				requeued += r
				switch {
				case r > 1:
					t.Errorf("job %s reported Requeued %d times, want at most once", id, r)
				case h > 0 && r > 0:
					t.Errorf("job %s handled and reported Requeued", id)
				case tt.received && h+r == 0:
					t.Errorf("job %s received, yet neither handled nor reported Requeued", id)
				}
			}
			if requeued < 1 {
				t.Errorf("no outcome Requeued, want the waiting jobs' at least")
			}

			second := newLedger()
			mux2 := worker.NewMux()
			handle := func(ctx context.Context, job *worker.Job) error {
				second.add(job.ID)
				return nil
			}
			mux2.HandleFunc("slow", handle)
			mux2.HandleFunc("ok", handle)
			stop2 := f.run(mux2, worker.WithObserver(worker.OutcomeFunc(second.observe)))
			testkit.WaitFor(t, 30*time.Second, "the rest handled", func() bool { return second.count() >= rest })
			if err := stop2(); err != nil {
				t.Fatal(err)
			}
			if got := second.status(worker.Quarantined); got != 0 {
				t.Errorf("%d jobs returned at shutdown were quarantined, want 0: they came back marked redelivered", got)
			}
			for _, id := range ids {
				if a, b := first.handled[id], second.handled[id]; a+b != 1 {
					t.Errorf("job %s handled %d times before the shutdown and %d after", id, a, b)
				}
			}
		})
	}
}

// TestRateLimitHoldReturnsWaitingJobs holds a queue (a pause, a breaker
// that opens) while jobs wait for their turn under a limit of one an
// hour: they go back to the queue at once, as the jobs received and not
// started do, rather than keep the pool's consumer, and the jobs, waiting
// for their turn. Each job is handled or reported Requeued, once.
func TestRateLimitHoldReturnsWaitingJobs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts func(queue string) []worker.Option
		// types published, in order; one "slow" is handled, then the
		// queue is paused, unless a "trip" job opens its breaker.
		types []string
	}{
		{
			name: "pause, type limit",
			opts: func(queue string) []worker.Option {
				return []worker.Option{worker.WithQueue(queue, worker.Concurrency(2), worker.Prefetch(8)), worker.TypeRateLimit("slow", 1, time.Hour)}
			},
			types: []string{"slow", "slow", "slow", "slow"},
		},
		{
			name: "pause, queue limit",
			opts: func(queue string) []worker.Option {
				return []worker.Option{worker.WithQueue(queue, worker.Concurrency(2), worker.Prefetch(8), worker.RateLimit(1, time.Hour))}
			},
			types: []string{"slow", "slow", "slow", "slow"},
		},
		{
			// One handler: the slow jobs are set aside to wait for
			// their type before it takes the job that trips.
			name: "breaker open, type limit",
			opts: func(queue string) []worker.Option {
				return []worker.Option{worker.WithQueue(queue, worker.Concurrency(1), worker.Prefetch(8),
					worker.Breaker(worker.BreakerPolicy{MinJobs: 1000, CoolDown: time.Hour})),
					worker.TypeRateLimit("slow", 1, time.Hour)}
			},
			types: []string{"slow", "slow", "slow", "trip"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOpts{types: []string{"slow", "trip"}})
			l := newLedger()
			mux := worker.NewMux()
			mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
				l.add(job.ID)
				return nil
			})
			mux.HandleFunc("trip", func(ctx context.Context, job *worker.Job) error {
				return worker.TripBreaker(errors.New("the database is down"))
			})
			_, stop := f.startPool(mux, append(tt.opts(f.queue), worker.WithObserver(worker.OutcomeFunc(l.observe)))...)
			var ids []string
			for _, typ := range tt.types {
				ids = append(ids, f.publish(typ, nil)...)
			}
			testkit.WaitFor(t, 30*time.Second, "the first job handled", func() bool { return l.count() == 1 })
			if !slices.Contains(tt.types, "trip") {
				f.setPaused(true)
			}
			want := len(ids) - 1
			testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("%d jobs back in the queue, and no consumer", want), func() bool {
				info := f.queueInfo()
				return info.Messages == want && info.Consumers == 0
			})
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			for _, id := range ids {
				if h, r := l.handled[id], l.requeued[id]; h+r != 1 {
					t.Errorf("job %s handled %d times and reported Requeued %d times, want one of them once", id, h, r)
				}
			}
		})
	}
}

// TestGlobalRateLimitShares: two pools with the same GlobalRateLimit on a
// queue each take half of it once they have read the queue's consumer
// count, and handle every job once, none retried or dead-lettered.
func TestGlobalRateLimitShares(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	const n, perSecond = 40, 100
	ids := f.publish("ok", make([]any, n)...)
	l := newLedger()
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
		l.add(job.ID)
		return nil
	})
	var pools []*worker.Pool
	for range 2 {
		p, err := worker.NewPool(f.conn, f.topo, mux, worker.WithSender(f.snd),
			worker.WithQueue(f.queue, worker.Concurrency(2), worker.GlobalRateLimit(perSecond, time.Second)),
			worker.WithObserver(worker.OutcomeFunc(l.observe)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- p.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
		pools = append(pools, p)
	}
	testkit.WaitFor(t, 60*time.Second, "every job handled", func() bool { return l.count() == n })
	// The first pool read one consumer at its start, the second two; the
	// first reads two at its next refresh.
	testkit.WaitFor(t, 3*worker.GlobalRefresh, "both pools at half the limit", func() bool {
		return worker.QueueRate(pools[0], f.queue) == perSecond/2 && worker.QueueRate(pools[1], f.queue) == perSecond/2
	})
	for _, id := range ids {
		if c := l.handled[id]; c != 1 {
			t.Errorf("job %s handled %d times", id, c)
		}
	}
	if got := l.status(worker.Succeeded); got != n {
		t.Errorf("%d outcomes Succeeded, want %d", got, n)
	}
}

// BenchmarkRateLimit measures the rate a limited pool achieves against
// the broker, in jobs/s from the first limited job's start to the last's
// (reported, never asserted): a queue limited to 50 and to 500 jobs/s, and
// a job type limited to 500 jobs/s among as many jobs of an unlimited
// type. Each op is one job of the limited kind: run it with
// -benchtime=200x (4 s at 50/s).
func BenchmarkRateLimit(b *testing.B) {
	cases := []struct {
		name      string
		perSecond int
		opts      func(queue string, perSecond int) []worker.Option
		other     bool // as many jobs of an unlimited type too
	}{
		{"queue 50/s", 50, queueLimit, false},
		{"queue 500/s", 500, queueLimit, false},
		{"type 500/s", 500, func(queue string, perSecond int) []worker.Option {
			return []worker.Option{worker.WithQueue(queue, worker.Concurrency(8), worker.Prefetch(64)), worker.TypeRateLimit("slow", perSecond, time.Second)}
		}, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			exchange, queue := brokertest.Name(b, "x"), brokertest.Name(b, "q")
			topo := topotest.Apply(b, fmt.Sprintf("version: 1\nexchanges:\n  %s: {type: direct}\nqueues:\n  %s: {type: classic}\nbindings:\n  - {exchange: %s, queue: %s, routing_keys: [slow, ok]}\nroutes:\n  slow: {exchange: %s}\n  ok: {exchange: %s}\n",
				exchange, queue, exchange, queue, exchange, exchange))
			pubConn := testkit.Dial(b, "worker-bench-publish")
			pub, err := broker.NewPublisher(pubConn, broker.WithRouter(topo))
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close(context.Background())
			var jobs []broker.Job
			for range b.N {
				jobs = append(jobs, broker.Job{Type: "slow"})
				if c.other {
					jobs = append(jobs, broker.Job{Type: "ok"})
				}
			}
			if err := pub.PublishBatch(brokertest.Context(b, 60*time.Second), jobs); err != nil {
				b.Fatal(err)
			}

			var limited, others atomic.Int64
			var last atomic.Int64 // when the last limited job started, in ns since start
			start := time.Now()
			mux := worker.NewMux()
			mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
				last.Store(int64(time.Since(start)))
				limited.Add(1)
				return nil
			})
			mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
				others.Add(1)
				return nil
			})
			pool, err := worker.NewPool(testkit.Dial(b, "worker-bench-consume"), topo, mux, c.opts(queue, c.perSecond)...)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			b.ResetTimer()
			start = time.Now()
			go func() { errc <- pool.Run(ctx) }()
			testkit.WaitFor(b, 10*time.Minute, "every limited job handled", func() bool { return limited.Load() == int64(b.N) })
			b.StopTimer()
			cancel()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			// From the first start to the last: b.N-1 intervals.
			if el := time.Duration(last.Load()); b.N > 1 && el > 0 {
				b.ReportMetric(float64(b.N-1)/el.Seconds(), "jobs/s")
			}
			b.ReportMetric(float64(c.perSecond), "limit-jobs/s")
			if c.other {
				b.ReportMetric(float64(others.Load()), "unlimited-jobs")
			}
		})
	}
}

func queueLimit(queue string, perSecond int) []worker.Option {
	return []worker.Option{worker.WithQueue(queue, worker.Concurrency(8), worker.Prefetch(64), worker.RateLimit(perSecond, time.Second))}
}
