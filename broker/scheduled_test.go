package broker_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/topology"
)

// scheduled names the entities of one test's topology.
type scheduled struct {
	Direct, Fanout string // exchanges
	A, B           string // work queues
	Expires        string // of the work queues
}

// scheduledTopology routes email.send to A and report.render to A and B.
// The delay cascade it derives (warren.delay.*) is shared by every topology
// on the vhost: tests never delete it.
const scheduledTopology = `
exchanges:
  {{.Direct}}: {type: direct}
  {{.Fanout}}: {type: fanout}
queues:
  {{.A}}: {type: classic, dead_letter: false, expires: {{.Expires}}}
  {{.B}}: {type: classic, dead_letter: false, expires: {{.Expires}}}
bindings:
  - {exchange: {{.Direct}}, queue: {{.A}}, routing_key: email.send}
  - {exchange: {{.Fanout}}, queue: {{.A}}}
  - {exchange: {{.Fanout}}, queue: {{.B}}}
routes:
  email.send: {exchange: {{.Direct}}}
  report.render: {exchange: {{.Fanout}}}
`

// applyScheduled declares a topology with unique names on the test broker
// and returns it. Its exchanges are deleted at cleanup, and its queues too
// unless keepQueues: a test that leaves a delayed job in the cascade lets
// its queues expire instead (after expires without use), so that the job
// reaches its queue, and goes with it, rather than end in the shared
// warren.delay.unroutable.
func applyScheduled(t *testing.T, conn *broker.Conn, expires time.Duration, keepQueues bool) (*topology.Topology, scheduled) {
	t.Helper()
	n := scheduled{
		Direct: brokertest.Name(t, "direct"), Fanout: brokertest.Name(t, "fanout"),
		A: brokertest.Name(t, "a"), B: brokertest.Name(t, "b"),
		Expires: expires.String(),
	}
	var buf bytes.Buffer
	if err := template.Must(template.New("t").Parse(scheduledTopology)).Execute(&buf, n); err != nil {
		t.Fatal(err)
	}
	top, err := topology.Parse("scheduled.yaml", buf.Bytes())
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	brokertest.DeleteExchangesAtCleanup(t, n.Direct, n.Fanout)
	if !keepQueues {
		brokertest.DeleteQueuesAtCleanup(t, n.A, n.B, topology.QuarantineQueueName(n.A), topology.QuarantineQueueName(n.B))
	}
	ctx := brokertest.Context(t, 30*time.Second)
	d := broker.NewDeclarer(conn)
	defer d.Close(ctx)
	if _, err := topology.Declare(ctx, d, top); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	return top, n
}

// arrival bounds: a delayed job arrives no earlier than due (to the
// millisecond clocks of the broker: early by tolerance at most) and within
// late after.
const (
	tolerance = 10 * time.Millisecond
	late      = 1500 * time.Millisecond
)

func checkArrival(t *testing.T, what string, arrived, due time.Time) {
	t.Helper()
	t.Logf("%s arrived %v after it was due", what, arrived.Sub(due))
	if early := due.Sub(arrived); early > tolerance {
		t.Errorf("%s arrived %v early", what, early)
	}
	if after := arrived.Sub(due); after > late {
		t.Errorf("%s arrived %v after it was due, want at most %v", what, after, late)
	}
}

func TestPublishDelayedArrivesOnTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		publish func(p *broker.Publisher, job broker.Job) (time.Time, error) // returns the time the job is due
	}{
		{"In 2s", func(p *broker.Publisher, job broker.Job) (time.Time, error) {
			due := time.Now().Add(2 * time.Second)
			err := p.Publish(brokertest.Context(t, 10*time.Second), job, broker.In(2*time.Second))
			return due, err
		}},
		{"At in 2s", func(p *broker.Publisher, job broker.Job) (time.Time, error) {
			at := time.Now().Add(2 * time.Second)
			err := p.Publish(brokertest.Context(t, 10*time.Second), job, broker.At(at))
			return at, err
		}},
		{"At in the past arrives at once", func(p *broker.Publisher, job broker.Job) (time.Time, error) {
			due := time.Now()
			err := p.Publish(brokertest.Context(t, 10*time.Second), job, broker.At(due.Add(-time.Hour)))
			return due, err
		}},
		{"In 0 arrives at once", func(p *broker.Publisher, job broker.Job) (time.Time, error) {
			due := time.Now()
			err := p.Publish(brokertest.Context(t, 10*time.Second), job, broker.In(0))
			return due, err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := dial(t)
			top, n := applyScheduled(t, conn, time.Minute, false)
			p := newPublisher(t, conn, broker.WithRouter(top))

			id := brokertest.JobID(t)
			due, err := tt.publish(p, broker.Job{ID: id, Type: "email.send", Payload: email{To: "a@example.com"}})
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			d := brokertest.Get(t, n.A, time.Until(due)+late+time.Second)
			checkArrival(t, "job", time.Now(), due)
			if d.MessageId != id || d.Type != "email.send" {
				t.Errorf("got message %q of type %q, want %q of type email.send", d.MessageId, d.Type, id)
			}
			env, err := broker.FromDelivery(&d)
			if err != nil {
				t.Fatalf("FromDelivery: %v", err)
			}
			var got email
			if err := env.Decode(&got); err != nil || got.To != "a@example.com" {
				t.Errorf("payload = %+v (%v), want the job's", got, err)
			}
		})
	}
}

// The cascade holds each delay in the queues of its own bits: a long delay
// published first does not hold back a short one published after it, as one
// queue with per-message TTLs would.
func TestPublishInShortDelayIsNotHeldBackByLongOne(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	// The 20s job is not waited for: the queues expire 30s after their last
	// use, once it has arrived.
	top, n := applyScheduled(t, conn, 30*time.Second, true)
	p := newPublisher(t, conn, broker.WithRouter(top))
	ctx := brokertest.Context(t, 10*time.Second)

	long, short := brokertest.JobID(t), brokertest.JobID(t)
	if err := p.Publish(ctx, broker.Job{ID: long, Type: "email.send"}, broker.In(20*time.Second)); err != nil {
		t.Fatalf("Publish In 20s: %v", err)
	}
	due := time.Now().Add(2 * time.Second)
	if err := p.Publish(ctx, broker.Job{ID: short, Type: "email.send"}, broker.In(2*time.Second)); err != nil {
		t.Fatalf("Publish In 2s: %v", err)
	}
	d := brokertest.Get(t, n.A, time.Until(due)+late+time.Second)
	checkArrival(t, "the 2s job", time.Now(), due)
	if d.MessageId != short {
		t.Fatalf("first job to arrive is %q, want the 2s one %q (the 20s one is %q)", d.MessageId, short, long)
	}
	if got := brokertest.Depth(t, n.A); got != 0 {
		t.Errorf("queue holds %d more jobs, want none: the 20s job arrived early", got)
	}
}

// A route to several queues gives each a copy, with the same id.
func TestPublishInFansOutToEveryQueue(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	top, n := applyScheduled(t, conn, time.Minute, false)
	p := newPublisher(t, conn, broker.WithRouter(top))

	due := time.Now().Add(time.Second)
	id := brokertest.JobID(t)
	if err := p.Publish(brokertest.Context(t, 10*time.Second), broker.Job{ID: id, Type: "report.render"}, broker.In(time.Second)); err != nil {
		t.Fatalf("Publish In: %v", err)
	}
	for _, q := range []string{n.A, n.B} {
		d := brokertest.Get(t, q, time.Until(due)+late+time.Second)
		checkArrival(t, "copy in "+q, time.Now(), due)
		if d.MessageId != id {
			t.Errorf("copy in %s has id %q, want %q", q, d.MessageId, id)
		}
	}
	for _, q := range []string{n.A, n.B} {
		if got := brokertest.Depth(t, q); got != 0 {
			t.Errorf("%s holds %d more copies, want none", q, got)
		}
	}
}

// ToQueue names the queue, for delayed jobs and for Publish; the job type
// needs no route.
func TestToQueue(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	top, n := applyScheduled(t, conn, time.Minute, false)
	p := newPublisher(t, conn, broker.WithRouter(top))
	ctx := brokertest.Context(t, 10*time.Second)

	due := time.Now().Add(time.Second)
	delayed, now := brokertest.JobID(t), brokertest.JobID(t)
	if err := p.Publish(ctx, broker.Job{ID: delayed, Type: "unrouted"}, broker.In(time.Second), broker.ToQueue(n.B)); err != nil {
		t.Fatalf("Publish In with ToQueue: %v", err)
	}
	if err := p.Publish(ctx, broker.Job{ID: now, Type: "unrouted"}, broker.ToQueue(n.B)); err != nil {
		t.Fatalf("Publish with ToQueue: %v", err)
	}
	if d := brokertest.Get(t, n.B, time.Second); d.MessageId != now {
		t.Errorf("first job in %s is %q, want the one published now, %q", n.B, d.MessageId, now)
	}
	d := brokertest.Get(t, n.B, time.Until(due)+late+time.Second)
	checkArrival(t, "delayed job", time.Now(), due)
	if d.MessageId != delayed {
		t.Errorf("delayed job has id %q, want %q", d.MessageId, delayed)
	}
	if got := brokertest.Depth(t, n.A); got != 0 {
		t.Errorf("%s holds %d jobs, want none: ToQueue named another queue", n.A, got)
	}
}

// staticQueueRouter routes every type it knows to its queues.
type staticQueueRouter map[string][]string

func (r staticQueueRouter) Route(string) (string, string, bool) { return "", "", false }

func (r staticQueueRouter) QueuesFor(jobType string) ([]string, error) { return r[jobType], nil }

// Scheduling fails before anything is published when the queues or the
// delay are wrong; the error says what to do.
func TestScheduleRefused(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	top, n := applyScheduled(t, conn, time.Minute, false)
	withTopology := newPublisher(t, conn, broker.WithRouter(top))
	job := broker.Job{Type: "email.send"}
	tests := []struct {
		name     string
		p        *broker.Publisher
		job      broker.Job
		d        time.Duration
		opts     []broker.PublishOption
		is       []error  // errors.Is must hold for each
		contains []string // in the message
	}{
		{
			name:     "To names an exchange",
			p:        withTopology,
			job:      job,
			d:        time.Second,
			opts:     []broker.PublishOption{broker.To(n.Direct, "email.send")},
			contains: []string{n.Direct, "ToQueue"},
		},
		{
			name:     "unknown job type",
			p:        withTopology,
			job:      broker.Job{Type: "nope"},
			d:        time.Second,
			is:       []error{broker.ErrNoRoute, topology.ErrNoRoute},
			contains: []string{`"nope"`, "ToQueue"},
		},
		{
			name:     "no router",
			p:        newPublisher(t, conn),
			job:      job,
			d:        time.Second,
			is:       []error{broker.ErrNoRoute},
			contains: []string{"WithRouter", "ToQueue"},
		},
		{
			name:     "router that does not list queues",
			p:        newPublisher(t, conn, broker.WithRouter(staticRouter{"email.send": {n.Direct, "email.send"}})),
			job:      job,
			d:        time.Second,
			is:       []error{broker.ErrNoRoute},
			contains: []string{"WithRouter", "ToQueue"},
		},
		{
			name:     "route that reaches no queue",
			p:        newPublisher(t, conn, broker.WithRouter(staticQueueRouter{})),
			job:      job,
			d:        time.Second,
			is:       []error{broker.ErrNoRoute},
			contains: []string{"reaches no queue", "ToQueue"},
		},
		{
			name:     "delay over MaxDelay",
			p:        withTopology,
			job:      job,
			d:        topology.MaxDelay + time.Second,
			is:       []error{topology.ErrDelayTooLong},
			contains: []string{"MaxDelay"},
		},
		{
			name:     "ToQueue to a missing queue",
			p:        withTopology,
			job:      job,
			d:        time.Second,
			opts:     []broker.PublishOption{broker.ToQueue(brokertest.Name(t, "missing"))},
			is:       []error{broker.ErrNoQueue},
			contains: []string{"apply the topology"},
		},
		{
			name:     "ToQueue with no name",
			p:        withTopology,
			job:      job,
			d:        time.Second,
			opts:     []broker.PublishOption{broker.ToQueue("")},
			contains: []string{"empty"},
		},
		{
			name: "invalid job",
			p:    withTopology,
			job:  broker.Job{},
			d:    time.Second,
			is:   []error{broker.ErrInvalidJob},
		},
		{
			name:     "negative delay",
			p:        withTopology,
			job:      job,
			d:        -time.Second,
			is:       []error{broker.ErrInvalidOption},
			contains: []string{"negative"},
		},
		{
			name:     "both In and At",
			p:        withTopology,
			job:      job,
			d:        time.Second,
			opts:     []broker.PublishOption{broker.At(time.Now().Add(time.Second))},
			is:       []error{broker.ErrInvalidOption},
			contains: []string{"At and In"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Publish(brokertest.Context(t, 10*time.Second), tt.job, append([]broker.PublishOption{broker.In(tt.d)}, tt.opts...)...)
			if err == nil {
				t.Fatal("Publish In succeeded, want an error")
			}
			if !strings.HasPrefix(err.Error(), "broker: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
			for _, want := range tt.is {
				if !errors.Is(err, want) {
					t.Errorf("error %v does not wrap %v", err, want)
				}
			}
			for _, want := range tt.contains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
	if got := brokertest.Depth(t, n.A); got != 0 {
		t.Errorf("%s holds %d jobs, want none", n.A, got)
	}
}

// A bad option is an error of the call, before anything is published,
// wherever it is given.
func TestBadPublishOptionsAreErrors(t *testing.T) {
	t.Parallel()
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn)
	caller, err := broker.NewCaller(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := brokertest.Context(t, 10*time.Second)
	defer caller.Close(ctx)
	to := broker.To(exchange, "k")
	tests := []struct {
		name     string
		opts     []broker.PublishOption
		contains string
	}{
		{"At zero", []broker.PublishOption{to, broker.At(time.Time{})}, "zero"},
		{"At beyond MaxDelay in the past", []broker.PublishOption{to, broker.At(time.Now().Add(-topology.MaxDelay - time.Hour))}, "in the past"},
		{"In negative", []broker.PublishOption{to, broker.In(-time.Nanosecond)}, "negative"},
		{"In then At", []broker.PublishOption{to, broker.In(time.Second), broker.At(time.Now())}, "At and In"},
		{"At then In", []broker.PublishOption{to, broker.At(time.Now()), broker.In(time.Second)}, "At and In"},
		{"nil option", []broker.PublishOption{to, nil}, "nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := broker.Job{Type: "email.send"}
			for name, err := range map[string]error{
				"Publish":      p.Publish(ctx, job, tt.opts...),
				"PublishBatch": p.PublishBatch(ctx, []broker.Job{job}, tt.opts...),
			} {
				if !errors.Is(err, broker.ErrInvalidOption) || !strings.Contains(err.Error(), tt.contains) {
					t.Errorf("%s: %v, want ErrInvalidOption saying %q", name, err, tt.contains)
				}
			}
		})
	}
	if _, err := caller.Call(ctx, broker.Job{Type: "email.send"}, to, broker.In(time.Second)); !errors.Is(err, broker.ErrInvalidOption) {
		t.Errorf("Call scheduled: %v, want ErrInvalidOption", err)
	}
	if n := brokertest.Depth(t, queue); n != 0 {
		t.Errorf("queue holds %d jobs, want none", n)
	}
}
