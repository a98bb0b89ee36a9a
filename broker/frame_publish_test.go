package broker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// TestHeadersTooLargeAreRefusedBeforeSending: a job whose headers do not
// fit in one frame, or cannot be encoded, fails alone with
// ErrHeadersTooLarge / ErrInvalidJob, whichever way it is sent, and the
// connection it would have brought down (RabbitMQ closes it on such a
// frame) carries on: the next job goes through, nothing reconnected.
func TestHeadersTooLargeAreRefusedBeforeSending(t *testing.T) {
	t.Parallel()
	exchange, queue := setup(t, nil)
	conn := dial(t)
	pub := newPublisher(t, conn)
	snd := newSender(t, conn)
	caller, err := broker.NewCaller(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := brokertest.Context(t, 30*time.Second)
	defer caller.Close(ctx)
	huge := map[string]any{"blob": strings.Repeat("x", 200_000)}

	err = pub.Publish(ctx, broker.Job{Type: "t", Headers: huge}, broker.To(exchange, "k"))
	if !errors.Is(err, broker.ErrHeadersTooLarge) || !errors.Is(err, broker.ErrInvalidJob) {
		t.Errorf("Publish: %v, want ErrHeadersTooLarge and ErrInvalidJob", err)
	}
	err = pub.PublishBatch(ctx, []broker.Job{{Type: "t"}, {Type: "t", Headers: huge}}, broker.To(exchange, "k"))
	if !errors.Is(err, broker.ErrHeadersTooLarge) {
		t.Errorf("PublishBatch: %v, want ErrHeadersTooLarge", err)
	}
	err = snd.PublishMessage(ctx, exchange, "k", broker.Message{MessageID: "raw", Type: "t", Headers: broker.Table{"k": uint64(1)}})
	if !errors.Is(err, broker.ErrInvalidJob) {
		t.Errorf("PublishMessage of a header AMQP cannot carry: %v, want ErrInvalidJob", err)
	}
	_, err = caller.Call(ctx, broker.Job{Type: "t", Headers: huge}, broker.To(exchange, "k"))
	if !errors.Is(err, broker.ErrHeadersTooLarge) {
		t.Errorf("Call: %v, want ErrHeadersTooLarge", err)
	}

	if err := pub.Publish(ctx, broker.Job{Type: "t", ID: "after"}, broker.To(exchange, "k")); err != nil {
		t.Fatalf("a job after the refused ones: %v", err)
	}
	if n := conn.Reconnects(); n != 0 || conn.State() != broker.Connected {
		t.Errorf("connection state %v after %d reconnects, want connected, never lost", conn.State(), n)
	}
	// The batch's first job, sent before its second was refused, and the
	// last one: nothing else reached the queue.
	var ids []string
	for range 2 {
		ids = append(ids, brokertest.Get(t, queue, 10*time.Second).MessageId)
	}
	if ids[1] != "after" {
		t.Errorf("queue holds %v, want the batch's first job then %q", ids, "after")
	}
	if n := brokertest.Depth(t, queue); n != 0 {
		t.Errorf("%d more jobs in the queue", n)
	}
}
