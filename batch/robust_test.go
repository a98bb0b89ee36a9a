package batch_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/warrenmq/warren/batch"
	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/worker"
)

// A job marked with the id of no batch (deleted by the retention, say)
// runs once and is acked: its end is not counted, and it does not come
// back.
func TestJobOfUnknownBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, newFinisher(t, f.db))
	ctx := brokertest.Context(t, 30*time.Second)
	if err := f.Pub.Publish(ctx, broker.Job{Type: "work", Payload: false}, broker.BatchMember("no-such-batch")); err != nil {
		t.Fatal(err)
	}
	f.WaitCount(worker.Succeeded, 1, 20*time.Second)
	time.Sleep(1500 * time.Millisecond) // a failed finisher returns the job after a pause
	if n := len(f.Outcomes()); n != 1 {
		t.Errorf("%d outcomes (%v), want the job's one success", n, f.Outcomes())
	}
}

// A job marked with a finished batch's id, but not one of its jobs (a new
// id), counts nothing: the callback is not written again.
func TestJobAfterTheBatchFinished(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, newFinisher(t, f.db))
	id, _ := f.publish(t, 2, func(int) bool { return false }, broker.Job{Type: "done"})
	testkit.WaitFor(t, 30*time.Second, "the callback", func() bool { return len(f.results()) > 0 })
	ctx := brokertest.Context(t, 30*time.Second)
	if err := f.Pub.Publish(ctx, broker.Job{Type: "work", Payload: false}, broker.BatchMember(id)); err != nil {
		t.Fatal(err)
	}
	f.WaitCount(worker.Succeeded, 4, 20*time.Second) // two jobs, the callback, the stray job
	time.Sleep(time.Second)
	if got := f.results(); len(got) != 1 {
		t.Errorf("%d callbacks %v, want 1", len(got), summary(got))
	}
	st, err := batch.Get(ctx, f.db, id)
	if err != nil || st.Succeeded != 2 || st.Failed != 0 {
		t.Errorf("Get: %+v, %v; want 2 succeeded", st, err)
	}
}

// Jobs given the same id would count once and hold the batch open for
// ever: Publish refuses them.
func TestPublishRefusesDuplicateIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := brokertest.Context(t, 30*time.Second)
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		_, err := batch.Publish(ctx, tx, f.Topo, []broker.Job{{ID: "a", Type: "work"}, {Type: "work"}, {ID: "a", Type: "work"}},
			broker.Job{Type: "done"})
		return err
	})
	if !errors.Is(err, batch.ErrInvalid) {
		t.Errorf("Publish of jobs with one id: %v, want ErrInvalid", err)
	}
}

// Batches published at once, their jobs interleaved in one queue: a
// callback each, once, with its own counts.
func TestConcurrentBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(t, newFinisher(t, f.db), worker.WithQueue(f.Queue, worker.Concurrency(8)))
	const batches = 6
	ids := make(chan string, batches)
	var wg sync.WaitGroup
	for b := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, _ := f.publish(t, 20+10*b, func(i int) bool { return i < b }, broker.Job{Type: "done"})
			ids <- id
		}()
	}
	testkit.WaitDone(t, &wg, time.Minute, "the batches published")
	close(ids)
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	testkit.WaitFor(t, time.Minute, "the callbacks", func() bool { return len(f.results()) >= batches })
	time.Sleep(time.Second)
	got := f.results()
	if len(got) != batches {
		t.Fatalf("%d callbacks, want %d", len(got), batches)
	}
	seen := map[string]bool{}
	for _, r := range got {
		b := (r.Total - 20) / 10
		if !want[r.ID] || seen[r.ID] || r.Failed != b || r.Succeeded != r.Total-b || len(r.Failures) != b {
			t.Errorf("callback %+v: of no batch, a duplicate, or not %d failed", r, b)
		}
		seen[r.ID] = true
	}
}

// A pool stopped mid-batch, and another cut off from the broker with jobs
// in flight (handled, some counted, not acked: delivered again): the
// callback runs once, with every job counted once.
func TestPoolsStoppedAndCutMidBatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 600
	id, ids := f.publish(t, n, func(i int) bool { return i%20 == 0 }, broker.Job{Type: "done"})
	ctx := brokertest.Context(t, 2*time.Minute)
	ended := func() int {
		st, err := batch.Get(ctx, f.db, id)
		if err != nil {
			t.Fatal(err)
		}
		return st.Succeeded + st.Failed
	}
	var mu sync.Mutex
	runs := map[string]int{}
	started := 0
	// mux runs the work jobs once gate lets them (a job gate refuses
	// goes back to its queue, not run), counting their runs, and records
	// the callbacks.
	mux := func(gate func(ctx context.Context) error) *worker.Mux {
		m := worker.NewMux()
		m.HandleFunc("work", func(ctx context.Context, job *worker.Job) error {
			var fail bool
			if err := job.Decode(&fail); err != nil {
				return err
			}
			if err := gate(ctx); err != nil {
				return err
			}
			mu.Lock()
			runs[job.ID]++
			started++
			mu.Unlock()
			if fail {
				return worker.Permanent(errors.New("failing on purpose"))
			}
			return nil
		})
		m.HandleFunc("done", func(ctx context.Context, job *worker.Job) error {
			var r batch.Result
			if err := job.Decode(&r); err != nil {
				return err
			}
			f.mu.Lock()
			f.callbacks = append(f.callbacks, r)
			f.mu.Unlock()
			return nil
		})
		return m
	}
	fin := newFinisher(t, f.db)
	opts := []worker.Option{worker.WithFinisher(fin), worker.WithQueue(f.Queue, worker.Concurrency(8))}

	// The first pool runs a third of the batch, then holds the jobs it
	// takes until it is stopped: they go back to the queue.
	var admitted atomic.Int32
	first := func(ctx context.Context) error {
		if admitted.Add(1) <= n/3 {
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}
	stop := f.Run(mux(first), append(opts, worker.WithShutdownTimeout(200*time.Millisecond))...)
	testkit.WaitFor(t, time.Minute, "a third of the batch", func() bool { return ended() >= n/3 })
	stop()
	if got := ended(); got != n/3 {
		t.Fatalf("%d jobs counted after the first pool stopped, want %d", got, n/3)
	}

	// A second pool runs its jobs up to the point of counting them, then
	// holds them until its connection is cut: they end on a dead
	// connection, unacked, and are delivered again.
	cutDone := make(chan struct{})
	var held atomic.Int32
	second := func(ctx context.Context) error {
		held.Add(1)
		select {
		case <-cutDone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cut := brokertest.ConnName(t, "batch-test-cut")
	pool, err := worker.NewPool(testkit.Dial(t, cut), f.Topo, mux(second), opts...)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- pool.Run(pctx) }()
	t.Cleanup(func() {
		cancel()
		if err := testkit.Recv(t, ran, time.Minute, "the cut pool to stop"); err != nil {
			t.Error(err)
		}
	})
	testkit.WaitFor(t, time.Minute, "the second pool holding jobs", func() bool { return held.Load() >= 8 })
	closed := brokertest.CloseConnections(t, cut)
	close(cutDone)
	t.Logf("%d connections cut with %d jobs held and %d counted", closed, held.Load(), ended())
	f.Run(mux(func(context.Context) error { return nil }), opts...)

	testkit.WaitFor(t, time.Minute, "the callback", func() bool { return len(f.results()) > 0 })
	time.Sleep(time.Second)
	got := f.results()
	if len(got) != 1 || got[0].Total != n || got[0].Failed != n/20 || got[0].Succeeded != n-n/20 {
		t.Fatalf("callbacks %v, want one: %d jobs, %d failed", summary(got), n, n/20)
	}
	var again int
	mu.Lock()
	for _, jid := range ids {
		if runs[jid] > 1 {
			again++
		}
	}
	mu.Unlock()
	t.Logf("%d jobs ran more than once", again)
	if closed == 0 || again == 0 {
		t.Errorf("%d connections cut and %d jobs ran again, want the jobs held when the connection was cut to run again", closed, again)
	}
}

// A finisher after the batch's that fails once for a job, its count
// committed: the job is not acked, runs again, and counts nothing more.
func TestFinisherErrorAfterTheCount(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var mu sync.Mutex
	flaky, ends := map[string]bool{}, map[string]int{}
	after := worker.FinisherFunc(func(ctx context.Context, job *worker.Job, end worker.End) error {
		mu.Lock()
		defer mu.Unlock()
		ends[job.ID]++
		if flaky[job.ID] {
			delete(flaky, job.ID)
			return errors.New("failing after the count")
		}
		return nil
	})
	id, ids := f.publish(t, 5, func(i int) bool { return i == 4 }, broker.Job{Type: "done"})
	mu.Lock()
	flaky[ids[0]], flaky[ids[4]] = true, true
	mu.Unlock()
	f.run(t, newFinisher(t, f.db), worker.WithFinisher(after))
	testkit.WaitFor(t, 30*time.Second, "the callback", func() bool { return len(f.results()) > 0 })
	time.Sleep(time.Second)
	got := f.results()
	if len(got) != 1 || got[0].ID != id || got[0].Succeeded != 4 || got[0].Failed != 1 {
		t.Fatalf("callbacks %v, want one: 4 succeeded, 1 failed", summary(got))
	}
	// A job whose finisher failed runs again after its retry's delay,
	// which may end after the callback: wait for its second end.
	testkit.WaitFor(t, 30*time.Second, "the second end of the jobs whose finisher failed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ends[ids[0]] >= 2 && ends[ids[4]] >= 2
	})
	time.Sleep(500 * time.Millisecond) // room for an end too many
	mu.Lock()
	defer mu.Unlock()
	if ends[ids[0]] != 2 || ends[ids[4]] != 2 || ends[ids[1]] != 1 {
		t.Errorf("ends %d, %d, %d; want the jobs whose finisher failed twice, the others once", ends[ids[0]], ends[ids[4]], ends[ids[1]])
	}
}

// A long error is kept cut, at 4 KiB.
func TestLongErrorCut(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	mux := worker.NewMux()
	mux.HandleFunc("work", func(ctx context.Context, job *worker.Job) error {
		return worker.Permanent(errors.New(strings.Repeat("é", 10_000)))
	})
	mux.HandleFunc("done", func(ctx context.Context, job *worker.Job) error { return nil })
	f.Run(mux, worker.WithFinisher(newFinisher(t, f.db)))
	id, _ := f.publish(t, 1, func(int) bool { return true }, broker.Job{Type: "done"})
	ctx := brokertest.Context(t, 30*time.Second)
	var st batch.Status
	testkit.WaitFor(t, 20*time.Second, "the batch finished", func() bool {
		var err error
		st, err = batch.Get(ctx, f.db, id)
		return err == nil && st.FinishedAt != nil
	})
	if len(st.Failures) != 1 {
		t.Fatalf("failures %+v", st.Failures)
	}
	e := st.Failures[0].Error
	if len(e) > broker.MaxErrorHeader || !strings.HasSuffix(e, "…") || !utf8.ValidString(e) {
		t.Errorf("error of %d bytes (valid UTF-8: %v), want at most %d, cut", len(e), utf8.ValidString(e), broker.MaxErrorHeader)
	}
}
