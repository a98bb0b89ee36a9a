package broker_test

import (
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// A job without a correlation id takes ctx's, in Publish and
// PublishBatch; one with its own keeps it; a request (ReplyTo) never
// inherits.
func TestPublishInheritsCorrelationID(t *testing.T) {
	q := brokertest.Queue(t, "corr", nil)
	pub := newPublisher(t, dial(t))
	ctx := broker.ContextWithCorrelationID(brokertest.Context(t, 30*time.Second), "conv-1")
	if got := broker.CorrelationIDFromContext(ctx); got != "conv-1" {
		t.Fatalf("CorrelationIDFromContext = %q", got)
	}
	jobs := []broker.Job{
		{ID: "inherits", Type: "t"},
		{ID: "own", Type: "t", CorrelationID: "mine"},
		{ID: "request", Type: "t", ReplyTo: "replies"},
	}
	for _, j := range jobs {
		if err := pub.Publish(ctx, j, broker.ToQueue(q)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.PublishBatch(ctx, []broker.Job{{ID: "batch", Type: "t"}}, broker.ToQueue(q)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"inherits": "conv-1", "own": "mine", "request": "", "batch": "conv-1"}
	for range want {
		d := brokertest.Get(t, q, 10*time.Second)
		if d.CorrelationId != want[d.MessageId] {
			t.Errorf("%s: correlation id %q, want %q", d.MessageId, d.CorrelationId, want[d.MessageId])
		}
	}
	if jobs[0].CorrelationID != "" {
		t.Error("Publish changed the caller's job")
	}
}
