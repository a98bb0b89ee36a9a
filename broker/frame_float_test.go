package broker_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// TestNonFiniteFloatHeadersAreRefused: RabbitMQ closes the publisher's
// connection (541 INTERNAL_ERROR) on a header holding a NaN or an
// infinity, so such a job fails alone with ErrInvalidJob, and the
// connection carries on.
func TestNonFiniteFloatHeadersAreRefused(t *testing.T) {
	t.Parallel()
	exchange, queue := setup(t, nil)
	conn := dial(t)
	pub := newPublisher(t, conn)
	snd := newSender(t, conn)
	ctx := brokertest.Context(t, 30*time.Second)

	for _, h := range []map[string]any{
		{"ratio": math.NaN()},
		{"limit": math.Inf(1)},
		{"nested": map[string]any{"list": []any{float32(math.Inf(-1))}}},
	} {
		if err := pub.Publish(ctx, broker.Job{Type: "t", Headers: h}, broker.To(exchange, "k")); !errors.Is(err, broker.ErrInvalidJob) {
			t.Errorf("Publish with headers %v: %v, want ErrInvalidJob", h, err)
		}
	}
	err := snd.PublishMessage(ctx, exchange, "k", broker.Message{MessageID: "raw", Type: "t", Headers: broker.Table{"x": math.NaN()}})
	if !errors.Is(err, broker.ErrInvalidJob) {
		t.Errorf("PublishMessage with a NaN header: %v, want ErrInvalidJob", err)
	}
	if err := pub.Publish(ctx, broker.Job{Type: "t", ID: "after", Headers: map[string]any{"ratio": 0.5}}, broker.To(exchange, "k")); err != nil {
		t.Fatalf("a job after the refused ones: %v", err)
	}
	if n := conn.Reconnects(); n != 0 || conn.State() != broker.Connected {
		t.Errorf("connection state %v after %d reconnects, want connected, never lost", conn.State(), n)
	}
	if id := brokertest.Get(t, queue, 10*time.Second).MessageId; id != "after" {
		t.Errorf("the queue holds %q, want only the job after", id)
	}
}
