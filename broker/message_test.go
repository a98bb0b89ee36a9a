package broker

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"
)

// TestMessageTypes: warren's types in, amqp091-go's on the wire, warren's
// out again, nested at any depth; values that need no conversion are not
// copied.
func TestMessageTypes(t *testing.T) {
	ours := Table{
		"d":   Decimal{Scale: 1, Value: 5},
		"tbl": Table{"a": []any{Table{"d": Decimal{Value: 1}}, "s"}, "empty": Table{}},
		"a":   []any{int64(1), []any{Decimal{Scale: 2}}},
		"s":   "x",
	}
	wire := amqp.Table{
		"d":   amqp.Decimal{Scale: 1, Value: 5},
		"tbl": amqp.Table{"a": []any{amqp.Table{"d": amqp.Decimal{Value: 1}}, "s"}, "empty": amqp.Table{}},
		"a":   []any{int64(1), []any{amqp.Decimal{Scale: 2}}},
		"s":   "x",
	}
	if diff := cmp.Diff(wire, wireTable(ours)); diff != "" {
		t.Errorf("wireTable (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ours, tableOf(wire)); diff != "" {
		t.Errorf("tableOf (-want +got):\n%s", diff)
	}
	if wireTable(Table{}) != nil || tableOf(nil) != nil {
		t.Error("empty headers are not nil")
	}
	flat := []any{"a", int64(1)}
	if got := fromWire(flat).([]any); &got[0] != &flat[0] {
		t.Error("fromWire copied an array it did not change")
	}
	if got := toWire(flat).([]any); &got[0] != &flat[0] {
		t.Error("toWire copied an array it did not change")
	}
	if err := wireTable(ours).Validate(); err != nil {
		t.Errorf("amqp091-go refuses the converted table: %v", err)
	}
}

// TestMessageEnvelopeRoundTrip: an envelope's Message reads back as the
// envelope, nested headers in warren's types both ways.
func TestMessageEnvelopeRoundTrip(t *testing.T) {
	env, err := newEnvelope(Job{
		ID: "j1", Type: "t", Payload: map[string]any{"a": 1}, Priority: 2, CorrelationID: "c", ReplyTo: "r",
		Headers: map[string]any{"n": 1, "m": map[string]any{"d": Decimal{Scale: 1, Value: 5}}, HeaderTraceparent: "tp"},
	}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	env.Attempt, env.ReplayCount = 3, 1
	env.Failure = &Failure{Error: "boom", Class: "transient", FailedAt: testNow.Add(time.Second), Origin: Origin{Queue: "q"}}
	msg := env.Message()
	if msg.DeliveryMode != 2 || msg.ContentType != ContentType || msg.MessageID != "j1" {
		t.Errorf("message %+v: want persistent, MessagePack, id j1", msg)
	}
	if _, ok := msg.Headers["m"].(Table); !ok {
		t.Errorf("nested header is a %T, want a Table", msg.Headers["m"])
	}
	got, err := msg.Envelope()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(env, got); diff != "" {
		t.Errorf("envelope read back from its Message (-want +got):\n%s", diff)
	}
	// What is sent is the same message in amqp091-go's types.
	pub := env.publishing()
	if _, ok := pub.Headers["m"].(amqp.Table); !ok {
		t.Errorf("nested header sent as a %T, want an amqp.Table", pub.Headers["m"])
	}
}
