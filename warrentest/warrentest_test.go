package warrentest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/warrentest"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const topoYAML = `
version: 1
defaults:
  queue_type: quorum
  retry: {max_attempts: 4, initial_interval: 1m, max_interval: 1h}
exchanges:
  jobs: {type: direct}
queues:
  default: {delivery_limit: 20}
  reports: {type: classic}
bindings:
  - {exchange: jobs, queue: default, routing_keys: [email.send, charge]}
  - {exchange: jobs, queue: reports, routing_key: report.render}
routes:
  email.send: {exchange: jobs}
  charge: {exchange: jobs}
  report.render: {exchange: jobs}
`

func newKit(t *testing.T) *warrentest.Kit {
	topo, err := topology.Parse("test.yaml", []byte(topoYAML))
	if err != nil {
		t.Fatal(err)
	}
	return warrentest.New(t, topo)
}

// ledger counts every attempt of every job.
type ledger struct {
	mu       sync.Mutex
	attempts map[string][]int
}

func (l *ledger) add(job *worker.Job) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.attempts == nil {
		l.attempts = map[string][]int{}
	}
	l.attempts[job.ID] = append(l.attempts[job.ID], job.Attempt)
}

func (l *ledger) of(id string) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts[id]
}

func publish(t *testing.T, kit *warrentest.Kit, job broker.Job, opts ...broker.PublishOption) string {
	t.Helper()
	if job.ID == "" {
		id, err := broker.NewJobID()
		if err != nil {
			t.Fatal(err)
		}
		job.ID = id
	}
	if err := kit.Publisher().Publish(context.Background(), job, opts...); err != nil {
		t.Fatalf("publish: %v", err)
	}
	return job.ID
}

func drain(t *testing.T, kit *warrentest.Kit, h worker.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := kit.Drain(ctx, h); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func TestRetriesDrainOnTheVirtualClock(t *testing.T) {
	kit := newKit(t)
	var l ledger
	mux := worker.NewMux()
	mux.HandleFunc("email.send", func(ctx context.Context, job *worker.Job) error {
		l.add(job)
		if job.Attempt < 3 {
			return errors.New("smtp: try again")
		}
		return nil
	})
	mux.HandleFunc("charge", func(ctx context.Context, job *worker.Job) error {
		l.add(job)
		if strings.HasPrefix(job.ID, "perm") {
			return worker.Permanent(errors.New("card declined"))
		}
		return errors.New("bank down")
	})
	ok := publish(t, kit, broker.Job{Type: "email.send", Payload: "hi"})
	exhausted := publish(t, kit, broker.Job{Type: "charge", Payload: 1})
	perm := publish(t, kit, broker.Job{ID: "perm-1", Type: "charge", Payload: 2})
	start, began := kit.Now(), time.Now()
	drain(t, kit, mux)
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("drain took %v of real time", took)
	}
	if got := fmt.Sprint(l.of(ok)); got != "[1 2 3]" {
		t.Errorf("email attempts %s, want [1 2 3]", got)
	}
	if got := fmt.Sprint(l.of(exhausted)); got != "[1 2 3 4]" {
		t.Errorf("charge attempts %s, want [1 2 3 4]", got)
	}
	if got := fmt.Sprint(l.of(perm)); got != "[1]" {
		t.Errorf("permanent charge attempts %s, want [1]", got)
	}
	// Three backoffs of at least 1m, 2m, 4m (less jitter) passed on the
	// virtual clock.
	if waited := kit.Now().Sub(start); waited < 5*time.Minute {
		t.Errorf("virtual time advanced %v, want the backoffs", waited)
	}
	dead := kit.RequireDeadLettered(t, "default", "charge")
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	byID := map[string]int{}
	for _, e := range dead {
		byID[e.Envelope.ID] = e.Attempts
		if e.By != "warren" || e.Error == "" || e.Class == "" {
			t.Errorf("dead letter %s: by %q class %q error %q", e.Envelope.ID, e.By, e.Class, e.Error)
		}
	}
	if byID[exhausted] != 4 || byID[perm] != 1 {
		t.Errorf("dead-letter attempts %v", byID)
	}
	if n := len(kit.Enqueued("default")); n != 0 {
		t.Errorf("%d jobs left in default", n)
	}
}

func TestScheduledJobWaitsForTheClock(t *testing.T) {
	kit := newKit(t)
	publish(t, kit, broker.Job{Type: "report.render", Payload: "q3"}, broker.In(90*time.Minute))
	if n := len(kit.Enqueued("reports")); n != 0 {
		t.Fatalf("scheduled job in the queue before its time (%d)", n)
	}
	kit.Advance(89 * time.Minute)
	if n := len(kit.Enqueued("reports")); n != 0 {
		t.Fatalf("scheduled job in the queue a minute early (%d)", n)
	}
	kit.Advance(time.Minute)
	kit.RequireEnqueued(t, "reports", "report.render")
}

func TestDrainHandlesScheduledJobs(t *testing.T) {
	kit := newKit(t)
	id := publish(t, kit, broker.Job{Type: "report.render", Payload: "q3"}, broker.In(24*time.Hour))
	var l ledger
	mux := worker.NewMux()
	mux.HandleFunc("report.render", func(ctx context.Context, job *worker.Job) error { l.add(job); return nil })
	drain(t, kit, mux)
	if got := fmt.Sprint(l.of(id)); got != "[1]" {
		t.Fatalf("attempts %s, want [1]", got)
	}
}

func TestUnroutableIsAnError(t *testing.T) {
	kit := newKit(t)
	err := kit.Publisher().Publish(context.Background(), broker.Job{Type: "email.send", Payload: 1}, broker.To("jobs", "nobody.listens"))
	if !errors.Is(err, broker.ErrUnroutable) {
		t.Fatalf("got %v, want ErrUnroutable", err)
	}
}

func TestRequestReply(t *testing.T) {
	kit := newKit(t)
	caller, err := broker.NewCaller(kit.Dial(), broker.WithCallRouter(kit.Topology()))
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close(context.Background())
	mux := worker.NewMux()
	mux.Handle("report.render", worker.TypedResult(func(ctx context.Context, job *worker.Job, name string) (string, error) {
		if name == "bad" {
			return "", worker.Permanent(errors.New("no such report"))
		}
		return "rendered " + name, nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pool, err := worker.NewPool(kit.Conn(), kit.Topology(), mux)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pool.Run(runCtx) }()
	defer func() { stop(); <-done }()

	reply, err := caller.Call(ctx, broker.Job{Type: "report.render", Payload: "q3"})
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	var got string
	if err := reply.Decode(&got); err != nil || got != "rendered q3" {
		t.Fatalf("reply %q, %v", got, err)
	}
	_, err = caller.Call(ctx, broker.Job{Type: "report.render", Payload: "bad"})
	var remote *broker.RemoteError
	if !errors.As(err, &remote) || !strings.Contains(err.Error(), "no such report") {
		t.Fatalf("got %v, want a RemoteError", err)
	}
}

// fatal records a Fatalf instead of ending the test, to check the
// messages of the Require functions.
type fatal struct {
	testing.TB
	msg string
}

func (f *fatal) Helper() {}

// Fatalf keeps the first message: a real Fatalf would have stopped there.
func (f *fatal) Fatalf(format string, args ...any) {
	if f.msg == "" {
		f.msg = fmt.Sprintf(format, args...)
	}
}

func TestRequireSaysWhatIsThere(t *testing.T) {
	kit := newKit(t)
	publish(t, kit, broker.Job{Type: "email.send", Payload: "hi"})
	f := &fatal{TB: t}
	if got := kit.RequireEnqueued(f, "default", "charge"); got != nil || !strings.Contains(f.msg, `no job of type "charge" in queue "default" (it holds 1: [email.send])`) {
		t.Errorf("RequireEnqueued of a missing type: %v, %q", got, f.msg)
	}
	if got := kit.RequireEnqueued(t, "default", "email.send"); len(got) != 1 {
		t.Errorf("RequireEnqueued: %d jobs, want 1", len(got))
	}
	f.msg = ""
	if got := kit.RequireDeadLettered(f, "default", "email.send"); got != nil || !strings.Contains(f.msg, "holds 0") {
		t.Errorf("RequireDeadLettered with none: %v, %q", got, f.msg)
	}
	f.msg = ""
	if got := kit.RequireEnqueued(f, "nosuch", "charge"); got != nil || !strings.Contains(f.msg, `no queue "nosuch"; the topology's work queues are [default reports]`) {
		t.Errorf("RequireEnqueued of a missing queue: %v, %q", got, f.msg)
	}
}

func TestDrainSaysWhatIsLeftWhenCtxEnds(t *testing.T) {
	kit := newKit(t)
	publish(t, kit, broker.Job{Type: "email.send", Payload: "hi"})
	started := make(chan struct{})
	mux := worker.NewMux()
	mux.HandleFunc("email.send", func(ctx context.Context, job *worker.Job) error {
		close(started)
		<-ctx.Done() // a handler that hangs until shutdown
		return ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	began := time.Now()
	err := kit.Drain(ctx, mux)
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("Drain took %v to give up after its ctx ended", took)
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "still in the queues: default: 1 ready") {
		t.Fatalf("Drain: %v; want ctx's error and what is left in default", err)
	}
	// The job interrupted by the shutdown is not lost.
	kit.RequireEnqueued(t, "default", "email.send")
}

// Drain jumps the clock for the delay cascade only: a queue's own TTL runs
// out when the test advances the clock past it.
func TestDrainLeavesQueueTTLsToAdvance(t *testing.T) {
	topo, err := topology.Parse("ttl.yaml", []byte(`
version: 1
exchanges: {jobs: {type: direct}}
queues:
  default: {type: classic}
  held: {type: classic, message_ttl: 1h}
bindings:
  - {exchange: jobs, queue: default, routing_key: email.send}
  - {exchange: jobs, queue: held, routing_key: report.render}
routes: {email.send: {exchange: jobs}, report.render: {exchange: jobs}}
`))
	if err != nil {
		t.Fatal(err)
	}
	kit := warrentest.New(t, topo)
	id := publish(t, kit, broker.Job{Type: "report.render", Payload: "q3"})
	mux := worker.NewMux()
	mux.HandleFunc("email.send", func(ctx context.Context, job *worker.Job) error { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := kit.Drain(ctx, mux, worker.WithQueue("default")); err != nil {
		t.Fatal(err)
	}
	kit.RequireEnqueued(t, "held", "report.render")
	kit.Advance(time.Hour)
	dead := kit.RequireDeadLettered(t, "held", "report.render")
	if dead[0].Envelope.ID != id || dead[0].Class != "rabbitmq:expired" {
		t.Fatalf("dead letter %s of class %q, want %s expired", dead[0].Envelope.ID, dead[0].Class, id)
	}
}

// A paused queue is one nobody consumes: Drain handles the other queues'
// jobs and leaves the paused queue's where they are.
func TestDrainLeavesAPausedQueue(t *testing.T) {
	kit := newKit(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := broker.SetPaused(ctx, kit.Conn(), "reports", true); err != nil {
		t.Fatal(err)
	}
	email := publish(t, kit, broker.Job{Type: "email.send", Payload: "hi"})
	report := publish(t, kit, broker.Job{Type: "report.render", Payload: "q3"})
	var l ledger
	mux := worker.NewMux()
	for _, jobType := range []string{"email.send", "report.render"} {
		mux.HandleFunc(jobType, func(ctx context.Context, job *worker.Job) error {
			l.add(job)
			return nil
		})
	}
	if err := kit.Drain(ctx, mux); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(l.of(email), l.of(report)); got != "[1] []" {
		t.Errorf("attempts of the job in default and of the one in the paused queue: %s, want [1] []", got)
	}
	if got := kit.RequireEnqueued(t, "reports", "report.render"); got[0].ID != report {
		t.Errorf("reports holds %s, want %s", got[0].ID, report)
	}
}

// After a dropped connection the Conns reconnect: a job whose worker lost
// its connection while running it is delivered again, marked
// redelivered; the pool runs it from the quarantine, and Drain waits for
// that. Publishing works again.
func TestDropConnections(t *testing.T) {
	kit := newKit(t)
	id := publish(t, kit, broker.Job{Type: "email.send", Payload: "hi"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	running, dropped := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var redelivered []bool
	var l ledger
	mux := worker.NewMux()
	mux.HandleFunc("email.send", func(ctx context.Context, job *worker.Job) error {
		mu.Lock()
		redelivered = append(redelivered, job.Redelivered)
		first := len(redelivered) == 1
		mu.Unlock()
		if first {
			close(running)
			<-dropped // its ack then fails: the broker has it back already
			return nil
		}
		l.add(job)
		return nil
	})
	go func() {
		<-running
		kit.DropConnections()
		close(dropped)
	}()
	if err := kit.Drain(ctx, mux); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(l.of(id)); got != "[1]" {
		t.Errorf("attempts after the drop %s, want [1]", got)
	}
	mu.Lock()
	if fmt.Sprint(redelivered) != "[false true]" {
		t.Errorf("deliveries redelivered %v, want [false true]", redelivered)
	}
	mu.Unlock()
	if n := len(kit.Enqueued("default.quarantine")); n != 0 {
		t.Errorf("%d jobs left in the quarantine", n)
	}
	publish(t, kit, broker.Job{Type: "email.send", Payload: "after"})
	kit.RequireEnqueued(t, "default", "email.send")
}
