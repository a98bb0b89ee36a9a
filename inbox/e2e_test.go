package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/queuetest"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) {
	if os.Getenv(killChildEnv) != "" {
		os.Exit(killChild())
	}
	os.Exit(brokertest.MainWithLeakCheck(m))
}

func workerFunc(f func(ctx context.Context) error) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, _ *worker.Job) error { return f(ctx) })
}

func newJob(id string) *worker.Job {
	return &worker.Job{ID: id, Type: "t", Envelope: &broker.Envelope{ID: id, Type: "t"}}
}

// ledger is the effects a handler wrote, in PostgreSQL: a row per effect,
// with nothing but the inbox keeping a job from writing two.
type ledger struct {
	pool *pgxpool.Pool
}

func newLedger(t *testing.T, pool *pgxpool.Pool) *ledger {
	t.Helper()
	if _, err := pool.Exec(brokertest.Context(t, 30*time.Second), "CREATE TABLE effects (job_id text NOT NULL, at timestamptz NOT NULL DEFAULT now())"); err != nil {
		t.Fatal(err)
	}
	return &ledger{pool: pool}
}

// write writes the job's effect in the inbox's transaction.
func (l *ledger) write(ctx context.Context, job *worker.Job) error {
	tx := pginbox.Tx(ctx)
	if tx == nil {
		return errors.New("no inbox transaction in the handler's ctx")
	}
	_, err := tx.Exec(ctx, "INSERT INTO effects (job_id) VALUES ($1)", job.ID)
	return err
}

// counts returns the number of effects of each job.
func (l *ledger) counts(t *testing.T) map[string]int {
	t.Helper()
	rows, err := l.pool.Query(brokertest.Context(t, 30*time.Second), "SELECT job_id, count(*) FROM effects GROUP BY job_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		got[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// effects are where a handler writes its effect: in the inbox's
// transaction (PostgreSQL), or in memory beside a store that shares no
// transaction.
type effects interface {
	write(ctx context.Context, job *worker.Job) error
	counts(t *testing.T) map[string]int
}

type memEffects struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *memEffects) write(_ context.Context, job *worker.Job) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n[job.ID]++
	return nil
}

func (m *memEffects) counts(*testing.T) map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := make(map[string]int, len(m.n))
	for k, v := range m.n {
		c[k] = v
	}
	return c
}

// storeWithEffects makes, for the store named, the store and where its
// handler's effects go.
func storeWithEffects(t *testing.T, name string) (inbox.Store, effects) {
	t.Helper()
	if name == "postgres" {
		pool := pgtest.Pool(t, pgtest.Schema(t))
		s, err := pginbox.New(pool)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(brokertest.Context(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		return s, newLedger(t, pool)
	}
	for _, tc := range stores {
		if tc.name == name {
			return tc.new(t), &memEffects{n: map[string]int{}}
		}
	}
	t.Fatalf("no store %q", name)
	return nil, nil
}

func checkOnce(t *testing.T, e effects, ids []string) {
	t.Helper()
	got := e.counts(t)
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("job %s: %d effects, want 1", id, got[id])
		}
		delete(got, id)
	}
	for id, n := range got {
		t.Errorf("unexpected job %s: %d effects", id, n)
	}
}

// TestDuplicateDelivery: each job published twice, with the same id, has
// one effect; the second copy is skipped and acked.
func TestDuplicateDelivery(t *testing.T) {
	for _, store := range []string{"postgres", "redis", "memory"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			s, e := storeWithEffects(t, store)
			f := queuetest.New(t, "charge")
			ib, err := inbox.New(s, "billing.charge")
			if err != nil {
				t.Fatal(err)
			}
			const jobs = 5
			var ids []string
			for range jobs {
				id := brokertest.JobID(t)
				ids = append(ids, id)
				for range 2 {
					f.Publish(broker.Job{ID: id, Type: "charge", Payload: "card"})
				}
			}
			mux := worker.NewMux()
			mux.Use(ib.Middleware)
			mux.HandleFunc("charge", e.write)
			f.Run(mux, worker.WithQueue(f.Queue, worker.Concurrency(1)))
			f.WaitCount(worker.Succeeded, 2*jobs, 60*time.Second)
			checkOnce(t, e, ids)
			if got := ib.Skipped(); got != jobs {
				t.Errorf("Skipped() = %d, want %d", got, jobs)
			}
		})
	}
}

// TestHandlerErrorRollsBack: a handler that wrote its effect and then
// failed leaves neither the effect nor the inbox record; its retry runs
// the job again, and the job has one effect.
func TestHandlerErrorRollsBack(t *testing.T) {
	t.Parallel()
	s, e := storeWithEffects(t, "postgres")
	f := queuetest.New(t, "charge")
	ib, err := inbox.New(s, "billing.charge")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	runs := map[string]int{}
	mux := worker.NewMux()
	mux.Use(ib.Middleware)
	mux.HandleFunc("charge", func(ctx context.Context, job *worker.Job) error {
		if err := e.write(ctx, job); err != nil {
			return err
		}
		mu.Lock()
		runs[job.ID]++
		mu.Unlock()
		if job.Attempt == 1 {
			return fmt.Errorf("the card network timed out")
		}
		return nil
	})
	ids := []string{brokertest.JobID(t), brokertest.JobID(t), brokertest.JobID(t)}
	for _, id := range ids {
		f.Publish(broker.Job{ID: id, Type: "charge"})
	}
	f.Run(mux)
	f.WaitCount(worker.Succeeded, len(ids), 60*time.Second)
	checkOnce(t, e, ids)
	if n := f.Count(worker.Retried); n != len(ids) {
		t.Errorf("%d jobs retried, want %d", n, len(ids))
	}
	for _, id := range ids {
		if runs[id] != 2 {
			t.Errorf("job %s ran %d times, want 2 (the failure, and the retry)", id, runs[id])
		}
	}
	if got := ib.Skipped(); got != 0 {
		t.Errorf("Skipped() = %d, want 0: the failed attempt left a record", got)
	}
}

// TestConcurrentDeliveries: two workers given the same job at once; it
// has one effect. With PostgreSQL the second waits for the first's
// transaction and skips the job; with Redis and memory it finds the job
// busy, retries, and skips it then.
func TestConcurrentDeliveries(t *testing.T) {
	for _, store := range []string{"postgres", "redis", "memory"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			s, e := storeWithEffects(t, store)
			f := queuetest.New(t, "charge")
			ib, err := inbox.New(s, "billing.charge")
			if err != nil {
				t.Fatal(err)
			}
			// meet holds each delivery until the other copy of its job has
			// arrived too, so that both claim the job at once.
			var mu sync.Mutex
			arrived := map[string]chan struct{}{}
			var missed bool
			meet := func(next worker.Handler) worker.Handler {
				return worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
					if job.Attempt == 1 {
						mu.Lock()
						ch, ok := arrived[job.ID]
						if !ok {
							ch = make(chan struct{})
							arrived[job.ID] = ch
						} else {
							close(ch)
						}
						mu.Unlock()
						select {
						case <-ch:
						case <-time.After(20 * time.Second):
							mu.Lock()
							missed = true
							mu.Unlock()
						}
					}
					return next.HandleJob(ctx, job)
				})
			}
			handler := func() worker.Handler {
				mux := worker.NewMux()
				mux.Use(meet, ib.Middleware)
				mux.HandleFunc("charge", func(ctx context.Context, job *worker.Job) error {
					if err := e.write(ctx, job); err != nil {
						return err
					}
					time.Sleep(100 * time.Millisecond) // the other copy claims meanwhile
					return nil
				})
				return mux
			}
			const jobs = 3
			var ids []string
			for range jobs {
				id := brokertest.JobID(t)
				ids = append(ids, id)
				f.Publish(broker.Job{ID: id, Type: "charge"})
				f.Publish(broker.Job{ID: id, Type: "charge"})
			}
			for range 2 {
				f.Run(handler(), worker.WithQueue(f.Queue, worker.Concurrency(1), worker.Prefetch(1)))
			}
			f.WaitCount(worker.Succeeded, 2*jobs, 60*time.Second)
			if missed {
				t.Fatal("the two copies of a job did not run at once")
			}
			checkOnce(t, e, ids)
			if got := ib.Skipped(); got != jobs {
				t.Errorf("Skipped() = %d, want %d", got, jobs)
			}
		})
	}
}
