package broker_test

import (
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// TestPublisherReply sends the replies a worker sends: a result and a
// failure to a caller waiting on direct reply-to (read here with plain
// amqp091-go, as a caller in another language would), and a result to a
// durable reply queue.
func TestSenderReply(t *testing.T) {
	conn := dial(t)
	pub := newSender(t, conn)
	ctx := brokertest.Context(t, 20*time.Second)
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

	t.Run("direct reply-to", func(t *testing.T) {
		queue := brokertest.Name(t, "requests")
		ch := brokertest.Channel(t)
		if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		brokertest.DeleteQueuesAtCleanup(t, queue)
		replies, err := ch.Consume(broker.DirectReplyTo, "", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The request as a worker receives it: the broker rewrote
		// reply_to to the caller's channel's address.
		for _, corr := range []string{"c-ok", "c-fail"} {
			if err := ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{
				ContentType: broker.ContentType, Type: "rider.authorise", MessageId: "id-" + corr,
				CorrelationId: corr, ReplyTo: broker.DirectReplyTo,
			}); err != nil {
				t.Fatal(err)
			}
		}
		for _, corr := range []string{"c-ok", "c-fail"} {
			d := brokertest.Get(t, queue, 5*time.Second)
			request, err := broker.FromDelivery(&d)
			if err != nil {
				t.Fatal(err)
			}
			if !broker.IsDirectReplyTo(request.ReplyTo) || request.CorrelationID != corr {
				t.Fatalf("request reply_to %q, correlation id %q", request.ReplyTo, request.CorrelationID)
			}
			var failure *broker.Failure
			if corr == "c-fail" {
				failure = &broker.Failure{Error: "card declined", Class: "permanent"}
			}
			if err := pub.ReplyAt(ctx, request, map[string]any{"ok": true}, failure, now); err != nil {
				t.Fatalf("Reply: %v", err)
			}
			select {
			case r := <-replies:
				if r.CorrelationId != corr || r.ContentType != broker.ContentType || r.DeliveryMode == amqp.Persistent {
					t.Errorf("reply: correlation id %q, content type %q, delivery mode %d", r.CorrelationId, r.ContentType, r.DeliveryMode)
				}
				if r.MessageId != "" || r.Type != "" {
					t.Errorf("a direct reply carries only what the caller reads; got id %q, type %q", r.MessageId, r.Type)
				}
				if _, err := broker.FromDelivery(&r); !errors.Is(err, broker.ErrMissingType) {
					t.Fatalf("read reply: %v, want ErrMissingType (a caller knows the type)", err)
				}
				r.Type = "rider.authorise.reply"
				env, err := broker.FromDelivery(&r)
				if err != nil {
					t.Fatal(err)
				}
				if failure == nil {
					var got map[string]bool
					if err := env.Decode(&got); err != nil || !got["ok"] {
						t.Errorf("result %v, %v", got, err)
					}
					if env.RemoteErr() != nil {
						t.Errorf("a result reply reads as a failure: %v", env.RemoteErr())
					}
				} else if re := env.RemoteErr(); re == nil || re.Message != "card declined" || re.Class != "permanent" {
					t.Errorf("failure reply: %+v", re)
				}
			case <-ctx.Done():
				t.Fatal("no reply")
			}
		}
	})

	t.Run("reply queue", func(t *testing.T) {
		queue := brokertest.Name(t, "replies")
		ch := brokertest.Channel(t)
		if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		brokertest.DeleteQueuesAtCleanup(t, queue)
		request := &broker.Envelope{ID: "r1", Type: "trip.price", ReplyTo: queue}
		if err := pub.ReplyAt(ctx, request, 42, nil, now); err != nil {
			t.Fatalf("Reply: %v", err)
		}
		d := brokertest.Get(t, queue, 5*time.Second)
		env, err := broker.FromDelivery(&d)
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if env.ID != "r1.reply" || env.Type != "trip.price.reply" || env.CorrelationID != "r1" || d.DeliveryMode != amqp.Persistent {
			t.Errorf("queued reply: id %q, type %q, correlation id %q, delivery mode %d", env.ID, env.Type, env.CorrelationID, d.DeliveryMode)
		}
		if err := env.Decode(&got); err != nil || got != 42 {
			t.Errorf("result %d, %v", got, err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		if err := pub.ReplyAt(ctx, &broker.Envelope{ID: "r"}, 1, nil, now); !errors.Is(err, broker.ErrInvalidJob) {
			t.Errorf("no reply_to: %v, want ErrInvalidJob", err)
		}
		err := pub.ReplyAt(ctx, &broker.Envelope{ID: "r", ReplyTo: "amq.rabbitmq.reply-to.x"}, make(chan int), nil, now)
		if !errors.Is(err, broker.ErrInvalidJob) {
			t.Errorf("result that cannot be encoded: %v, want ErrInvalidJob", err)
		}
		err = pub.ReplyAt(ctx, &broker.Envelope{ID: "r", ReplyTo: brokertest.Name(t, "no-such-queue")}, 1, nil, now)
		if !errors.Is(err, broker.ErrUnroutable) {
			t.Errorf("reply queue that does not exist: %v, want ErrUnroutable", err)
		}
	})
}

// TestReplyKeepsVersion: a reply follows its request's version of the
// contract, in the warren-version header of a reply to a reply queue.
func TestReplyKeepsVersion(t *testing.T) {
	request := &broker.Envelope{ID: "r1", Type: "trip.book", Version: 2, ReplyTo: "trip.replies"}
	for _, failure := range []*broker.Failure{nil, {Error: "no driver", Class: "permanent"}} {
		r, err := broker.NewReply(request, map[string]any{"ok": true}, failure)
		if err != nil {
			t.Fatal(err)
		}
		if r.Type != "trip.book.reply" || r.Version != 2 || r.Publishing().Headers[broker.HeaderVersion] != int64(2) {
			t.Errorf("reply %s version %d, headers %v; want trip.book.reply version 2", r.Type, r.Version, r.Publishing().Headers)
		}
	}
}
