package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/metrics"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/scheduler"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) { os.Exit(brokertest.MainWithLeakCheck(m)) }

// counts returns the sample count of each series of the histogram name,
// by its labels ("kind=job"), as reg gathers them.
func counts(t *testing.T, reg prometheus.Gatherer, name string) map[string]uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(labels, ",")] = m.GetHistogram().GetSampleCount()
		}
	}
	return out
}

// TestCountsAfterKnownOutcomes runs a pool against the broker through a
// known sequence (three jobs that succeed, one retried then succeeding,
// one dead-lettered, a call answered, a call failing in its worker, a
// call nobody answers) and checks every counter exactly.
func TestCountsAfterKnownOutcomes(t *testing.T) {
	x, q, idle := brokertest.Name(t, "x"), brokertest.Name(t, "q"), brokertest.Name(t, "idle")
	topo := topotest.Apply(t, fmt.Sprintf(`version: 1
exchanges:
  %[1]s: {type: direct}
queues:
  %[2]s:
    type: classic
    retry: {max_attempts: 3, initial_interval: 1s, jitter: 0}
  %[3]s: {type: classic}
bindings:
  - {exchange: %[1]s, queue: %[2]s, routing_keys: [ok, flaky, perm, rpc, rpcfail]}
  - {exchange: %[1]s, queue: %[3]s, routing_keys: [slow]}
routes:
  ok: {exchange: %[1]s}
  flaky: {exchange: %[1]s}
  perm: {exchange: %[1]s}
  rpc: {exchange: %[1]s}
  rpcfail: {exchange: %[1]s}
  slow: {exchange: %[1]s}
`, x, q, idle))

	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.WithJobTypes(topo.JobTypes()...))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(testkit.Dial(t, "metrics-test-publish", broker.WithObserver(m)), broker.WithRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	snd, err := broker.NewSender(testkit.Dial(t, "metrics-test-send", broker.WithObserver(m)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snd.Close(context.Background()) })
	caller, err := broker.NewCaller(testkit.Dial(t, "metrics-test-call", broker.WithObserver(m)), broker.WithCallRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caller.Close(context.Background()) })

	mux := worker.NewMux()
	mux.HandleFunc("ok", func(context.Context, *worker.Job) error { return nil })
	mux.HandleFunc("flaky", func(_ context.Context, job *worker.Job) error {
		if job.Attempt == 1 {
			return errors.New("flaky: first attempt fails")
		}
		return nil
	})
	mux.HandleFunc("perm", func(context.Context, *worker.Job) error { return worker.Permanent(errors.New("never")) })
	mux.HandleFunc("rpc", func(_ context.Context, job *worker.Job) error { job.SetResult("pong"); return nil })
	mux.HandleFunc("rpcfail", func(context.Context, *worker.Job) error { return worker.Permanent(errors.New("refused")) })
	var settled atomic.Int32
	// The pool observes its jobs with the Metrics of its connection, and
	// with the observer given: observers add up.
	pool, err := worker.NewPool(testkit.Dial(t, "metrics-test-consume", broker.WithObserver(m)), topo, mux,
		worker.WithQueue(q), worker.WithSender(snd),
		worker.WithObserver(worker.OutcomeFunc(func(worker.Outcome) { settled.Add(1) })))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- pool.Run(ctx) }()
	stopped := false
	stopPool := func() {
		if !stopped {
			stopped = true
			stop()
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stopPool)

	tctx := brokertest.Context(t, 60*time.Second)
	if err := pub.PublishBatch(tctx, []broker.Job{{Type: "ok"}, {Type: "ok"}, {Type: "ok"}}); err != nil {
		t.Fatal(err)
	}
	for _, jt := range []string{"flaky", "perm"} {
		if err := pub.Publish(tctx, broker.Job{Type: jt}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := caller.Call(tctx, broker.Job{Type: "rpc"}); err != nil {
		t.Fatalf("Call rpc: %v", err)
	}
	var re *broker.RemoteError
	if _, err := caller.Call(tctx, broker.Job{Type: "rpcfail"}); !errors.As(err, &re) {
		t.Fatalf("Call rpcfail: %v, want a *broker.RemoteError", err)
	}
	short, cancel := context.WithTimeout(tctx, time.Second)
	defer cancel()
	if _, err := caller.Call(short, broker.Job{Type: "slow"}); !errors.Is(err, broker.ErrReplyTimeout) {
		t.Fatalf("Call slow: %v, want ErrReplyTimeout", err)
	}

	// 3 ok + flaky twice + perm + rpc + rpcfail.
	const deliveries = 8
	for settled.Load() < deliveries {
		if tctx.Err() != nil {
			t.Fatalf("%d deliveries settled, want %d", settled.Load(), deliveries)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopPool() // every observer has returned
	if n := settled.Load(); n != deliveries {
		t.Errorf("%d deliveries settled, want %d", n, deliveries)
	}

	expected := fmt.Sprintf(`
# HELP warren_calls_total Calls (request-reply) ended, by job type and outcome (ok, remote_error, timeout, unavailable, error).
# TYPE warren_calls_total counter
warren_calls_total{outcome="ok",type="rpc"} 1
warren_calls_total{outcome="remote_error",type="rpcfail"} 1
warren_calls_total{outcome="timeout",type="slow"} 1
# HELP warren_jobs_in_flight Deliveries a pool has taken and not yet settled, by queue.
# TYPE warren_jobs_in_flight gauge
warren_jobs_in_flight{queue="%[1]s"} 0
# HELP warren_jobs_processed_total Deliveries settled by worker pools, by queue, job type and outcome (succeeded, retried, dead_lettered, requeued, rejected, expired).
# TYPE warren_jobs_processed_total counter
warren_jobs_processed_total{outcome="dead_lettered",queue="%[1]s",type="perm"} 1
warren_jobs_processed_total{outcome="dead_lettered",queue="%[1]s",type="rpcfail"} 1
warren_jobs_processed_total{outcome="retried",queue="%[1]s",type="flaky"} 1
warren_jobs_processed_total{outcome="succeeded",queue="%[1]s",type="flaky"} 1
warren_jobs_processed_total{outcome="succeeded",queue="%[1]s",type="ok"} 3
warren_jobs_processed_total{outcome="succeeded",queue="%[1]s",type="rpc"} 1
# HELP warren_jobs_published_total Messages published from envelopes, replies excepted, by job type, kind (job, retry, dead_letter, replay) and outcome (ok: confirmed; error).
# TYPE warren_jobs_published_total counter
warren_jobs_published_total{kind="dead_letter",outcome="ok",type="perm"} 1
warren_jobs_published_total{kind="dead_letter",outcome="ok",type="rpcfail"} 1
warren_jobs_published_total{kind="job",outcome="ok",type="flaky"} 1
warren_jobs_published_total{kind="job",outcome="ok",type="ok"} 3
warren_jobs_published_total{kind="job",outcome="ok",type="perm"} 1
warren_jobs_published_total{kind="retry",outcome="ok",type="flaky"} 1
# HELP warren_replies_sent_total Replies to requests sent, by outcome (ok: written to direct reply-to or confirmed; error).
# TYPE warren_replies_sent_total counter
warren_replies_sent_total{outcome="ok"} 2
`, q)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"warren_calls_total", "warren_jobs_in_flight", "warren_jobs_processed_total",
		"warren_jobs_published_total", "warren_replies_sent_total", "warren_reconnects_total"); err != nil {
		t.Error(err)
	}

	histograms := []struct {
		name string
		want map[string]uint64
	}{
		{"warren_handler_duration_seconds", map[string]uint64{
			"queue=" + q + ",type=ok": 3, "queue=" + q + ",type=flaky": 2, "queue=" + q + ",type=perm": 1,
			"queue=" + q + ",type=rpc": 1, "queue=" + q + ",type=rpcfail": 1,
		}},
		// Direct replies are written, not confirmed: not timed.
		{"warren_publish_confirm_duration_seconds", map[string]uint64{"kind=job": 5, "kind=retry": 1, "kind=dead_letter": 2}},
		// The timed-out call got no reply: not timed.
		{"warren_call_duration_seconds", map[string]uint64{"type=rpc": 1, "type=rpcfail": 1}},
	}
	for _, h := range histograms {
		if diff := cmp.Diff(h.want, counts(t, reg, h.name)); diff != "" {
			t.Errorf("%s observations (-want +got):\n%s", h.name, diff)
		}
	}
}

// TestJobTypeLabelsAreBounded checks that job types outside the
// topology's, or beyond the maximum, are labelled "other".
func TestJobTypeLabelsAreBounded(t *testing.T) {
	tests := []struct {
		name  string
		opts  []metrics.Option
		types []string
		want  map[string]float64
	}{
		{
			name:  "topology types",
			opts:  []metrics.Option{metrics.WithJobTypes("email.send", "sms.send")},
			types: []string{"email.send", "sms.send", "email.send.reply", "spam.1", "spam.2", ""},
			want:  map[string]float64{"email.send": 1, "sms.send": 1, "email.send.reply": 1, "other": 2, "none": 1},
		},
		{
			name:  "first come up to the maximum",
			opts:  []metrics.Option{metrics.WithMaxJobTypes(2)},
			types: []string{"a", "b", "c", "a", "d", "b"},
			want:  map[string]float64{"a": 2, "b": 2, "other": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := metrics.New(reg, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			for _, jt := range tt.types {
				_, done := m.Job(context.Background(), &worker.Job{Queue: "q", Type: jt}, worker.Source{})
				done(worker.Outcome{Queue: "q", JobType: jt, Status: worker.Succeeded})
			}
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, f := range families {
				for _, s := range f.GetMetric() {
					for _, l := range s.GetLabel() {
						if l.GetName() == "type" {
							got[l.GetValue()] += s.GetCounter().GetValue()
						}
					}
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("jobs processed by type label (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusLabels(t *testing.T) {
	tests := []struct {
		status worker.Status
		want   string
	}{
		{worker.Succeeded, "succeeded"},
		{worker.Retried, "retried"},
		{worker.DeadLettered, "dead_lettered"},
		{worker.Requeued, "requeued"},
		{worker.Rejected, "rejected"},
		{worker.Expired, "expired"},
		{worker.Status(0), "unknown"},
	}
	for _, tt := range tests {
		if got := metrics.StatusLabel(tt.status); got != tt.want {
			t.Errorf("StatusLabel(%v) = %q, want %q", tt.status, got, tt.want)
		}
	}
}

func TestCallOutcome(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, metrics.CallOK},
		{&broker.RemoteError{Message: "no"}, metrics.CallRemoteError},
		{fmt.Errorf("%w: %w", broker.ErrReplyTimeout, context.DeadlineExceeded), metrics.CallTimeout},
		{&broker.PublishError{Err: broker.ErrUnroutable}, metrics.CallError},
		{&broker.UnavailableError{Queue: "q", Err: broker.ErrBreakerOpen}, metrics.CallUnavailable},
		{context.Canceled, metrics.CallError},
	}
	for _, tt := range tests {
		if got := metrics.CallOutcome(tt.err); got != tt.want {
			t.Errorf("CallOutcome(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestReconnected(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []broker.StateChange{
		{Name: "publisher", State: broker.Connected, Reconnects: 3},
		{Name: "publisher", State: broker.Connected},                   // the first connection: not a reconnection
		{Name: "publisher", State: broker.Disconnected, Reconnects: 0}, // lost: nothing yet
		{Name: "publisher", State: broker.Connected, Reconnects: 1},
		{Name: "consumer", State: broker.Connected, Reconnects: 1},
		{Name: "consumer", State: broker.Closed, Reconnects: 1}, // closed: nothing
	} {
		m.Connection(c)
	}
	expected := `
# HELP warren_reconnects_total Connections re-established after a loss, by role.
# TYPE warren_reconnects_total counter
warren_reconnects_total{role="consumer"} 1
warren_reconnects_total{role="publisher"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "warren_reconnects_total"); err != nil {
		t.Error(err)
	}
}

// TestOneObserver checks that a Metrics given once, to broker.Dial, counts
// the publishes, calls, reconnections and jobs of everything on that
// connection, the pool's included without being told.
func TestOneObserver(t *testing.T) {
	x, q := brokertest.Name(t, "x"), brokertest.Name(t, "q")
	topo := topotest.Apply(t, fmt.Sprintf(`version: 1
exchanges:
  %[1]s: {type: direct}
queues:
  %[2]s: {type: classic}
bindings:
  - {exchange: %[1]s, queue: %[2]s, routing_keys: [ok, rpc]}
routes:
  ok: {exchange: %[1]s}
  rpc: {exchange: %[1]s}
`, x, q))
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.WithJobTypes(topo.JobTypes()...))
	if err != nil {
		t.Fatal(err)
	}
	name := brokertest.ConnName(t, "metrics-one")
	conn := testkit.Dial(t, name, broker.WithObserver(m), broker.WithReconnectBackoff(50*time.Millisecond, time.Second))
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	caller, err := broker.NewCaller(conn, broker.WithCallRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caller.Close(context.Background()) })
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(context.Context, *worker.Job) error { return nil })
	mux.HandleFunc("rpc", func(_ context.Context, job *worker.Job) error { job.SetResult("pong"); return nil })
	var settled atomic.Int32
	pool, err := worker.NewPool(conn, topo, mux, worker.WithObserver(worker.OutcomeFunc(func(worker.Outcome) { settled.Add(1) })))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- pool.Run(ctx) }()
	stopped := false
	stopPool := func() {
		if !stopped {
			stopped = true
			stop()
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stopPool)

	tctx := brokertest.Context(t, 60*time.Second)
	if err := pub.Publish(tctx, broker.Job{Type: "ok"}); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.Call(tctx, broker.Job{Type: "rpc"}); err != nil {
		t.Fatalf("Call: %v", err)
	}
	testkit.WaitFor(t, 30*time.Second, "two deliveries settled", func() bool { return settled.Load() == 2 })
	stopPool()
	if n := brokertest.CloseConnections(t, name); n != 1 {
		t.Fatalf("closed %d connections named %s, want 1", n, name)
	}
	testkit.WaitFor(t, 30*time.Second, "the reconnection", func() bool { return conn.Reconnects() == 1 })

	expected := fmt.Sprintf(`
# HELP warren_calls_total Calls (request-reply) ended, by job type and outcome (ok, remote_error, timeout, unavailable, error).
# TYPE warren_calls_total counter
warren_calls_total{outcome="ok",type="rpc"} 1
# HELP warren_jobs_in_flight Deliveries a pool has taken and not yet settled, by queue.
# TYPE warren_jobs_in_flight gauge
warren_jobs_in_flight{queue="%[1]s"} 0
# HELP warren_jobs_processed_total Deliveries settled by worker pools, by queue, job type and outcome (succeeded, retried, dead_lettered, requeued, rejected, expired).
# TYPE warren_jobs_processed_total counter
warren_jobs_processed_total{outcome="succeeded",queue="%[1]s",type="ok"} 1
warren_jobs_processed_total{outcome="succeeded",queue="%[1]s",type="rpc"} 1
# HELP warren_jobs_published_total Messages published from envelopes, replies excepted, by job type, kind (job, retry, dead_letter, replay) and outcome (ok: confirmed; error).
# TYPE warren_jobs_published_total counter
warren_jobs_published_total{kind="job",outcome="ok",type="ok"} 1
# HELP warren_reconnects_total Connections re-established after a loss, by role.
# TYPE warren_reconnects_total counter
warren_reconnects_total{role="%[2]s"} 1
# HELP warren_replies_sent_total Replies to requests sent, by outcome (ok: written to direct reply-to or confirmed; error).
# TYPE warren_replies_sent_total counter
warren_replies_sent_total{outcome="ok"} 1
`, q, name)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"warren_calls_total", "warren_jobs_in_flight", "warren_jobs_processed_total",
		"warren_jobs_published_total", "warren_replies_sent_total", "warren_reconnects_total"); err != nil {
		t.Error(err)
	}
}

func TestNewRefuses(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		reg  prometheus.Registerer
		opts []metrics.Option
	}{
		{"no registry", nil, nil},
		{"registered twice", reg, nil},
		{"empty job type", prometheus.NewRegistry(), []metrics.Option{metrics.WithJobTypes("a", "")}},
		{"no job types allowed", prometheus.NewRegistry(), []metrics.Option{metrics.WithMaxJobTypes(0)}},
		{"buckets not increasing", prometheus.NewRegistry(), []metrics.Option{metrics.WithDurationBuckets(1, 1)}},
		{"no buckets", prometheus.NewRegistry(), []metrics.Option{metrics.WithConfirmBuckets()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := metrics.New(tt.reg, tt.opts...); err == nil {
				t.Error("New succeeded")
			}
		})
	}
	// A failed New takes back what it registered.
	failing := &failingRegisterer{Registerer: prometheus.NewRegistry(), failAt: 5}
	if _, err := metrics.New(failing); err == nil {
		t.Fatal("New succeeded though a registration failed")
	}
	if failing.registered != 4 || failing.unregistered != 4 {
		t.Errorf("New registered %d collectors and unregistered %d after the fifth failed, want 4 and 4", failing.registered, failing.unregistered)
	}
}

// failingRegisterer fails the failAt-th registration.
type failingRegisterer struct {
	prometheus.Registerer
	failAt                   int
	calls                    int
	registered, unregistered int
}

func (r *failingRegisterer) Register(c prometheus.Collector) error {
	r.calls++
	if r.calls == r.failAt {
		return errors.New("refused")
	}
	r.registered++
	return r.Registerer.Register(c)
}

func (r *failingRegisterer) Unregister(c prometheus.Collector) bool {
	r.unregistered++
	return r.Registerer.Unregister(c)
}

func TestQueuePaused(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.QueuePaused("emails", true)
	m.QueuePaused("reports", true)
	m.QueuePaused("reports", false)
	expected := `
# HELP warren_queue_paused 1 while a queue a pool consumes is paused (warren queue pause), 0 once resumed, by queue.
# TYPE warren_queue_paused gauge
warren_queue_paused{queue="emails"} 1
warren_queue_paused{queue="reports"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "warren_queue_paused"); err != nil {
		t.Error(err)
	}
}

// TestBreakerChanged: the gauge holds each queue's last state, and each
// change is counted by the state entered.
func TestBreakerChanged(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []worker.BreakerState{worker.BreakerOpen, worker.BreakerHalfOpen, worker.BreakerOpen, worker.BreakerHalfOpen, worker.BreakerClosed} {
		m.BreakerChanged("sms", s)
	}
	m.BreakerChanged("email", worker.BreakerOpen)
	expected := `
# HELP warren_breaker_state State of a queue's circuit breaker in the pool: 0 closed, 1 open, 2 half-open, by queue.
# TYPE warren_breaker_state gauge
warren_breaker_state{queue="email"} 1
warren_breaker_state{queue="sms"} 0
# HELP warren_breaker_transitions_total Changes of a queue's circuit breaker, by queue and the state entered (open, half-open, closed).
# TYPE warren_breaker_transitions_total counter
warren_breaker_transitions_total{queue="email",state="open"} 1
warren_breaker_transitions_total{queue="sms",state="closed"} 1
warren_breaker_transitions_total{queue="sms",state="half-open"} 2
warren_breaker_transitions_total{queue="sms",state="open"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "warren_breaker_state", "warren_breaker_transitions_total"); err != nil {
		t.Error(err)
	}
}

// TestRateLimitWait: the wait an outcome reports is added up by queue and
// job type; an outcome without one adds no series.
func TestRateLimitWait(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.WithJobTypes("sms.send", "email.send"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []worker.Outcome{
		{Queue: "q", JobType: "sms.send", Status: worker.Succeeded, RateWait: 1500 * time.Millisecond},
		{Queue: "q", JobType: "sms.send", Status: worker.Retried, RateWait: 500 * time.Millisecond},
		{Queue: "q", JobType: "email.send", Status: worker.Succeeded},
	} {
		_, done := m.Job(context.Background(), &worker.Job{Queue: o.Queue, Type: o.JobType}, worker.Source{})
		done(o)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "warren_rate_limit_wait_seconds_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[strings.Join(labels, ",")] = s.GetCounter().GetValue()
		}
	}
	if diff := cmp.Diff(map[string]float64{"queue=q,type=sms.send": 2}, got); diff != "" {
		t.Errorf("warren_rate_limit_wait_seconds_total (-want +got):\n%s", diff)
	}
}

func TestScheduler(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.SchedulerLeading(true)
	m.ScheduleTicks("nightly", scheduler.Fired, 1)
	m.ScheduleTicks("nightly", scheduler.Fired, 1)
	m.ScheduleTicks("nightly", scheduler.Missed, 3)
	m.ScheduleTicks("often", scheduler.Paused, 2)
	expected := `
# HELP warren_schedule_ticks_total Ticks of periodic jobs the leading scheduler came to, by schedule and outcome (fired; missed: older than the catch-up window; paused).
# TYPE warren_schedule_ticks_total counter
warren_schedule_ticks_total{outcome="fired",schedule="nightly"} 2
warren_schedule_ticks_total{outcome="missed",schedule="nightly"} 3
warren_schedule_ticks_total{outcome="paused",schedule="often"} 2
# HELP warren_scheduler_leading 1 while this process's scheduler leads (fires the ticks of periodic jobs), 0 otherwise.
# TYPE warren_scheduler_leading gauge
warren_scheduler_leading 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "warren_schedule_ticks_total", "warren_scheduler_leading"); err != nil {
		t.Error(err)
	}
}

func TestOutbox(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.OutboxBatch(2, 1, []time.Duration{100 * time.Millisecond, 300 * time.Millisecond})
	m.OutboxBatch(1, 0, []time.Duration{2 * time.Second})
	m.OutboxStats(outbox.Stats{Backlog: 7, Lag: 1500 * time.Millisecond})
	m.OutboxDeleted(40)
	expected := `
# HELP warren_outbox_backlog Outbox rows not yet sent, as the relay last read them.
# TYPE warren_outbox_backlog gauge
warren_outbox_backlog 7
# HELP warren_outbox_deleted_total Sent outbox rows deleted by this process's relay past their retention.
# TYPE warren_outbox_deleted_total counter
warren_outbox_deleted_total 40
# HELP warren_outbox_lag_seconds Age of the oldest unsent outbox row, as the relay last read it (0: none).
# TYPE warren_outbox_lag_seconds gauge
warren_outbox_lag_seconds 1.5
# HELP warren_outbox_rows_total Outbox rows this process's relay published, by outcome (sent: confirmed and marked sent; failed: to be tried again after a backoff).
# TYPE warren_outbox_rows_total counter
warren_outbox_rows_total{outcome="failed"} 1
warren_outbox_rows_total{outcome="sent"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "warren_outbox_rows_total", "warren_outbox_backlog",
		"warren_outbox_lag_seconds", "warren_outbox_deleted_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "warren_outbox_relay_delay_seconds"); n != 1 {
		t.Errorf("warren_outbox_relay_delay_seconds: %d series, want 1", n)
	}
}
