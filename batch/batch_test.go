package batch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/batch"
	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(brokertest.MainWithLeakCheck(m))
}

// The job types: items run in the work queue (which has a dead-letter
// queue), bare items in a queue without one, callbacks wait in theirs.
const (
	typeItem     = "item"
	typeBareItem = "bare.item"
	typeDone     = "batch.done"
)

// item is the payload of the test jobs.
type item struct {
	N     int  `msgpack:"n"`
	Fail  bool `msgpack:"fail"`
	Flaky bool `msgpack:"flaky"` // fails its first attempt, to be retried
}

type fixture struct {
	schema    string
	db        *pgxpool.Pool
	yaml      string
	topo      *topology.Topology
	work      string
	bare      string
	callbacks string

	mu   sync.Mutex
	runs map[string]int // handler runs by job id
}

func topologyYAML(x, work, bare, callbacks string) string {
	return fmt.Sprintf(`version: 1
exchanges:
  %[1]s: {type: direct}
queues:
  %[2]s: {type: classic, retry: {max_attempts: 2, initial_interval: 1s, jitter: 0}}
  %[3]s: {type: classic, dead_letter: false}
  %[4]s: {type: classic, dead_letter: false}
bindings:
  - {exchange: %[1]s, queue: %[2]s, routing_key: %[5]s}
  - {exchange: %[1]s, queue: %[3]s, routing_key: %[6]s}
  - {exchange: %[1]s, queue: %[4]s, routing_key: %[7]s}
routes:
  %[5]s: {exchange: %[1]s}
  %[6]s: {exchange: %[1]s}
  %[7]s: {exchange: %[1]s}
`, x, work, bare, callbacks, typeItem, typeBareItem, typeDone)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{schema: pgtest.Schema(t), runs: map[string]int{}}
	f.db = pgtest.Pool(t, f.schema)
	ctx := brokertest.Context(t, 30*time.Second)
	if _, err := batch.Migrate(ctx, f.db); err != nil {
		t.Fatal(err)
	}
	f.work, f.bare, f.callbacks = brokertest.Name(t, "work"), brokertest.Name(t, "bare"), brokertest.Name(t, "callbacks")
	f.yaml = topologyYAML(brokertest.Name(t, "x"), f.work, f.bare, f.callbacks)
	f.topo = topotest.Apply(t, f.yaml)
	return f
}

// relay runs an outbox relay on the fixture's database until the test ends.
func (f *fixture) relay(t *testing.T) {
	t.Helper()
	r, err := outbox.NewRelay(f.db, testkit.Dial(t, "batch-test-relay"), outbox.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	run(t, r.Run)
}

// handler runs items: it counts each run and fails, for good, the items
// marked so, after delay.
func (f *fixture) handler(delay time.Duration) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		var it item
		if err := job.Decode(&it); err != nil {
			return err
		}
		f.mu.Lock()
		f.runs[job.ID]++
		f.mu.Unlock()
		if delay > 0 {
			time.Sleep(delay)
		}
		if it.Fail {
			return worker.Permanent(fmt.Errorf("item %d refused", it.N))
		}
		if it.Flaky && job.Attempt == 1 {
			return fmt.Errorf("item %d: try again", it.N)
		}
		return nil
	})
}

func (f *fixture) runsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[id]
}

// workers starts a pool of the items' queues with the batches' Finisher
// (and extra finishers after it). It returns its stop func.
func (f *fixture) workers(t *testing.T, name string, delay time.Duration, extra ...worker.Finisher) (stop func()) {
	t.Helper()
	fin, err := batch.NewFinisher(f.db)
	if err != nil {
		t.Fatal(err)
	}
	mux := worker.NewMux()
	mux.Handle(typeItem, f.handler(delay))
	mux.Handle(typeBareItem, f.handler(delay))
	opts := []worker.Option{worker.WithQueue(f.work, worker.Concurrency(8)), worker.WithQueue(f.bare), worker.WithFinisher(fin)}
	for _, e := range extra {
		opts = append(opts, worker.WithFinisher(e))
	}
	pool, err := worker.NewPool(testkit.Dial(t, name), f.topo, mux, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return run(t, pool.Run)
}

// publish writes a batch of n items, those for which fail is true marked
// to fail, and returns its id and its jobs.
func (f *fixture) publish(t *testing.T, n int, fail func(i int) bool, typeOf func(i int) string) (string, []broker.Job) {
	t.Helper()
	ctx := brokertest.Context(t, time.Minute)
	jobs := make([]broker.Job, n)
	for i := range jobs {
		typ := typeItem
		if typeOf != nil {
			typ = typeOf(i)
		}
		jobs[i] = broker.Job{Type: typ, Payload: item{N: i, Fail: fail != nil && fail(i)}}
	}
	var id string
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		var err error
		id, err = batch.Publish(ctx, tx, jobs, broker.Job{Type: typeDone}, batch.Router(f.topo))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id, jobs
}

// callback waits for the next callback and decodes its Result.
func (f *fixture) callback(t *testing.T, timeout time.Duration) (string, batch.Result) {
	t.Helper()
	d := brokertest.Get(t, f.callbacks, timeout)
	var res batch.Result
	dec := msgpack.NewDecoder(bytes.NewReader(d.Body))
	dec.SetCustomStructTag("json")
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("callback %s: %v", d.MessageId, err)
	}
	return d.MessageId, res
}

// noMoreCallbacks checks, after a while, that no other callback came and
// that the outbox holds one callback row per batch.
func (f *fixture) noMoreCallbacks(t *testing.T, batches int) {
	t.Helper()
	time.Sleep(time.Second)
	if n := brokertest.Depth(t, f.callbacks); n != 0 {
		t.Errorf("%d more callbacks", n)
	}
	var rows int
	ctx := brokertest.Context(t, 10*time.Second)
	if err := f.db.QueryRow(ctx, `SELECT count(*) FROM warren_outbox WHERE job_type = $1`, typeDone).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != batches {
		t.Errorf("%d callbacks written to the outbox, want %d", rows, batches)
	}
}

// run runs fn until the test ends, or stop is called.
func run(t *testing.T, fn func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := testkit.Recv(t, done, time.Minute, "a service to stop"); err != nil && !errors.Is(err, context.Canceled) {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func failureIDs(res batch.Result) []string {
	var ids []string
	for _, f := range res.Failures {
		ids = append(ids, f.JobID)
	}
	slices.Sort(ids)
	return ids
}

func TestPublishInvalid(t *testing.T) {
	f := newFixture(t)
	ctx := brokertest.Context(t, 30*time.Second)
	one := []broker.Job{{Type: typeItem}}
	many := make([]broker.Job, batch.MaxJobs+1)
	for i := range many {
		many[i] = broker.Job{Type: typeItem}
	}
	done := broker.Job{Type: typeDone}
	for _, tc := range []struct {
		name     string
		jobs     []broker.Job
		callback broker.Job
		opts     []batch.Option
		want     error
		says     string
	}{
		{name: "no job", callback: done, opts: []batch.Option{batch.Router(f.topo)}, want: batch.ErrInvalid, says: "at least one"},
		{name: "too many", jobs: many, callback: done, opts: []batch.Option{batch.Router(f.topo)}, want: batch.ErrInvalid, says: "at most 10000"},
		{name: "callback without type", jobs: one, opts: []batch.Option{batch.Router(f.topo)}, want: batch.ErrInvalid, says: "no Type"},
		{name: "duplicate ids", jobs: []broker.Job{{ID: "a", Type: typeItem}, {ID: "a", Type: typeItem}}, callback: done,
			opts: []batch.Option{batch.Router(f.topo)}, want: batch.ErrInvalid, says: "counts each id once"},
		{name: "a job with the callback's id", jobs: []broker.Job{{ID: "b", Type: typeItem}}, callback: broker.Job{ID: "b", Type: typeDone},
			opts: []batch.Option{batch.Router(f.topo)}, want: batch.ErrInvalid, says: "callback's id"},
		{name: "invalid callback", jobs: one, callback: broker.Job{Type: typeDone, Headers: map[string]any{"warren-x": "1"}},
			opts: []batch.Option{batch.Router(f.topo)}, want: broker.ErrInvalidJob, says: "reserved"},
		{name: "invalid job", jobs: []broker.Job{{Type: typeItem, Payload: make(chan int)}}, callback: done,
			opts: []batch.Option{batch.Router(f.topo)}, want: broker.ErrInvalidJob, says: "job 0"},
		{name: "no route", jobs: one, callback: done, want: outbox.ErrNoRoute, says: "callback"},
		{name: "no route for a job", jobs: []broker.Job{{Type: "unrouted"}}, callback: done, opts: []batch.Option{batch.Router(f.topo)},
			want: outbox.ErrNoRoute, says: "job 0"},
		{name: "nil router", jobs: one, callback: done, opts: []batch.Option{batch.Router(nil)}, says: "nil router"},
		{name: "nil option", jobs: one, callback: done, opts: []batch.Option{nil}, says: "nil option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := f.db.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			_, err = batch.Publish(ctx, tx, tc.jobs, tc.callback, tc.opts...)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Publish: %v; want an error wrapping %v saying %q", err, tc.want, tc.says)
			}
		})
	}
	var n int
	if err := f.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM warren_batch) + (SELECT count(*) FROM warren_outbox)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows written (%v)", n, err)
	}

	// Without the tables.
	bare := pgtest.Pool(t, pgtest.Schema(t))
	err := pgx.BeginFunc(ctx, bare, func(tx pgx.Tx) error {
		_, err := batch.Publish(ctx, tx, one, done, batch.Router(f.topo))
		return err
	})
	if !errors.Is(err, batch.ErrNoTable) || !strings.Contains(err.Error(), "warren batch migrate") {
		t.Errorf("Publish without the tables: %v; want ErrNoTable", err)
	}
}

// A batch of 10, two jobs dead-lettered and one rejected (its queue has no
// dead-letter queue): the callback gets the counts and the failures, once.
func TestBatchOfTen(t *testing.T) {
	f := newFixture(t)
	id, jobs := f.publish(t, 10, func(i int) bool { return i == 2 || i == 5 || i == 9 },
		func(i int) string {
			if i == 9 {
				return typeBareItem
			}
			return typeItem
		})
	// Job 7 fails once and is retried: only its end counts.
	ctx := brokertest.Context(t, time.Minute)
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM warren_outbox WHERE job_id = $1`, jobs[7].ID)
		if err == nil {
			jobs[7].Payload = item{N: 7, Flaky: true}
			err = outbox.Publish(ctx, tx, jobs[7], outbox.Router(f.topo), outbox.Batch(id))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := batch.Get(ctx, f.db, id)
	if err != nil || b.Status != batch.Running || b.Total != 10 || b.Succeeded+b.Failed != 0 {
		t.Fatalf("Get before any job ran: %+v, %v", b, err)
	}
	f.relay(t)
	f.workers(t, "batch-test-workers", 0)

	cbID, res := f.callback(t, 30*time.Second)
	if cbID != id || res.ID != id || res.Total != 10 || res.Succeeded != 7 || res.Failed != 3 {
		t.Fatalf("callback %s: %+v; want batch %s: 10 jobs, 7 succeeded, 3 failed", cbID, res, id)
	}
	want := []string{jobs[2].ID, jobs[5].ID, jobs[9].ID}
	slices.Sort(want)
	if got := failureIDs(res); !slices.Equal(got, want) {
		t.Errorf("failures %v, want %v", got, want)
	}
	for _, fl := range res.Failures {
		wantStatus := "dead-lettered"
		if fl.JobID == jobs[9].ID {
			wantStatus = "rejected"
		}
		if fl.Status != wantStatus || fl.Class != worker.ClassPermanent || !strings.Contains(fl.Error, "refused") || fl.Type == "" {
			t.Errorf("failure %+v; want %s, class permanent, its error", fl, wantStatus)
		}
	}
	f.noMoreCallbacks(t, 1)
	if n := f.runsOf(jobs[7].ID); n != 2 {
		t.Errorf("the flaky job ran %d times, want 2 (a failure, then its retry)", n)
	}

	b, err = batch.Get(ctx, f.db, id)
	if err != nil || b.Status != batch.Finished || b.FinishedAt == nil || b.Succeeded != 7 || b.Failed != 3 || len(b.Failures) != 3 ||
		b.CallbackType != typeDone {
		t.Errorf("Get after: %+v, %v", b, err)
	}
	if got := b.Result(); got.ID != id || got.Total != 10 || len(got.Failures) != 3 {
		t.Errorf("Result: %+v", got)
	}
	if _, err := batch.Get(ctx, f.db, "nope"); !errors.Is(err, batch.ErrNotFound) {
		t.Errorf("Get of an unknown batch: %v; want ErrNotFound", err)
	}
}

// 1,000 jobs, 100 of them published twice more (same ids), run by pools
// stopped and cut off from the broker mid-batch (their unacked jobs are
// delivered again): the callback comes once, with every job counted once.
func TestDuplicatedDeliveries(t *testing.T) {
	f := newFixture(t)
	f.relay(t)
	const n = 1000
	fail := func(i int) bool { return i%10 == 3 }
	id, jobs := f.publish(t, n, fail, nil)

	// Copies of 100 jobs, as a producer's retry or a relay's crash gives.
	ctx := brokertest.Context(t, 2*time.Minute)
	for range 2 {
		err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
			for i := 0; i < n; i += 10 {
				if err := outbox.Publish(ctx, tx, jobs[i], outbox.Router(f.topo), outbox.Batch(id)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	ended := func() int {
		b, err := batch.Get(ctx, f.db, id)
		if err != nil {
			t.Fatal(err)
		}
		return b.Succeeded + b.Failed
	}
	// A pool stopped mid-batch: its prefetched jobs go back.
	stop := f.workers(t, "batch-test-first", 2*time.Millisecond)
	testkit.WaitFor(t, time.Minute, "a third of the batch", func() bool { return ended() >= n/3 })
	stop()
	// A slow pool cut off from the broker mid-batch: the jobs it held
	// unacked, some of them counted, are delivered again; then a fast
	// pool joins it.
	cut := brokertest.ConnName(t, "batch-test-cut")
	f.workers(t, cut, 100*time.Millisecond)
	testkit.WaitFor(t, time.Minute, "the slow pool at work", func() bool { return ended() >= n/3+20 })
	closed := brokertest.CloseConnections(t, cut)
	t.Logf("%d connections cut after %d jobs counted", closed, ended())
	f.workers(t, "batch-test-second", 2*time.Millisecond)

	cbID, res := f.callback(t, time.Minute)
	if cbID != id || res.Total != n || res.Succeeded != n-n/10 || res.Failed != n/10 || len(res.Failures) != n/10 {
		t.Fatalf("callback %s: total %d, %d succeeded, %d failed, %d failures; want %d, %d, %d", cbID, res.Total, res.Succeeded, res.Failed,
			len(res.Failures), n, n-n/10, n/10)
	}
	f.noMoreCallbacks(t, 1)
	var rows int
	if err := f.db.QueryRow(ctx, `SELECT count(*) FROM warren_batch_jobs WHERE batch_id = $1`, id).Scan(&rows); err != nil || rows != n {
		t.Errorf("%d jobs recorded (%v), want %d", rows, err, n)
	}
	// Each copied job ran at least three times; others ran again when
	// their pool was cut off holding them.
	var again int
	for i, job := range jobs {
		switch r := f.runsOf(job.ID); {
		case i%10 == 0 && r < 3:
			t.Errorf("job %d, published three times, ran %d times", i, r)
		case i%10 != 0 && r > 1:
			again++
		}
	}
	t.Logf("%d jobs besides the copies ran more than once", again)
	if closed > 0 && again == 0 {
		t.Error("no job ran again after the slow pool was cut off with jobs in flight")
	}
}

// A finisher that fails after the count leaves the job unacked: it runs
// again, and counts nothing the second time.
func TestFinisherErrorRunsAgain(t *testing.T) {
	f := newFixture(t)
	f.relay(t)
	id, jobs := f.publish(t, 5, func(i int) bool { return i == 4 }, nil)
	flaky := map[string]bool{jobs[0].ID: true, jobs[4].ID: true}
	var failed atomic.Int64
	var mu sync.Mutex
	f.workers(t, "batch-test-workers", 0, worker.FinisherFunc(func(ctx context.Context, job *worker.Job, end worker.End) error {
		mu.Lock()
		defer mu.Unlock()
		if flaky[job.ID] {
			delete(flaky, job.ID)
			failed.Add(1)
			return errors.New("the store is away")
		}
		return nil
	}))
	_, res := f.callback(t, time.Minute)
	if res.ID != id || res.Total != 5 || res.Succeeded != 4 || res.Failed != 1 {
		t.Fatalf("callback: %+v", res)
	}
	f.noMoreCallbacks(t, 1)
	if failed.Load() != 2 || f.runsOf(jobs[0].ID) != 2 || f.runsOf(jobs[4].ID) != 2 || f.runsOf(jobs[1].ID) != 1 {
		t.Errorf("%d finisher errors; runs %d, %d, %d; want 2 errors, and the jobs they hit run twice",
			failed.Load(), f.runsOf(jobs[0].ID), f.runsOf(jobs[4].ID), f.runsOf(jobs[1].ID))
	}
}

// Batches published at once, their jobs interleaved in one queue: each
// callback once, with its own counts.
func TestConcurrentBatches(t *testing.T) {
	f := newFixture(t)
	f.relay(t)
	f.workers(t, "batch-test-workers", 0)
	const batches = 6
	ids := make(chan string, batches)
	var wg sync.WaitGroup
	for b := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, _ := f.publish(t, 20+b*10, func(i int) bool { return i < b }, nil)
			ids <- id
		}()
	}
	testkit.WaitDone(t, &wg, time.Minute, "the batches published")
	close(ids)
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	got := map[string]batch.Result{}
	for range batches {
		cbID, res := f.callback(t, time.Minute)
		if _, dup := got[cbID]; dup || !want[cbID] {
			t.Fatalf("callback %s: a duplicate, or of no batch", cbID)
		}
		got[cbID] = res
	}
	f.noMoreCallbacks(t, batches)
	for _, res := range got {
		b := (res.Total - 20) / 10
		if res.Failed != b || res.Succeeded != res.Total-b || len(res.Failures) != b {
			t.Errorf("batch %s: %+v; want %d failed", res.ID, res, b)
		}
	}
}

// A callback with a payload of its own keeps it, and a chosen id; its
// handler reads the batch by its job id.
func TestCallbackWithPayload(t *testing.T) {
	f := newFixture(t)
	f.relay(t)
	ctx := brokertest.Context(t, time.Minute)
	cb := broker.Job{ID: "import-42", Type: typeDone, Payload: map[string]string{"file": "a.csv"},
		Headers: map[string]any{"tenant": "acme"}, CorrelationID: "conv-1"}
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		id, err := batch.Publish(ctx, tx, []broker.Job{{Type: typeItem, Payload: item{}}, {Type: typeItem, Payload: item{N: 1}}}, cb,
			batch.Router(f.topo))
		if id != "import-42" && err == nil {
			err = fmt.Errorf("id %q, want the callback's", id)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.workers(t, "batch-test-workers", 0)
	d := brokertest.Get(t, f.callbacks, 30*time.Second)
	var p map[string]string
	if err := msgpack.Unmarshal(d.Body, &p); err != nil || p["file"] != "a.csv" {
		t.Errorf("callback payload %v (%v), want its own", p, err)
	}
	if d.MessageId != "import-42" || d.Headers["tenant"] != "acme" || d.CorrelationId != "conv-1" || d.Type != typeDone {
		t.Errorf("callback %s %s, headers %v, correlation %q", d.MessageId, d.Type, d.Headers, d.CorrelationId)
	}
	b, err := batch.Get(ctx, f.db, d.MessageId)
	if err != nil || b.Status != batch.Finished || b.Succeeded != 2 {
		t.Errorf("Get: %+v, %v", b, err)
	}
}

func TestListAndDeleteFinished(t *testing.T) {
	f := newFixture(t)
	f.relay(t)
	done, _ := f.publish(t, 3, nil, nil)
	f.workers(t, "batch-test-workers", 0)
	f.callback(t, 30*time.Second)
	ctx := brokertest.Context(t, time.Minute)
	// A batch still running: its callback has no route to run.
	var running string
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		var err error
		running, err = batch.Publish(ctx, tx, []broker.Job{{Type: "nowhere"}}, broker.Job{Type: typeDone}, batch.To("", "nowhere"), batch.Router(f.topo))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		status batch.Status
		want   []string
	}{{"", []string{running, done}}, {batch.Running, []string{running}}, {batch.Finished, []string{done}}} {
		list, err := batch.List(ctx, f.db, batch.ListOptions{Status: tc.status})
		var got []string
		for _, b := range list {
			got = append(got, b.ID)
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("List %q: %v, %v; want %v", tc.status, got, err, tc.want)
		}
	}
	if _, err := batch.List(ctx, f.db, batch.ListOptions{Status: "done"}); err == nil {
		t.Error("List of an unknown status: no error")
	}
	if n, err := batch.DeleteFinished(ctx, f.db, time.Hour); err != nil || n != 0 {
		t.Errorf("DeleteFinished(1h): %d, %v; want none", n, err)
	}
	if n, err := batch.DeleteFinished(ctx, f.db, 0); err != nil || n != 1 {
		t.Errorf("DeleteFinished(0): %d, %v; want 1", n, err)
	}
	if _, err := batch.Get(ctx, f.db, done); !errors.Is(err, batch.ErrNotFound) {
		t.Errorf("Get of a deleted batch: %v", err)
	}
	var rows int
	if err := f.db.QueryRow(ctx, `SELECT count(*) FROM warren_batch_jobs`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d job rows left (%v)", rows, err)
	}
	if _, err := batch.Get(ctx, f.db, running); err != nil {
		t.Errorf("the running batch: %v", err)
	}
}

func TestMigrateIdempotent(t *testing.T) {
	db := pgtest.Pool(t, pgtest.Schema(t))
	ctx := brokertest.Context(t, 30*time.Second)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := batch.Migrate(ctx, db); err != nil {
				t.Error(err)
			}
		}()
	}
	testkit.WaitDone(t, &wg, 30*time.Second, "the migrations")
	applied, err := batch.Migrate(ctx, db)
	if err != nil || len(applied) != 0 {
		t.Errorf("Migrate again: %v, %v; want nothing applied", applied, err)
	}
}

func TestNewFinisherErrors(t *testing.T) {
	if _, err := batch.NewFinisher(nil); err == nil {
		t.Error("nil pool: no error")
	}
	db := pgtest.Pool(t, pgtest.Schema(t))
	if _, err := batch.NewFinisher(db, batch.WithFinishTimeout(0)); err == nil || !strings.Contains(err.Error(), "positive") {
		t.Errorf("WithFinishTimeout(0): %v", err)
	}
	if _, err := batch.NewFinisher(db, nil); err == nil {
		t.Error("nil option: no error")
	}
}
