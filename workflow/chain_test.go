package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/queuetest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
	"github.com/warrenmq/warren/workflow"
)

func TestMain(m *testing.M) { os.Exit(brokertest.Main(m)) }

// run is one handler run of a chain's job, as the test's handlers saw it.
type run struct {
	ID, Type string
	Payload  string
	Input    string // workflow.Input, or "-"
	Info     workflow.Info
}

// recorder runs a chain's steps: each returns "<type>(<payload>)" as its
// result, or fails for good when its type is in fail.
type recorder struct {
	mu   sync.Mutex
	runs []run
	fail map[string]bool
}

func (r *recorder) handle(_ context.Context, job *worker.Job) error {
	var p string
	if err := job.Decode(&p); err != nil {
		p = fmt.Sprintf("<%v>", err)
	}
	in := "-"
	var s string
	if err := workflow.Input(job, &s); err == nil {
		in = s
	} else if !errors.Is(err, workflow.ErrNoInput) {
		in = "<" + err.Error() + ">"
	}
	r.mu.Lock()
	r.runs = append(r.runs, run{ID: job.ID, Type: job.Type, Payload: p, Input: in, Info: workflow.Of(job)})
	r.mu.Unlock()
	if r.fail[job.Type] {
		return worker.Permanent(errors.New(job.Type + " failing on purpose"))
	}
	job.SetResult(job.Type + "(" + p + ")")
	return nil
}

func (r *recorder) get() []run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.runs)
}

func (r *recorder) types() []string {
	var out []string
	for _, x := range r.get() {
		out = append(out, x.Type)
	}
	return out
}

func start(t *testing.T, f *queuetest.Fixture, r *recorder, types ...string) {
	t.Helper()
	mux := worker.NewMux()
	for _, ty := range types {
		mux.HandleFunc(ty, r.handle)
	}
	f.Run(mux, worker.WithQueue(f.Queue, worker.Concurrency(1)))
}

// Each step runs on the result of the one before: as its payload, or as
// its Input when it has a payload of its own.
func TestChainResultsFlow(t *testing.T) {
	t.Parallel()
	f := queuetest.New(t, "a", "b", "c")
	r := &recorder{}
	start(t, f, r, "a", "b", "c")
	c, err := workflow.NewChain(
		workflow.Step{Type: "a", Payload: "start"},
		workflow.Step{Type: "b"},
		workflow.Step{Type: "c", Payload: "own"},
	)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Publish(brokertest.Context(t, 30*time.Second), f.Pub)
	if err != nil {
		t.Fatal(err)
	}
	f.WaitCount(worker.Succeeded, 3, 30*time.Second)
	got := r.get()
	want := []run{
		{Type: "a", Payload: "start", Input: "-", Info: workflow.Info{ChainID: id, Step: 0, Remaining: 2}},
		{Type: "b", Payload: "a(start)", Input: "-", Info: workflow.Info{ChainID: id, Step: 1, Remaining: 1}},
		{Type: "c", Payload: "own", Input: "b(a(start))", Info: workflow.Info{ChainID: id, Step: 2}},
	}
	if len(got) != len(want) {
		t.Fatalf("runs %+v, want %+v", got, want)
	}
	for i := range want {
		g := got[i]
		g.ID = ""
		if fmt.Sprint(g) != fmt.Sprint(want[i]) {
			t.Errorf("run %d: %+v, want %+v", i, g, want[i])
		}
	}
	if got[0].ID != id {
		t.Errorf("the first step's id is %s, want the chain's, %s", got[0].ID, id)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(r.get()); n != 3 {
		t.Errorf("%d runs, want 3: the chain went on after its last step", n)
	}
}

// A step that fails for good runs the compensations of the steps done
// before it, newest first, each on its own payload or its step's result,
// told which step failed.
func TestChainCompensatesInReverse(t *testing.T) {
	t.Parallel()
	f := queuetest.New(t, "a", "b", "c", "undo-a", "undo-b")
	r := &recorder{fail: map[string]bool{"c": true}}
	start(t, f, r, "a", "b", "c", "undo-a", "undo-b")
	c, err := workflow.NewChain(
		workflow.Step{Type: "a", Payload: "start", Compensate: &workflow.Step{Type: "undo-a", Payload: "undo a's"}},
		workflow.Step{Type: "b", Compensate: &workflow.Step{Type: "undo-b"}},
		workflow.Step{Type: "c"},
	)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Publish(brokertest.Context(t, 30*time.Second), f.Pub)
	if err != nil {
		t.Fatal(err)
	}
	f.WaitCount(worker.Succeeded, 4, 30*time.Second)
	if got, want := r.types(), []string{"a", "b", "c", "undo-b", "undo-a"}; !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	runs := r.get()
	failedID := runs[2].ID
	for i, w := range []struct {
		payload string
		step    int
	}{{"b(a(start))", 0}, {"undo a's", 1}} {
		g := runs[3+i]
		if g.Payload != w.payload || !g.Info.Compensating || g.Info.Step != w.step || g.Info.ChainID != id {
			t.Errorf("compensation %d (%s): payload %q, info %+v; want payload %q, step %d, compensating, chain %s", i, g.Type, g.Payload, g.Info, w.payload, w.step, id)
		}
		if fl := g.Info.Failed; fl == nil || fl.JobID != failedID || fl.Type != "c" || fl.Class != worker.ClassPermanent || fl.Error == "" {
			t.Errorf("compensation %d (%s): Failed %+v, want step c (%s), class permanent, with its error", i, g.Type, fl, failedID)
		}
	}
	if got := brokertest.Depth(t, topology.DeadLetterQueueName(f.Queue)); got != 1 {
		t.Errorf("the dead-letter queue holds %d jobs, want the failed step", got)
	}
}

// A step that ran twice publishes its next step twice with the same job
// id: one job to an idempotent consumer.
func TestChainStepIDsAreStable(t *testing.T) {
	t.Parallel()
	f := queuetest.New(t, "a", "b")
	r := &recorder{}
	start(t, f, r, "a", "b")
	slip := &broker.Slip{ChainID: brokertest.JobID(t), Next: []broker.SlipStep{{Type: "b"}}}
	// Two copies of the first step, as a redelivery makes.
	ctx := brokertest.Context(t, 30*time.Second)
	for range 2 {
		if err := f.Pub.Publish(ctx, broker.Job{ID: slip.ChainID, Type: "a", Payload: "x"}, broker.RoutingSlip(slip)); err != nil {
			t.Fatal(err)
		}
	}
	f.WaitCount(worker.Succeeded, 4, 30*time.Second)
	var bs []string
	for _, x := range r.get() {
		if x.Type == "b" {
			bs = append(bs, x.ID)
		}
	}
	if len(bs) != 2 || bs[0] != bs[1] || bs[0] == "" {
		t.Errorf("step b ran with ids %v, want twice with one id", bs)
	}
}

// A step whose next step has no route is parked with class chain, its
// slip kept; nothing is compensated.
func TestChainNextStepWithoutRoute(t *testing.T) {
	t.Parallel()
	f := queuetest.New(t, "a", "undo-a")
	r := &recorder{}
	start(t, f, r, "a", "undo-a")
	c, err := workflow.NewChain(
		workflow.Step{Type: "a", Compensate: &workflow.Step{Type: "undo-a"}},
		workflow.Step{Type: "nowhere"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(brokertest.Context(t, 30*time.Second), f.Pub); err != nil {
		t.Fatal(err)
	}
	f.WaitCount(worker.DeadLettered, 1, 30*time.Second)
	o := f.Outcomes()
	if last := o[len(o)-1]; last.Class != worker.ClassChain || !errors.Is(last.Err, broker.ErrNoRoute) {
		t.Errorf("outcome %+v, want dead-lettered with class chain and ErrNoRoute", last)
	}
	d := brokertest.Get(t, topology.DeadLetterQueueName(f.Queue), 10*time.Second)
	if _, ok := d.Headers[broker.HeaderChain]; !ok {
		t.Errorf("the parked step lost its routing slip: headers %v", d.Headers)
	}
	time.Sleep(300 * time.Millisecond)
	if got := r.types(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("ran %v, want only a: nothing to compensate", got)
	}
}

func TestNewChainRefuses(t *testing.T) {
	big := make([]byte, broker.MaxSlipBytes+1)
	for _, tc := range []struct {
		name  string
		steps []workflow.Step
	}{
		{"no steps", nil},
		{"a step without a type", []workflow.Step{{Type: "a"}, {}}},
		{"a first step without a type", []workflow.Step{{}}},
		{"a compensation with a compensation", []workflow.Step{{Type: "a"}, {Type: "b", Compensate: &workflow.Step{Type: "c", Compensate: &workflow.Step{Type: "d"}}}}},
		{"payloads over the limit", []workflow.Step{{Type: "a"}, {Type: "b", Payload: big}}},
		{"a payload that cannot be encoded", []workflow.Step{{Type: "a"}, {Type: "b", Payload: make(chan int)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := workflow.NewChain(tc.steps...); !errors.Is(err, broker.ErrInvalidSlip) && !errors.Is(err, broker.ErrInvalidJob) {
				t.Errorf("NewChain: %v, want an error wrapping ErrInvalidSlip or ErrInvalidJob", err)
			}
		})
	}
}

// A chain cannot start with a batch or a call.
func TestRoutingSlipRefusedByBatchAndCall(t *testing.T) {
	t.Parallel()
	f := queuetest.New(t, "a")
	slip := &broker.Slip{ChainID: "c1"}
	ctx := brokertest.Context(t, 30*time.Second)
	err := f.Pub.PublishBatch(ctx, []broker.Job{{Type: "a"}, {Type: "a"}}, broker.RoutingSlip(slip))
	if !errors.Is(err, broker.ErrInvalidOption) {
		t.Errorf("PublishBatch of 2 with a RoutingSlip: %v, want ErrInvalidOption", err)
	}
	caller, err := broker.NewCaller(testkit.Dial(t, "workflow-call"), broker.WithCallRouter(f.Topo))
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close(context.Background())
	if _, err := caller.Call(ctx, broker.Job{Type: "a"}, broker.RoutingSlip(slip)); !errors.Is(err, broker.ErrInvalidOption) {
		t.Errorf("Call with a RoutingSlip: %v, want ErrInvalidOption", err)
	}
}

// A step run twice, the second time skipped by an inbox, goes on with the
// result of its first run, which the inbox kept: the next step gets the
// same payload from both copies.
func TestChainStepSkippedByInboxKeepsItsResult(t *testing.T) {
	t.Parallel()
	f := queuetest.New(t, "a", "b")
	r := &recorder{}
	ib, err := inbox.New(inbox.NewMemory(), "workflow-test")
	if err != nil {
		t.Fatal(err)
	}
	mux := worker.NewMux()
	mux.Handle("a", ib.Middleware(worker.HandlerFunc(r.handle)))
	mux.HandleFunc("b", r.handle)
	f.Run(mux, worker.WithQueue(f.Queue, worker.Concurrency(1)))
	slip := &broker.Slip{ChainID: brokertest.JobID(t), Next: []broker.SlipStep{{Type: "b"}}}
	ctx := brokertest.Context(t, 30*time.Second)
	for range 2 {
		if err := f.Pub.Publish(ctx, broker.Job{ID: slip.ChainID, Type: "a", Payload: "x"}, broker.RoutingSlip(slip)); err != nil {
			t.Fatal(err)
		}
	}
	f.WaitCount(worker.Succeeded, 4, 30*time.Second)
	var as, bs []string
	for _, x := range r.get() {
		switch x.Type {
		case "a":
			as = append(as, x.Payload)
		case "b":
			bs = append(bs, x.Payload)
		}
	}
	if len(as) != 1 || ib.Skipped() != 1 {
		t.Errorf("a ran %d times, the inbox skipped %d; want 1 and 1", len(as), ib.Skipped())
	}
	if !slices.Equal(bs, []string{"a(x)", "a(x)"}) {
		t.Errorf("b ran on %q, want twice on a's result", bs)
	}
}

// A slip may send a step only where the pool's topology says: an
// exchange it declares, or one of its queues through the default exchange.
func TestChainStepToUndeclaredExchangeIsParked(t *testing.T) {
	t.Parallel()
	f := queuetest.New(t, "a", "b")
	r := &recorder{}
	start(t, f, r, "a", "b")
	c, err := workflow.NewChain(
		workflow.Step{Type: "a"},
		workflow.Step{Type: "b", To: &workflow.Route{Exchange: "amq.topic", RoutingKey: "anything"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(brokertest.Context(t, 30*time.Second), f.Pub); err != nil {
		t.Fatal(err)
	}
	f.WaitCount(worker.DeadLettered, 1, 30*time.Second)
	o := f.Outcomes()
	if last := o[len(o)-1]; last.Class != worker.ClassChain || !strings.Contains(last.Err.Error(), "does not declare") {
		t.Errorf("outcome %+v, want class chain: the topology does not declare the exchange", last)
	}
	// Through the default exchange to a queue of the topology: allowed.
	c, err = workflow.NewChain(workflow.Step{Type: "a"}, workflow.Step{Type: "b", To: &workflow.Route{RoutingKey: f.Queue}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(brokertest.Context(t, 30*time.Second), f.Pub); err != nil {
		t.Fatal(err)
	}
	f.WaitCount(worker.Succeeded, 2, 30*time.Second) // the first a was parked
	if got := r.types(); !slices.Equal(got, []string{"a", "a", "b"}) {
		t.Errorf("ran %v, want a, a, b", got)
	}
}

// A chain written in a transaction starts when it commits, and not when
// it rolls back; its steps carry the slip through the outbox.
func TestChainWrittenInATransaction(t *testing.T) {
	t.Parallel()
	f := queuetest.New(t, "a", "b")
	r := &recorder{}
	start(t, f, r, "a", "b")
	db := pgtest.Pool(t, pgtest.Schema(t))
	ctx := brokertest.Context(t, 30*time.Second)
	if _, err := outbox.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(db, testkit.Dial(t, "workflow-relay"), outbox.WithPollInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(rctx) }()
	defer func() {
		stop()
		<-done
	}()
	c, err := workflow.NewChain(workflow.Step{Type: "a", Payload: "tx"}, workflow.Step{Type: "b"})
	if err != nil {
		t.Fatal(err)
	}
	// Rolled back: nothing runs.
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, tx, f.Topo); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var id string
	if err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var err error
		id, err = c.Write(ctx, tx, f.Topo)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	f.WaitCount(worker.Succeeded, 2, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	got := r.get()
	if len(got) != 2 || got[0].ID != id || got[1].Payload != "a(tx)" || got[1].Info.ChainID != id {
		t.Errorf("runs %+v, want a (%s) then b on a's result, once", got, id)
	}
}
