package outbox_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/outbox"
)

// A job written with a ctx that carries a correlation id and a span
// context takes both, unless it has its own: the relay's publish, and
// the flow after it, go on in the writer's conversation and trace.
func TestPublishTakesCorrelationAndTraceFromContext(t *testing.T) {
	old := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(old) })

	f := newFixture(t)
	ctx := brokertest.Context(t, time.Minute)
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled})
	wctx := broker.ContextWithCorrelationID(trace.ContextWithSpanContext(ctx, sc), "req-7")

	inherits, own, request := brokertest.JobID(t), brokertest.JobID(t), brokertest.JobID(t)
	if err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		for _, job := range []broker.Job{
			{ID: inherits, Type: "order.placed"},
			{ID: own, Type: "order.placed", CorrelationID: "mine"},
			{ID: request, Type: "order.placed", ReplyTo: "replies"}, // its correlation id is its own: how its reply is matched
		} {
			if err := outbox.Publish(wctx, tx, job, outbox.To("", f.queue)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.relay(t)
	f.waitSent(t)
	want := map[string]string{inherits: "req-7", own: "mine", request: ""}
	for _, d := range drain(t, f.queue, 3, 300*time.Millisecond) {
		if d.CorrelationId != want[d.MessageId] {
			t.Errorf("job %s: correlation id %q, want %q", d.MessageId, d.CorrelationId, want[d.MessageId])
		}
		if tp := d.Headers["traceparent"]; tp != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
			t.Errorf("job %s: traceparent %v, want the writer's span context", d.MessageId, tp)
		}
	}
}
