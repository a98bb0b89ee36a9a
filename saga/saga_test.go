package saga_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/saga"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(brokertest.MainWithLeakCheck(m))
}

// trip is the test sagas' state.
type trip struct {
	ID      string   `json:"id"`
	Results []string `json:"results"`
}

type stepPayload struct {
	Saga string `msgpack:"saga"`
}

// The step types: a, b, c and their compensations.
var stepTypes = []string{"step.a", "step.b", "step.c", "step.a.undo", "step.b.undo", "step.c.undo"}

// define returns the test saga: steps a, b, c, each with a compensation,
// each with timeout d (0: none).
func define(t testing.TB, d time.Duration) *saga.Definition[trip] {
	t.Helper()
	def, err := saga.Define("trip", steps(d)...)
	if err != nil {
		t.Fatal(err)
	}
	return def
}

func steps(d time.Duration) []saga.Step[trip] {
	var out []saga.Step[trip]
	for _, n := range []string{"a", "b", "c"} {
		typ := "step." + n
		out = append(out, saga.Step[trip]{
			Name: n,
			Command: func(_ context.Context, s *trip) (broker.Job, error) {
				return broker.Job{Type: typ, Payload: stepPayload{Saga: s.ID}}, nil
			},
			OnReply: func(_ context.Context, s *trip, r saga.Reply) error {
				var res string
				if err := r.Decode(&res); err != nil {
					return err
				}
				s.Results = append(s.Results, res)
				return nil
			},
			Compensate: func(_ context.Context, s *trip) (broker.Job, error) {
				return broker.Job{Type: typ + ".undo", Payload: stepPayload{Saga: s.ID}}, nil
			},
			Timeout: d,
		})
	}
	return out
}

func TestDefine(t *testing.T) {
	cmd := func(context.Context, *trip) (broker.Job, error) { return broker.Job{Type: "x"}, nil }
	for _, tc := range []struct {
		name  string
		saga  string
		steps []saga.Step[trip]
		want  []string // in the error, all of them
	}{
		{"valid", "s", []saga.Step[trip]{{Name: "a", Command: cmd}, {Name: "b", Command: cmd, Timeout: time.Second}}, nil},
		{"no name", "", []saga.Step[trip]{{Name: "a", Command: cmd}}, []string{"no name"}},
		{"no steps", "s", nil, []string{"no steps"}},
		{"duplicate names", "s", []saga.Step[trip]{{Name: "a", Command: cmd}, {Name: "a", Command: cmd}}, []string{`step 2 ("a") has the name of step 1`}},
		{"no command, no step name, negative timeout", "s", []saga.Step[trip]{{Name: "a"}, {Command: cmd, Timeout: -1}},
			[]string{`step 1 ("a") has no Command`, "step 2 has no name", "negative Timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			def, err := saga.Define(tc.saga, tc.steps...)
			if tc.want == nil {
				if err != nil || def.Name() != tc.saga {
					t.Fatalf("Define: %v", err)
				}
				return
			}
			var de *saga.DefinitionError
			if !errors.As(err, &de) {
				t.Fatalf("Define: %v, want a *DefinitionError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	_, err := saga.Define("s", saga.Step[chan int]{Name: "a", Command: func(context.Context, *chan int) (broker.Job, error) { return broker.Job{}, nil }})
	if err == nil || !strings.Contains(err.Error(), "JSON") {
		t.Errorf("a state that does not marshal as JSON: %v", err)
	}
}

// fixture is a database schema with the saga's and the outbox's tables
// and an effects table, a topology with the steps' queue and the reply
// queue, and a broker connection.
type fixture struct {
	schema  string
	db      *pgxpool.Pool
	yaml    string
	topo    *topology.Topology
	steps   string // the steps' queue
	replies string
	conn    *broker.Conn
}

func topologyYAML(x, q, r string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nexchanges:\n  %s: {type: direct}\nqueues:\n  %s: {type: quorum}\n  %s: {type: quorum}\nbindings:\n", x, q, r)
	for _, typ := range stepTypes {
		fmt.Fprintf(&b, "  - {exchange: %s, queue: %s, routing_key: %s}\n", x, q, typ)
	}
	b.WriteString("routes:\n")
	for _, typ := range stepTypes {
		fmt.Fprintf(&b, "  %s: {exchange: %s}\n", typ, x)
	}
	return b.String()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{schema: pgtest.Schema(t)}
	f.db = pgtest.Pool(t, f.schema)
	ctx := brokertest.Context(t, 30*time.Second)
	if _, err := saga.Migrate(ctx, f.db); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Exec(ctx, `CREATE TABLE effects (seq bigint GENERATED ALWAYS AS IDENTITY, saga text, type text)`); err != nil {
		t.Fatal(err)
	}
	x := brokertest.Name(t, "x")
	f.steps, f.replies = brokertest.Name(t, "steps"), brokertest.Name(t, "replies")
	f.yaml = topologyYAML(x, f.steps, f.replies)
	f.topo = topotest.Apply(t, f.yaml)
	f.conn = testkit.Dial(t, "saga-test")
	return f
}

// behaviour decides what a step's handler does for a saga: nil runs it.
type behaviour func(jobType, saga string) error

// workers runs the steps' service: each handler writes its effect through
// a pginbox inbox into effects (no unique key: a second effect would show),
// and replies with "<type>:<saga>". Stopped at cleanup.
func (f *fixture) workers(t *testing.T, b behaviour) {
	t.Helper()
	ctx := brokertest.Context(t, 30*time.Second)
	store, err := pginbox.New(f.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ib, err := inbox.New(store, "steps")
	if err != nil {
		t.Fatal(err)
	}
	mux := worker.NewMux()
	mux.Use(ib.Middleware)
	for _, typ := range stepTypes {
		mux.Handle(typ, worker.TypedResult(func(ctx context.Context, job *worker.Job, p stepPayload) (string, error) {
			if b != nil {
				if err := b(job.Type, p.Saga); err != nil {
					return "", err
				}
			}
			if _, err := pginbox.Tx(ctx).Exec(ctx, `INSERT INTO effects (saga, type) VALUES ($1, $2)`, p.Saga, job.Type); err != nil {
				return "", err
			}
			return job.Type + ":" + p.Saga, nil
		}))
	}
	pool, err := worker.NewPool(testkit.Dial(t, "saga-test-steps"), f.topo, mux, worker.WithQueue(f.steps, worker.Concurrency(8)))
	if err != nil {
		t.Fatal(err)
	}
	run(t, pool.Run)
}

// run runs f until the test ends.
func run(t *testing.T, f func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := testkit.Recv(t, done, time.Minute, "a service to stop"); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// coordinator starts a coordinator of defs.
func (f *fixture) coordinator(t *testing.T, defs ...saga.Def) *saga.Coordinator {
	t.Helper()
	c, err := saga.NewCoordinator(f.db, testkit.Dial(t, "saga-test-coordinator"), f.topo, saga.WithReplyQueue(f.replies),
		saga.WithTimeoutInterval(50*time.Millisecond), saga.WithRelayOptions(outbox.WithPollInterval(50*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(defs...); err != nil {
		t.Fatal(err)
	}
	run(t, c.Run)
	testkit.WaitFor(t, 20*time.Second, "the coordinator ready", func() bool { return c.Ready() == nil })
	return c
}

func (f *fixture) waitEnded(t *testing.T, ids ...string) map[string]saga.Instance {
	t.Helper()
	out := map[string]saga.Instance{}
	testkit.WaitFor(t, 60*time.Second, "the sagas to end", func() bool {
		for _, id := range ids {
			in, err := saga.Get(context.Background(), f.db, id)
			if err != nil {
				t.Fatal(err)
			}
			if !in.Status.Ended() {
				return false
			}
			out[id] = in
		}
		return true
	})
	return out
}

// effects returns the effects of the saga id, in order.
func (f *fixture) effects(t *testing.T, id string) []string {
	t.Helper()
	rows, err := f.db.Query(context.Background(), `SELECT type FROM effects WHERE saga = $1 ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func commandsOf(in saga.Instance) string {
	var parts []string
	for _, c := range in.Commands {
		parts = append(parts, c.Kind[:4]+":"+c.Step+":"+c.Status)
	}
	return strings.Join(parts, " ")
}

func TestCompletes(t *testing.T) {
	f := newFixture(t)
	def := define(t, 0)
	f.workers(t, nil)
	c := f.coordinator(t, def)
	ctx := brokertest.Context(t, 30*time.Second)
	if err := saga.StartTx(ctx, c, def, "trip-1", trip{ID: "trip-1"}); err != nil {
		t.Fatal(err)
	}
	in := f.waitEnded(t, "trip-1")["trip-1"]
	if in.Status != saga.Completed {
		t.Fatalf("status %s, want completed (%s)", in.Status, in.LastError)
	}
	if got, want := commandsOf(in), "comm:a:succeeded comm:b:succeeded comm:c:succeeded"; got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
	if got, want := string(in.State), `{"id": "trip-1", "results": ["step.a:trip-1", "step.b:trip-1", "step.c:trip-1"]}`; got != want {
		t.Errorf("state %s, want %s", got, want)
	}
	if got := strings.Join(f.effects(t, "trip-1"), " "); got != "step.a step.b step.c" {
		t.Errorf("effects %q", got)
	}
	// The id is taken; Start leaves the transaction usable.
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		if err := saga.Start(ctx, tx, c, def, "trip-1", trip{ID: "trip-1"}); !errors.Is(err, saga.ErrExists) {
			t.Errorf("Start with an id in use: %v, want ErrExists", err)
		}
		_, err := tx.Exec(ctx, `SELECT 1`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A saga whose transaction rolls back never starts.
	_ = pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		if err := saga.Start(ctx, tx, c, def, "trip-2", trip{ID: "trip-2"}); err != nil {
			t.Fatal(err)
		}
		return errors.New("rolled back")
	})
	time.Sleep(300 * time.Millisecond)
	if _, err := saga.Get(ctx, f.db, "trip-2"); !errors.Is(err, saga.ErrNotFound) {
		t.Errorf("a saga started in a rolled back transaction: %v", err)
	}
	if got := f.effects(t, "trip-2"); len(got) != 0 {
		t.Errorf("effects of a saga rolled back: %q", got)
	}
	other, _ := saga.Define("other", steps(0)...)
	if err := saga.StartTx(ctx, c, other, "trip-3", trip{}); !errors.Is(err, saga.ErrNotRegistered) {
		t.Errorf("Start with an unregistered definition: %v", err)
	}
}

// Step c fails for good: the compensations of b then a run, each once.
func TestFailureCompensates(t *testing.T) {
	f := newFixture(t)
	def := define(t, 0)
	f.workers(t, func(typ, _ string) error {
		if typ == "step.c" {
			return worker.Permanent(errors.New("no seats left"))
		}
		return nil
	})
	c := f.coordinator(t, def)
	ctx := brokertest.Context(t, 30*time.Second)
	if err := saga.StartTx(ctx, c, def, "trip-1", trip{ID: "trip-1"}); err != nil {
		t.Fatal(err)
	}
	in := f.waitEnded(t, "trip-1")["trip-1"]
	if in.Status != saga.Compensated || !strings.Contains(in.LastError, "no seats left") {
		t.Fatalf("status %s (%q), want compensated after step c's failure", in.Status, in.LastError)
	}
	if got, want := commandsOf(in), "comm:a:succeeded comm:b:succeeded comm:c:failed comp:b:succeeded comp:a:succeeded"; got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
	if got, want := strings.Join(f.effects(t, "trip-1"), " "), "step.a step.b step.b.undo step.a.undo"; got != want {
		t.Errorf("effects %q, want %q", got, want)
	}
}

// Each compensation is built knowing why the saga is undone (Cause): the
// first, sent on the failure, and the next, sent on the first's reply by
// a coordinator that reads the saga back from its table.
func TestCompensationSeesCause(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	causes := map[string]string{}
	st := steps(0)
	for i := range st {
		compensate, name := st[i].Compensate, st[i].Name
		st[i].Compensate = func(ctx context.Context, s *trip) (broker.Job, error) {
			mu.Lock()
			causes[name] = saga.Cause(ctx)
			mu.Unlock()
			return compensate(ctx, s)
		}
	}
	def, err := saga.Define("trip", st...)
	if err != nil {
		t.Fatal(err)
	}
	f.workers(t, func(typ, _ string) error {
		if typ == "step.c" {
			return worker.Permanent(errors.New("no seats left"))
		}
		return nil
	})
	c := f.coordinator(t, def)
	ctx := brokertest.Context(t, 30*time.Second)
	if err := saga.StartTx(ctx, c, def, "trip-1", trip{ID: "trip-1"}); err != nil {
		t.Fatal(err)
	}
	if in := f.waitEnded(t, "trip-1")["trip-1"]; in.Status != saga.Compensated {
		t.Fatalf("status %s, want compensated", in.Status)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, step := range []string{"a", "b"} {
		if !strings.Contains(causes[step], "no seats left") {
			t.Errorf("step %s's compensation saw the cause %q, want step c's error", step, causes[step])
		}
	}
	if _, ok := causes["c"]; ok {
		t.Error("step c, which failed, was compensated")
	}
	if saga.Cause(ctx) != "" {
		t.Error("Cause outside a compensation is not empty")
	}
}

// A compensation that fails for good leaves the saga failed.
func TestCompensationFailure(t *testing.T) {
	f := newFixture(t)
	def := define(t, 0)
	f.workers(t, func(typ, _ string) error {
		if typ == "step.c" || typ == "step.a.undo" {
			return worker.Permanent(errors.New("refused"))
		}
		return nil
	})
	c := f.coordinator(t, def)
	ctx := brokertest.Context(t, 30*time.Second)
	if err := saga.StartTx(ctx, c, def, "trip-1", trip{ID: "trip-1"}); err != nil {
		t.Fatal(err)
	}
	in := f.waitEnded(t, "trip-1")["trip-1"]
	if in.Status != saga.Failed || !strings.Contains(in.LastError, `compensation of step "a" failed`) {
		t.Fatalf("status %s (%q), want failed in a's compensation", in.Status, in.LastError)
	}
	if got, want := commandsOf(in), "comm:a:succeeded comm:b:succeeded comm:c:failed comp:b:succeeded comp:a:failed"; got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
}

// Step b answers after its timeout: the saga compensates a, and b's late
// reply is ignored.
func TestTimeout(t *testing.T) {
	f := newFixture(t)
	def := define(t, 700*time.Millisecond)
	late := make(chan struct{})
	var release sync.Once
	f.workers(t, func(typ, _ string) error {
		if typ == "step.b" {
			<-late
		}
		return nil
	})
	t.Cleanup(func() { release.Do(func() { close(late) }) }) // runs before the workers' cleanup
	ctx := brokertest.Context(t, 30*time.Second)
	// A saga of another service, in the same schema, past its deadline: not
	// this coordinator's to time out.
	if _, err := f.db.Exec(ctx, `INSERT INTO warren_saga (id, name, status, state, deadline) VALUES
		('other-1', 'other', 'running', '{}', now() - interval '1 minute')`); err != nil {
		t.Fatal(err)
	}
	c := f.coordinator(t, def)
	if err := saga.StartTx(ctx, c, def, "trip-1", trip{ID: "trip-1"}); err != nil {
		t.Fatal(err)
	}
	in := f.waitEnded(t, "trip-1")["trip-1"]
	release.Do(func() { close(late) })
	if other, err := saga.Get(ctx, f.db, "other-1"); err != nil || other.Status != saga.Running {
		t.Errorf("another service's saga: %+v, %v; want it left running", other, err)
	}
	if in.Status != saga.Compensated || !strings.Contains(in.LastError, `step "b" timed out`) {
		t.Fatalf("status %s (%q), want compensated after b's timeout", in.Status, in.LastError)
	}
	testkit.WaitFor(t, 20*time.Second, "b's late effect", func() bool { return len(f.effects(t, "trip-1")) == 3 })
	testkit.WaitFor(t, 20*time.Second, "b's late reply consumed", func() bool { return brokertest.Depth(t, f.replies) == 0 })
	time.Sleep(300 * time.Millisecond)
	after, err := saga.Get(ctx, f.db, "trip-1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := commandsOf(after), "comm:a:succeeded comm:b:timed_out comp:a:succeeded"; got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
	if after.Version != in.Version || after.Status != saga.Compensated {
		t.Errorf("the late reply changed the saga: version %d → %d, status %s", in.Version, after.Version, after.Status)
	}
	if got, want := strings.Join(f.effects(t, "trip-1"), " "), "step.a step.a.undo step.b"; got != want {
		t.Errorf("effects %q, want %q", got, want)
	}
}

// Copies of replies (a success, a failure) to settled commands change
// nothing.
func TestDuplicateRepliesIgnored(t *testing.T) {
	f := newFixture(t)
	def := define(t, 0)
	f.workers(t, nil)
	c := f.coordinator(t, def)
	ctx := brokertest.Context(t, 30*time.Second)
	if err := saga.StartTx(ctx, c, def, "trip-1", trip{ID: "trip-1"}); err != nil {
		t.Fatal(err)
	}
	in := f.waitEnded(t, "trip-1")["trip-1"]
	if in.Status != saga.Completed {
		t.Fatalf("status %s", in.Status)
	}
	// Replies again, through the outbox (the coordinator's relay sends them).
	err := pgx.BeginFunc(ctx, f.db, func(tx pgx.Tx) error {
		for _, cmd := range in.Commands {
			for range 2 {
				if err := outbox.Publish(ctx, tx, broker.Job{Type: cmd.JobType + broker.ReplyTypeSuffix, CorrelationID: cmd.JobID, Payload: "again"},
					outbox.To("", f.replies)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "the copies sent", func() bool {
		s, err := outbox.ReadStats(ctx, f.db)
		return err == nil && s.Backlog == 0
	})
	testkit.WaitFor(t, 20*time.Second, "the copies consumed", func() bool { return brokertest.Depth(t, f.replies) == 0 })
	time.Sleep(300 * time.Millisecond)
	after, err := saga.Get(ctx, f.db, "trip-1")
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != in.Version || string(after.State) != string(in.State) || commandsOf(after) != commandsOf(in) {
		t.Errorf("copies of replies changed the saga: %+v → %+v", in, after)
	}
}

// Many sagas at once, two coordinators: each ends, each effect once.
func TestConcurrentSagas(t *testing.T) {
	f := newFixture(t)
	def := define(t, 0)
	f.workers(t, func(typ, id string) error {
		if typ == "step.c" && strings.HasSuffix(id, "3") {
			return worker.Permanent(errors.New("refused"))
		}
		return nil
	})
	c := f.coordinator(t, def)
	f.coordinator(t, def)
	ctx := brokertest.Context(t, 60*time.Second)
	var ids []string
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		id := fmt.Sprintf("trip-%02d", i)
		ids = append(ids, id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- saga.StartTx(ctx, c, def, id, trip{ID: id})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ended := f.waitEnded(t, ids...)
	for _, id := range ids {
		want, status := "step.a step.b step.c", saga.Completed
		if strings.HasSuffix(id, "3") {
			want, status = "step.a step.b step.b.undo step.a.undo", saga.Compensated
		}
		if got := strings.Join(f.effects(t, id), " "); got != want || ended[id].Status != status {
			t.Errorf("saga %s: %s with effects %q, want %s with %q", id, ended[id].Status, got, status, want)
		}
	}
	list, err := saga.List(ctx, f.db, saga.ListOptions{Status: saga.Compensated, Name: "trip"})
	if err != nil || len(list) != 4 {
		t.Errorf("List compensated: %d, %v; want 4", len(list), err)
	}
}

func TestNewCoordinatorErrors(t *testing.T) {
	f := newFixture(t)
	_, err := saga.NewCoordinator(f.db, f.conn, f.topo)
	if err == nil || !strings.Contains(err.Error(), "WithReplyQueue") {
		t.Errorf("no reply queue: %v", err)
	}
	_, err = saga.NewCoordinator(f.db, f.conn, f.topo, saga.WithReplyQueue("nope"))
	if err == nil || !strings.Contains(err.Error(), `reply queue "nope" is not in the topology`) {
		t.Errorf("a reply queue not in the topology: %v", err)
	}
	// Tables missing.
	db := pgtest.Pool(t, pgtest.Schema(t))
	c, err := saga.NewCoordinator(db, f.conn, f.topo, saga.WithReplyQueue(f.replies), saga.WithoutRelay())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(brokertest.Context(t, 10*time.Second)); !errors.Is(err, saga.ErrNoTable) {
		t.Errorf("Run without the tables: %v, want ErrNoTable", err)
	}
}

// A compensation without a reply in time leaves the saga failed.
func TestCompensationTimeout(t *testing.T) {
	f := newFixture(t)
	def := define(t, 500*time.Millisecond)
	hang := make(chan struct{})
	var release sync.Once
	f.workers(t, func(typ, _ string) error {
		switch typ {
		case "step.c":
			return worker.Permanent(errors.New("refused"))
		case "step.b.undo":
			<-hang
		}
		return nil
	})
	t.Cleanup(func() { release.Do(func() { close(hang) }) }) // runs before the workers' cleanup
	c := f.coordinator(t, def)
	if err := saga.StartTx(brokertest.Context(t, 30*time.Second), c, def, "trip-1", trip{ID: "trip-1"}); err != nil {
		t.Fatal(err)
	}
	in := f.waitEnded(t, "trip-1")["trip-1"]
	if in.Status != saga.Failed || !strings.Contains(in.LastError, `compensation of step "b" timed out`) {
		t.Fatalf("status %s (%q), want failed after b's compensation timed out", in.Status, in.LastError)
	}
	if got, want := commandsOf(in), "comm:a:succeeded comm:b:succeeded comm:c:failed comp:b:timed_out"; got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
}

// An OnReply error fails its step; a command that cannot be built fails
// the saga's start, or compensates the steps before it.
func TestStepErrors(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name     string
		change   func(s []saga.Step[trip])
		commands string
		effects  string
	}{
		{"OnReply fails", func(s []saga.Step[trip]) {
			s[1].OnReply = func(context.Context, *trip, saga.Reply) error { return boom }
		}, "comm:a:succeeded comm:b:failed comp:a:succeeded", "step.a step.b step.a.undo"},
		{"the next command cannot be built", func(s []saga.Step[trip]) {
			s[2].Command = func(context.Context, *trip) (broker.Job, error) { return broker.Job{}, boom }
		}, "comm:a:succeeded comm:b:succeeded comp:b:succeeded comp:a:succeeded", "step.a step.b step.b.undo step.a.undo"},
		{"a step without compensation is skipped", func(s []saga.Step[trip]) {
			s[1].Compensate = nil
			s[2].Command = func(context.Context, *trip) (broker.Job, error) { return broker.Job{}, boom }
		}, "comm:a:succeeded comm:b:succeeded comp:a:succeeded", "step.a step.b step.a.undo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			s := steps(0)
			tc.change(s)
			def, err := saga.Define("trip", s...)
			if err != nil {
				t.Fatal(err)
			}
			f.workers(t, nil)
			c := f.coordinator(t, def)
			if err := saga.StartTx(brokertest.Context(t, 30*time.Second), c, def, "trip-1", trip{ID: "trip-1"}); err != nil {
				t.Fatal(err)
			}
			in := f.waitEnded(t, "trip-1")["trip-1"]
			if in.Status != saga.Compensated || !strings.Contains(in.LastError, "boom") {
				t.Errorf("status %s (%q), want compensated for boom", in.Status, in.LastError)
			}
			if got := commandsOf(in); got != tc.commands {
				t.Errorf("commands %q, want %q", got, tc.commands)
			}
			if got := strings.Join(f.effects(t, "trip-1"), " "); got != tc.effects {
				t.Errorf("effects %q, want %q", got, tc.effects)
			}
		})
	}
	t.Run("the first command cannot be built", func(t *testing.T) {
		f := newFixture(t)
		s := steps(0)
		s[0].Command = func(context.Context, *trip) (broker.Job, error) { return broker.Job{}, boom }
		def, err := saga.Define("trip", s...)
		if err != nil {
			t.Fatal(err)
		}
		c, err := saga.NewCoordinator(f.db, f.conn, f.topo, saga.WithReplyQueue(f.replies), saga.WithoutRelay())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Register(def); err != nil {
			t.Fatal(err)
		}
		ctx := brokertest.Context(t, 30*time.Second)
		if err := saga.StartTx(ctx, c, def, "trip-1", trip{ID: "trip-1"}); !errors.Is(err, boom) {
			t.Errorf("Start: %v, want boom", err)
		}
		if _, err := saga.Get(ctx, f.db, "trip-1"); !errors.Is(err, saga.ErrNotFound) {
			t.Errorf("a saga whose start failed: %v", err)
		}
	})
}
