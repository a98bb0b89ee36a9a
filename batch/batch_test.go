package batch_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/batch"
	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/queuetest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(brokertest.Main(m))
}

// fixture is a schema with the batch tables, a queue for the jobs and the
// callbacks, and an outbox relay.
type fixture struct {
	*queuetest.Fixture
	db     *pgxpool.Pool
	schema string

	mu        sync.Mutex
	callbacks []batch.Result
	cbJobs    []worker.Job // the callbacks' jobs, for their metadata
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{Fixture: queuetest.New(t, "work", "done"), schema: pgtest.Schema(t)}
	f.db = pgtest.Pool(t, f.schema)
	ctx := brokertest.Context(t, 30*time.Second)
	if _, err := batch.Migrate(ctx, f.db); err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(f.db, testkit.Dial(t, "batch-test-relay"), outbox.WithPollInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(rctx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
	return f
}

// run runs the workers: work jobs fail for good when their payload says
// so, and done (the callback) records its result.
func (f *fixture) run(t *testing.T, finisher worker.Finisher, opts ...worker.Option) (stop func()) {
	t.Helper()
	mux := worker.NewMux()
	mux.HandleFunc("work", func(ctx context.Context, job *worker.Job) error {
		var fail bool
		if err := job.Decode(&fail); err != nil {
			return err
		}
		if fail {
			return worker.Permanent(errors.New("failing on purpose"))
		}
		return nil
	})
	mux.HandleFunc("done", func(ctx context.Context, job *worker.Job) error {
		var r batch.Result
		if err := job.Decode(&r); err != nil {
			return err
		}
		f.mu.Lock()
		f.callbacks = append(f.callbacks, r)
		f.cbJobs = append(f.cbJobs, *job)
		f.mu.Unlock()
		return nil
	})
	return f.Run(mux, append([]worker.Option{worker.WithFinisher(finisher)}, opts...)...)
}

func (f *fixture) results() []batch.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.callbacks)
}

// publish writes a batch of jobs in a transaction; fail says which fail.
func (f *fixture) publish(t *testing.T, n int, fail func(i int) bool, callback broker.Job) (string, []string) {
	t.Helper()
	jobs := make([]broker.Job, n)
	ids := make([]string, n)
	for i := range jobs {
		ids[i] = brokertest.JobID(t)
		jobs[i] = broker.Job{ID: ids[i], Type: "work", Payload: fail(i)}
	}
	var id string
	ctx := brokertest.Context(t, 30*time.Second)
	if err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		var err error
		id, err = batch.Publish(ctx, tx, f.Topo, jobs, callback)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return id, ids
}

func newFinisher(t *testing.T, db *pgxpool.Pool) *batch.Finisher {
	t.Helper()
	fin, err := batch.NewFinisher(db)
	if err != nil {
		t.Fatal(err)
	}
	return fin
}

// A batch of 10, three failing: the callback runs once, with the counts,
// the failures and its own payload.
func TestBatchCallback(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, newFinisher(t, f.db))
	failing := map[int]bool{2: true, 5: true, 9: true}
	id, ids := f.publish(t, 10, func(i int) bool { return failing[i] }, broker.Job{Type: "done", Payload: "report-7",
		Version: 2, Headers: map[string]any{"tenant": "acme", "n": int64(7)}, Priority: 3, CorrelationID: "corr-7"})
	testkit.WaitFor(t, 30*time.Second, "the callback", func() bool { return len(f.results()) > 0 })
	time.Sleep(300 * time.Millisecond)
	got := f.results()
	if len(got) != 1 {
		t.Fatalf("%d callbacks, want 1", len(got))
	}
	r := got[0]
	if r.ID != id || r.Total != 10 || r.Succeeded != 7 || r.Failed != 3 || len(r.Failures) != 3 {
		t.Errorf("callback %+v, want batch %s: 10 jobs, 7 succeeded, 3 failed and listed", r, id)
	}
	var wantFailed []string
	for i := range failing {
		wantFailed = append(wantFailed, ids[i])
	}
	var gotFailed []string
	for _, fl := range r.Failures {
		gotFailed = append(gotFailed, fl.JobID)
		if fl.Class != worker.ClassPermanent || fl.Type != "work" || fl.Error == "" {
			t.Errorf("failure %+v: want class permanent, type work, and the error", fl)
		}
	}
	slices.Sort(wantFailed)
	slices.Sort(gotFailed)
	if !slices.Equal(gotFailed, wantFailed) {
		t.Errorf("failures %v, want %v", gotFailed, wantFailed)
	}
	var payload string
	if err := r.DecodePayload(&payload); err != nil || payload != "report-7" {
		t.Errorf("the callback's own payload: %q, %v", payload, err)
	}
	// The callback's job keeps the metadata Publish was given.
	f.mu.Lock()
	cb := f.cbJobs[0]
	f.mu.Unlock()
	if cb.ID != batch.CallbackID(id) || cb.Version != 2 || cb.CorrelationID != "corr-7" || cb.Headers["tenant"] != "acme" || cb.Headers["n"] != int64(7) {
		t.Errorf("callback job %+v: want id %s, version 2, the correlation id and headers kept", cb, batch.CallbackID(id))
	}
	st, err := batch.Get(brokertest.Context(t, 10*time.Second), f.db, id)
	if err != nil || st.Pending() != 0 || st.FinishedAt == nil || len(st.Failures) != 3 {
		t.Errorf("Get: %+v, %v; want finished, nothing pending, 3 failures", st, err)
	}
}

// 1,000 jobs, many delivered twice or more, and a finisher that fails now
// and then (the job then runs again): every job counts once, and the
// callback runs once with the right counts.
func TestBatchDuplicatesCountOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fin := newFinisher(t, f.db)
	var failedCalls atomic.Int64
	flaky := worker.FinisherFunc(func(ctx context.Context, job *worker.Job, end worker.End) error {
		if rand.IntN(20) == 0 {
			failedCalls.Add(1)
			return errors.New("finisher failing on purpose")
		}
		return fin.FinishJob(ctx, job, end)
	})
	f.run(t, flaky, worker.WithQueue(f.Queue, worker.Concurrency(16), worker.Prefetch(32)))
	const n = 1000
	id, ids := f.publish(t, n, func(i int) bool { return i%10 == 0 }, broker.Job{Type: "done"})
	// Copies of a third of the jobs, as a relay that died mid-batch or a
	// redelivery sends them.
	ctx := brokertest.Context(t, time.Minute)
	for i := 0; i < n; i += 3 {
		if err := f.Pub.Publish(ctx, broker.Job{ID: ids[i], Type: "work", Payload: i%10 == 0}, broker.BatchMember(id)); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, time.Minute, "the callback", func() bool { return len(f.results()) > 0 })
	f.WaitCount(worker.Succeeded, n*9/10+1, time.Minute) // the successes, the callback; duplicates come on top
	time.Sleep(500 * time.Millisecond)
	got := f.results()
	if len(got) != 1 || got[0].Total != n || got[0].Succeeded != n*9/10 || got[0].Failed != n/10 || len(got[0].Failures) != n/10 {
		t.Fatalf("callbacks %+v, want one: %d jobs, %d succeeded, %d failed", summary(got), n, n*9/10, n/10)
	}
	if failedCalls.Load() == 0 {
		t.Error("the finisher never failed: the test proves less than it says")
	}
	t.Logf("%d finisher calls failed; %d deliveries in all", failedCalls.Load(), len(f.Outcomes()))
}

func summary(rs []batch.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("{total %d succeeded %d failed %d failures %d}", r.Total, r.Succeeded, r.Failed, len(r.Failures)))
	}
	return out
}

// A transaction rolled back leaves no batch and publishes no job.
func TestBatchRolledBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := brokertest.Context(t, 30*time.Second)
	tx, err := f.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, err := batch.Publish(ctx, tx, f.Topo, []broker.Job{{Type: "work", Payload: false}}, broker.Job{Type: "done"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := batch.Get(ctx, f.db, id); !errors.Is(err, batch.ErrNotFound) {
		t.Errorf("Get of a rolled-back batch: %v, want ErrNotFound", err)
	}
	s, err := outbox.ReadStats(ctx, f.db)
	if err != nil || s.Backlog != 0 {
		t.Errorf("outbox after the rollback: %+v, %v; want nothing to send", s, err)
	}
}

func TestPublishRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := brokertest.Context(t, 30*time.Second)
	work := []broker.Job{{Type: "work"}}
	for _, tc := range []struct {
		name     string
		router   broker.Router
		jobs     []broker.Job
		callback broker.Job
	}{
		{"no jobs", f.Topo, nil, broker.Job{Type: "done"}},
		{"a callback without a type", f.Topo, work, broker.Job{}},
		{"a callback without a route", f.Topo, work, broker.Job{Type: "nowhere"}},
		{"a job without a route", f.Topo, []broker.Job{{Type: "nowhere"}}, broker.Job{Type: "done"}},
		{"a job without a type", f.Topo, []broker.Job{{}}, broker.Job{Type: "done"}},
		{"no router", nil, work, broker.Job{Type: "done"}},
		{"too many jobs", f.Topo, make([]broker.Job, batch.MaxJobs+1), broker.Job{Type: "done"}},
		{"a callback with a bad version", f.Topo, work, broker.Job{Type: "done", Version: -1}},
		{"a callback with a reserved header", f.Topo, work, broker.Job{Type: "done", Headers: map[string]any{"x-death": 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
				_, err := batch.Publish(ctx, tx, tc.router, tc.jobs, tc.callback)
				return err
			})
			if !errors.Is(err, batch.ErrInvalid) {
				t.Errorf("Publish: %v, want ErrInvalid", err)
			}
		})
	}
	// Without the tables: ErrNoTable, saying what to run.
	db := pgtest.Pool(t, pgtest.Schema(t))
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		_, err := batch.Publish(ctx, tx, f.Topo, work, broker.Job{Type: "done"})
		return err
	})
	if !errors.Is(err, batch.ErrNoTable) {
		t.Errorf("Publish without the tables: %v, want ErrNoTable", err)
	}
}

// Finished batches are listed, and deleted past a retention; unfinished
// ones stay.
func TestListAndDeleteFinished(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, newFinisher(t, f.db))
	done, _ := f.publish(t, 3, func(int) bool { return false }, broker.Job{Type: "done"})
	testkit.WaitFor(t, 30*time.Second, "the callback", func() bool { return len(f.results()) > 0 })
	ctx := brokertest.Context(t, 30*time.Second)
	// An unfinished batch: its job has no route to a running worker.
	var open string
	if err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		var err error
		open, err = batch.Publish(ctx, tx, f.Topo, []broker.Job{{Type: "work", Payload: false}}, broker.Job{Type: "done"})
		if err != nil {
			return err
		}
		// Not published: the row only, as before its relay ran.
		_, err = tx.Exec(ctx, "DELETE FROM warren_outbox WHERE sent_at IS NULL")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	fin, err := batch.List(ctx, f.db, batch.ListOptions{Finished: &yes})
	if err != nil || len(fin) != 1 || fin[0].ID != done {
		t.Errorf("List finished: %+v, %v; want %s", fin, err, done)
	}
	unfin, err := batch.List(ctx, f.db, batch.ListOptions{Finished: &no})
	if err != nil || len(unfin) != 1 || unfin[0].ID != open || unfin[0].Pending() != 1 {
		t.Errorf("List unfinished: %+v, %v; want %s with one job pending", unfin, err, open)
	}
	n, err := batch.DeleteFinished(ctx, f.db, 0)
	if err != nil || n != 1 {
		t.Errorf("DeleteFinished: %d, %v; want 1", n, err)
	}
	if _, err := batch.Get(ctx, f.db, open); err != nil {
		t.Errorf("the unfinished batch: %v", err)
	}
}
