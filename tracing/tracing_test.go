package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/metrics"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/tracing"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) { os.Exit(brokertest.MainWithLeakCheck(m)) }

// fixture is a topology (an exchange, a work queue consumed by a pool)
// and the clients of one test.
type fixture struct {
	t        *testing.T
	exchange string
	queue    string
	topo     *topology.Topology
	observe  []broker.Option // given to every connection dialled
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, exchange: brokertest.Name(t, "x"), queue: brokertest.Name(t, "q")}
	f.topo = topotest.Apply(t, fmt.Sprintf(`version: 1
exchanges:
  %[1]s: {type: direct}
queues:
  %[2]s:
    type: classic
    retry: {max_attempts: 3, initial_interval: 1s, jitter: 0}
bindings:
  - {exchange: %[1]s, queue: %[2]s, routing_keys: [rpc, job]}
routes:
  rpc: {exchange: %[1]s}
  job: {exchange: %[1]s}
`, f.exchange, f.queue))
	return f
}

func (f *fixture) dial(name string) *broker.Conn {
	f.t.Helper()
	opts := append([]broker.Option{broker.WithName(name)}, f.observe...)
	conn, err := broker.Dial(brokertest.Context(f.t, 30*time.Second), []string{brokertest.URL(f.t)}, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	return conn
}

func (f *fixture) publisher(opts ...broker.PublisherOption) *broker.Publisher {
	f.t.Helper()
	pub, err := broker.NewPublisher(f.dial("tracing-test-publish"), append([]broker.PublisherOption{broker.WithRouter(f.topo)}, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { pub.Close(context.Background()) })
	return pub
}

// sender returns the worker pool's sender, on a connection of its own.
func (f *fixture) sender(opts ...broker.PublisherOption) *broker.Sender {
	f.t.Helper()
	snd, err := broker.NewSender(f.dial("tracing-test-send"), opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { snd.Close(context.Background()) })
	return snd
}

func (f *fixture) caller(opts ...broker.CallerOption) *broker.Caller {
	f.t.Helper()
	c, err := broker.NewCaller(f.dial("tracing-test-call"), append([]broker.CallerOption{broker.WithCallRouter(f.topo)}, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// run starts a pool on the fixture's queue; the func it returns stops it
// and waits until Run has returned, so every span has ended.
func (f *fixture) run(h worker.Handler, opts ...worker.Option) (stop func()) {
	f.t.Helper()
	pool, err := worker.NewPool(f.dial("tracing-test-consume"), f.topo, h, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- pool.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-ran; err != nil {
			f.t.Errorf("Run: %v", err)
		}
	}
	f.t.Cleanup(stop)
	return stop
}

func newProvider(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter, *tracing.Tracing) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr, err := tracing.New(tracing.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	return tp, exp, tr
}

// spanLabel names a span in a test's expectations: its name, with the
// attempt of a consumer span ("process Q#2").
func spanLabel(s tracetest.SpanStub) string {
	if s.SpanKind == trace.SpanKindConsumer {
		return fmt.Sprintf("%s#%d", s.Name, attr(s, tracing.AttrAttempt).AsInt64())
	}
	return s.Name
}

func attr(s tracetest.SpanStub, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// tree returns each span as "label (kind) <- parent label", sorted, and
// checks that they all share one trace.
func tree(t *testing.T, spans tracetest.SpanStubs) []string {
	t.Helper()
	byID := map[trace.SpanID]string{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = spanLabel(s)
	}
	var out []string
	for _, s := range spans {
		if s.SpanContext.TraceID() != spans[0].SpanContext.TraceID() {
			t.Errorf("span %s is in trace %s, not %s", spanLabel(s), s.SpanContext.TraceID(), spans[0].SpanContext.TraceID())
		}
		parent := "(root)"
		if s.Parent.IsValid() {
			var ok bool
			if parent, ok = byID[s.Parent.SpanID()]; !ok {
				parent = "(unknown " + s.Parent.SpanID().String() + ")"
			}
		}
		out = append(out, fmt.Sprintf("%s (%s) <- %s", spanLabel(s), s.SpanKind, parent))
	}
	sort.Strings(out)
	return out
}

func find(t *testing.T, spans tracetest.SpanStubs, label string) tracetest.SpanStub {
	t.Helper()
	for _, s := range spans {
		if spanLabel(s) == label {
			return s
		}
	}
	t.Fatalf("no span %q", label)
	return tracetest.SpanStub{}
}

// TestTraceFollowsCallThroughRetryToReply calls a job whose first attempt
// fails: the call, both attempts, the retry's publish and the reply are
// one trace, each span the child of the one that led to it.
func TestTraceFollowsCallThroughRetryToReply(t *testing.T) {
	f := newFixture(t)
	tp, exp, tr := newProvider(t)
	f.observe = []broker.Option{broker.WithObserver(tr)}
	snd := f.sender()
	caller := f.caller()
	mux := worker.NewMux()
	mux.HandleFunc("rpc", func(ctx context.Context, job *worker.Job) error {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			t.Errorf("attempt %d: the handler's ctx has no span", job.Attempt)
		}
		if job.Attempt == 1 {
			return errors.New("first attempt fails")
		}
		job.SetResult("done")
		return nil
	})
	stop := f.run(mux, worker.WithSender(snd))

	ctx, root := tp.Tracer("test").Start(brokertest.Context(t, 60*time.Second), "request")
	reply, err := caller.Call(ctx, broker.Job{Type: "rpc"})
	root.End()
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	stop()

	spans := exp.GetSpans()
	q, x := f.queue, f.exchange
	want := []string{
		"call " + x + " (client) <- request",
		"process " + q + "#1 (consumer) <- call " + x,
		"process " + q + "#2 (consumer) <- publish " + topology.DelayExchangeName(0),
		"publish (producer) <- process " + q + "#2",
		"publish " + topology.DelayExchangeName(0) + " (producer) <- process " + q + "#1",
		"request (internal) <- (root)",
	}
	if diff := cmp.Diff(want, tree(t, spans)); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}

	first := find(t, spans, "process "+q+"#1")
	wantAttrs := map[attribute.Key]string{
		"messaging.system":                           "rabbitmq",
		"messaging.operation.type":                   "process",
		"messaging.operation.name":                   "process",
		"messaging.destination.name":                 x,
		"messaging.destination.subscription.name":    q,
		"messaging.rabbitmq.destination.routing_key": "rpc",
		"messaging.message.id":                       reply.CorrelationID,
		"messaging.message.conversation_id":          reply.CorrelationID,
		"warren.job.type":                            "rpc",
		"warren.job.attempt":                         "1",
		"warren.job.outcome":                         "retried",
		"error.type":                                 worker.ClassError,
	}
	for k, v := range wantAttrs {
		if got := attr(first, k).Emit(); got != v {
			t.Errorf("attempt 1: %s = %q, want %q", k, got, v)
		}
	}
	if first.Status.Code != codes.Error || len(first.Events) == 0 {
		t.Errorf("attempt 1: status %v, %d events: want an error recorded", first.Status, len(first.Events))
	}
	second := find(t, spans, "process "+q+"#2")
	if second.Status.Code == codes.Error || attr(second, tracing.AttrOutcome).Emit() != "succeeded" {
		t.Errorf("attempt 2: status %v, outcome %q", second.Status, attr(second, tracing.AttrOutcome).Emit())
	}
	for label, kind := range map[string]string{"publish " + topology.DelayExchangeName(0): "retry", "publish": "reply"} {
		if got := attr(find(t, spans, label), tracing.AttrPublishKind).Emit(); got != kind {
			t.Errorf("%s: warren.publish.kind %q, want %q", label, got, kind)
		}
	}
}

// TestTraceFromPublishToProcess publishes without a parent span: the
// producer span is a root, the consumer span its child; a failed publish
// ends its span with an error.
func TestTraceFromPublishToProcess(t *testing.T) {
	f := newFixture(t)
	_, exp, tr := newProvider(t)
	f.observe = []broker.Option{broker.WithObserver(tr)}
	pub := f.publisher()
	snd := f.sender()
	done := make(chan string, 1)
	mux := worker.NewMux()
	mux.HandleFunc("job", func(ctx context.Context, job *worker.Job) error {
		done <- job.Envelope.Traceparent
		return nil
	})
	stop := f.run(mux, worker.WithSender(snd))

	ctx := brokertest.Context(t, 30*time.Second)
	id := brokertest.JobID(t)
	if err := pub.Publish(ctx, broker.Job{ID: id, Type: "job"}); err != nil {
		t.Fatal(err)
	}
	var traceparent string
	select {
	case traceparent = <-done:
	case <-ctx.Done():
		t.Fatal("the job was not handled")
	}
	stop()

	spans := exp.GetSpans()
	x, q := f.exchange, f.queue
	want := []string{
		"process " + q + "#1 (consumer) <- publish " + x,
		"publish " + x + " (producer) <- (root)",
	}
	if diff := cmp.Diff(want, tree(t, spans)); diff != "" {
		t.Fatalf("spans (-want +got):\n%s", diff)
	}
	producer := find(t, spans, "publish "+x)
	wantHeader := fmt.Sprintf("00-%s-%s-01", producer.SpanContext.TraceID(), producer.SpanContext.SpanID())
	if traceparent != wantHeader {
		t.Errorf("the job's traceparent is %q, want the producer span's %q", traceparent, wantHeader)
	}
	wantAttrs := map[attribute.Key]string{
		"messaging.system":                           "rabbitmq",
		"messaging.operation.type":                   "send",
		"messaging.operation.name":                   "publish",
		"messaging.destination.name":                 x,
		"messaging.rabbitmq.destination.routing_key": "job",
		"messaging.message.id":                       id,
		"warren.publish.kind":                        "job",
		"warren.job.type":                            "job",
		"warren.job.attempt":                         "1",
	}
	for k, v := range wantAttrs {
		if got := attr(producer, k).Emit(); got != v {
			t.Errorf("producer span: %s = %q, want %q", k, got, v)
		}
	}

	exp.Reset()
	if err := pub.Publish(ctx, broker.Job{Type: "job"}, broker.To(x, "nowhere")); !errors.Is(err, broker.ErrUnroutable) {
		t.Fatalf("Publish: %v, want ErrUnroutable", err)
	}
	spans = exp.GetSpans()
	if len(spans) != 1 || spans[0].Status.Code != codes.Error || attr(spans[0], "error.type").Emit() != "unroutable" {
		t.Errorf("failed publish: spans %+v, want one with an error status and error.type unroutable", spans)
	}
}

// TestNoProvider runs the observer without a tracer provider: nothing
// breaks, a job without trace context is handled as any other, and a job
// with one keeps it through a retry.
func TestNoProvider(t *testing.T) {
	f := newFixture(t)
	tr, err := tracing.New() // the global provider: a no-op, as no test sets one
	if err != nil {
		t.Fatal(err)
	}
	f.observe = []broker.Option{broker.WithObserver(tr)}
	pub := f.publisher()
	snd := f.sender()
	caller := f.caller()
	seen := make(chan string, 4)
	mux := worker.NewMux()
	mux.HandleFunc("job", func(ctx context.Context, job *worker.Job) error {
		seen <- fmt.Sprintf("%d %s", job.Attempt, job.Envelope.Traceparent)
		if job.Attempt == 1 {
			return errors.New("again")
		}
		return nil
	})
	mux.HandleFunc("rpc", func(ctx context.Context, job *worker.Job) error {
		job.SetResult(job.Envelope.Traceparent)
		return nil
	})
	f.run(mux, worker.WithSender(snd))
	ctx := brokertest.Context(t, 30*time.Second)

	reply, err := caller.Call(ctx, broker.Job{Type: "rpc"})
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	var got string
	if err := reply.Decode(&got); err != nil || got != "" {
		t.Errorf("the request carried traceparent %q (%v), want none", got, err)
	}

	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if err := pub.Publish(ctx, broker.Job{Type: "job", Headers: map[string]any{"traceparent": traceparent}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 " + traceparent, "2 " + traceparent} {
		select {
		case got := <-seen:
			if got != want {
				t.Errorf("handler saw %q, want %q", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("no attempt %q", want)
		}
	}
}

// TestPropagatorFields checks that a propagator writing more than the
// trace context writes it as the job's own headers, without touching the
// map the job was built from, and reads it back.
func TestPropagatorFields(t *testing.T) {
	tr, err := tracing.New(tracing.WithPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})))
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]any{"tenant": "acme"}
	env, err := broker.NewEnvelope(broker.Job{Type: "job", Headers: headers})
	if err != nil {
		t.Fatal(err)
	}
	shared := env.Headers
	member, err := baggage.NewMember("user", "ada")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), sc), bag)
	tr.Inject(ctx, env)

	if env.Traceparent != "00-01000000000000000000000000000000-0200000000000000-01" {
		t.Errorf("traceparent %q", env.Traceparent)
	}
	if env.Headers["baggage"] != "user=ada" || env.Headers["tenant"] != "acme" {
		t.Errorf("headers %v: want the baggage and the job's own", env.Headers)
	}
	if _, ok := shared["baggage"]; ok {
		t.Error("Inject wrote into the map the envelope shared")
	}
	back := tr.Extract(context.Background(), env)
	if got := baggage.FromContext(back).Member("user").Value(); got != "ada" {
		t.Errorf("extracted baggage user = %q", got)
	}
	if got := trace.SpanContextFromContext(back); got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsRemote() {
		t.Errorf("extracted span context %+v", got)
	}
}

func TestNewRefusesNil(t *testing.T) {
	if _, err := tracing.New(tracing.WithTracerProvider(nil)); err == nil {
		t.Error("New accepted a nil provider")
	}
	if _, err := tracing.New(tracing.WithPropagator(nil)); err == nil {
		t.Error("New accepted a nil propagator")
	}
}

// TestOneObserver gives the Tracing once, to the one connection a
// publisher and a pool share: the job, its attempts and its retry are one
// trace, the pool's own sender and job spans included without being told.
// Metrics given to the same Dial count the same work: observers combine.
func TestOneObserver(t *testing.T) {
	f := newFixture(t)
	_, exp, tr := newProvider(t)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	f.observe = []broker.Option{broker.WithObserver(m), broker.WithObserver(tr)}
	conn := f.dial("tracing-test-one")
	pub, err := broker.NewPublisher(conn, broker.WithRouter(f.topo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	done := make(chan struct{})
	mux := worker.NewMux()
	mux.HandleFunc("job", func(ctx context.Context, job *worker.Job) error {
		if job.Attempt == 1 {
			return errors.New("first attempt fails")
		}
		close(done)
		return nil
	})
	pool, err := worker.NewPool(conn, f.topo, mux)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- pool.Run(runCtx) }()
	ctx := brokertest.Context(t, 30*time.Second)
	if err := pub.Publish(ctx, broker.Job{Type: "job"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the job's second attempt did not run")
	}
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
	x, q := f.exchange, f.queue
	want := []string{
		"process " + q + "#1 (consumer) <- publish " + x,
		"process " + q + "#2 (consumer) <- publish " + topology.DelayExchangeName(0),
		"publish " + x + " (producer) <- (root)",
		"publish " + topology.DelayExchangeName(0) + " (producer) <- process " + q + "#1",
	}
	if diff := cmp.Diff(want, tree(t, exp.GetSpans())); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	expected := fmt.Sprintf(`
# HELP warren_jobs_processed_total Deliveries settled by worker pools, by queue, job type and outcome (succeeded, retried, dead_lettered, requeued, rejected, expired).
# TYPE warren_jobs_processed_total counter
warren_jobs_processed_total{outcome="retried",queue="%[1]s",type="job"} 1
warren_jobs_processed_total{outcome="succeeded",queue="%[1]s",type="job"} 1
# HELP warren_jobs_published_total Messages published from envelopes, replies excepted, by job type, kind (job, retry, dead_letter, replay) and outcome (ok: confirmed; error).
# TYPE warren_jobs_published_total counter
warren_jobs_published_total{kind="job",outcome="ok",type="job"} 1
warren_jobs_published_total{kind="retry",outcome="ok",type="job"} 1
`, q)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "warren_jobs_processed_total", "warren_jobs_published_total"); err != nil {
		t.Error(err)
	}
}
