package worker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest/rawmsg"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/worker"
)

// timeoutSeen is what a handler saw of its ctx on one attempt.
type timeoutSeen struct {
	attempt  int
	class    string // the failure class the attempt arrived with
	err      error  // ctx.Err() once ctx was done
	waited   time.Duration
	deadline time.Duration // ctx's deadline, from the handler's start
}

// TestHandlerTimeout runs jobs whose handler waits for its ctx on a real
// broker: the ctx ends at the handler timeout with DeadlineExceeded (the
// pool's WithHandlerTimeout, or the queue's HandlerTimeout over it), the
// job is retried with class timeout, then, on its last attempt,
// dead-lettered with class timeout; a handler that ignores its ctx and
// returns an error after the timeout is classed the same way, and one that
// returns nil after it is acked.
func TestHandlerTimeout(t *testing.T) {
	t.Parallel()
	const short = 300 * time.Millisecond
	cases := []struct {
		name string
		opts func(queue string) []worker.Option
	}{
		{"pool", func(string) []worker.Option { return []worker.Option{worker.WithHandlerTimeout(short)} }},
		{"queue over pool", func(q string) []worker.Option {
			return []worker.Option{worker.WithHandlerTimeout(time.Hour), worker.WithQueue(q, worker.HandlerTimeout(short))}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOpts{retry: "{max_attempts: 2, initial_interval: 1s, jitter: 0}", types: []string{"slow", "stubborn", "late"}})
			var mu sync.Mutex
			seen := map[string][]timeoutSeen{}
			record := func(ctx context.Context, job *worker.Job, start time.Time, err error) {
				s := timeoutSeen{attempt: job.Attempt, err: err, waited: time.Since(start)}
				if job.Envelope.Failure != nil {
					s.class = job.Envelope.Failure.Class
				}
				if dl, ok := ctx.Deadline(); ok {
					s.deadline = dl.Sub(start)
				}
				mu.Lock()
				seen[job.ID] = append(seen[job.ID], s)
				mu.Unlock()
			}
			mux := worker.NewMux()
			mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
				start := time.Now()
				select {
				case <-ctx.Done():
				case <-time.After(30 * time.Second):
				}
				record(ctx, job, start, ctx.Err())
				return ctx.Err()
			})
			mux.HandleFunc("stubborn", func(ctx context.Context, job *worker.Job) error {
				start := time.Now()
				time.Sleep(short + 200*time.Millisecond) // ignores ctx
				record(ctx, job, start, ctx.Err())
				return errors.New("done too late")
			})
			mux.HandleFunc("late", func(ctx context.Context, job *worker.Job) error {
				start := time.Now()
				time.Sleep(short + 200*time.Millisecond)
				record(ctx, job, start, ctx.Err())
				return nil
			})
			l := newLedger()
			var omu sync.Mutex
			var outs []worker.Outcome
			f.run(mux, append(tc.opts(f.queue), worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) {
				l.observe(o)
				omu.Lock()
				outs = append(outs, o)
				omu.Unlock()
			})))...)
			slow := f.publish("slow", "x")[0]
			stubborn := f.publish("stubborn", "x")[0]
			late := f.publish("late", "x")[0]

			dead := f.dlq(2, 30*time.Second)
			testkit.WaitFor(t, 10*time.Second, "every outcome", func() bool {
				return l.status(worker.DeadLettered) == 2 && l.status(worker.Succeeded) == 1
			})
			mu.Lock()
			defer mu.Unlock()
			for _, id := range []string{slow, stubborn} {
				attempts := seen[id]
				if len(attempts) != 2 {
					t.Fatalf("job %s ran %d times, want 2 (retried once, then dead-lettered)", id, len(attempts))
				}
				for i, s := range attempts {
					if !errors.Is(s.err, context.DeadlineExceeded) {
						t.Errorf("job %s attempt %d: ctx.Err() = %v, want DeadlineExceeded", id, s.attempt, s.err)
					}
					if s.deadline <= 0 || s.deadline > short+50*time.Millisecond {
						t.Errorf("job %s attempt %d: ctx deadline %s after the start, want about %s", id, s.attempt, s.deadline, short)
					}
					if id == slow && (s.waited < short-50*time.Millisecond || s.waited > short+2*time.Second) {
						t.Errorf("job %s attempt %d: ctx done after %s, want about %s", id, s.attempt, s.waited, short)
					}
					if want := []string{"", worker.ClassTimeout}[i]; s.class != want {
						t.Errorf("job %s attempt %d arrived with failure class %q, want %q", id, s.attempt, s.class, want)
					}
				}
				d, ok := dead[id]
				if !ok {
					t.Errorf("job %s not in the dead-letter queue", id)
					continue
				}
				env, err := rawmsg.Envelope(&d)
				if err != nil {
					t.Fatal(err)
				}
				if env.Failure == nil || env.Failure.Class != worker.ClassTimeout || env.Attempt != 2 {
					t.Errorf("dead letter of %s: attempt %d failure %+v, want attempt 2 class %q", id, env.Attempt, env.Failure, worker.ClassTimeout)
				}
			}
			if a := seen[late]; len(a) != 1 || !errors.Is(a[0].err, context.DeadlineExceeded) {
				t.Errorf("job late: attempts %+v, want one, past its deadline, acked", a)
			}
			omu.Lock()
			defer omu.Unlock()
			for _, o := range outs {
				want := worker.ClassTimeout
				if o.JobID == late {
					want = ""
				}
				if o.Class != want {
					t.Errorf("outcome of %s (%s) attempt %d: %v class %q, want class %q", o.JobType, o.JobID, o.Attempt, o.Status, o.Class, want)
				}
			}
			if got := l.status(worker.Retried); got != 2 {
				t.Errorf("%d outcomes Retried, want 2", got)
			}
		})
	}
}
