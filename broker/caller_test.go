package broker_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// TestCallRequestDeliveryMode reads a Caller's request as the broker
// holds it: transient by default, persistent with WithDurableRequests;
// either way answered.
func TestCallRequestDeliveryMode(t *testing.T) {
	conn := dial(t)
	snd := newSender(t, conn)
	for _, tc := range []struct {
		name string
		opts []broker.CallerOption
		mode uint8
	}{
		{"default", nil, amqp.Transient},
		{"durable", []broker.CallerOption{broker.WithDurableRequests()}, amqp.Persistent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := brokertest.Context(t, 20*time.Second)
			queue := brokertest.Name(t, "requests")
			ch := brokertest.Channel(t)
			if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
				t.Fatal(err)
			}
			brokertest.DeleteQueuesAtCleanup(t, queue)
			caller, err := broker.NewCaller(conn, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = caller.Close(context.Background()) })

			type answer struct {
				reply *broker.Envelope
				err   error
			}
			done := make(chan answer, 1)
			go func() {
				r, err := caller.Call(ctx, broker.Job{Type: "rider.authorise", Payload: "ada"}, broker.ToQueue(queue))
				done <- answer{r, err}
			}()
			d := brokertest.Get(t, queue, 5*time.Second)
			if d.DeliveryMode != tc.mode {
				t.Errorf("request delivery mode %d, want %d", d.DeliveryMode, tc.mode)
			}
			request, err := broker.FromDelivery(&d)
			if err != nil {
				t.Fatal(err)
			}
			if err := snd.Reply(ctx, request, "approved", nil); err != nil {
				t.Fatal(err)
			}
			a := <-done
			if a.err != nil {
				t.Fatalf("Call: %v", a.err)
			}
			var got string
			if err := a.reply.Decode(&got); err != nil || got != "approved" {
				t.Fatalf("reply %q, %v", got, err)
			}
		})
	}
}
