package broker_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/contracttest"
)

// BenchmarkCall makes calls one after another through a Caller, answered
// by a plain amqp091-go responder in the same process (the same work for
// every version of the Caller). Its allocations per op are the caller's
// and the responder's; the responder's do not change, so a change in
// allocs/op is the Caller's.
func BenchmarkCall(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []broker.CallerOption
	}{
		{"reply-queue", nil},
		{"direct", []broker.CallerOption{broker.WithCallDirectReplyTo()}},
		{"consumer-check", []broker.CallerOption{broker.WithConsumerCheck(time.Second)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := brokertest.Context(b, 5*time.Minute)
			conn, err := broker.Dial(ctx, []string{brokertest.URL(b)}, broker.WithName("warren-bench-call"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = conn.Close() })
			queue := brokertest.Name(b, "requests")
			ch := brokertest.Channel(b)
			if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
				b.Fatal(err)
			}
			brokertest.DeleteQueuesAtCleanup(b, queue)
			respond(b, queue)
			caller, err := broker.NewCaller(conn, tc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = caller.Close(context.Background()) })
			job := broker.Job{Type: "bench.call", Payload: map[string]any{"n": 1}}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := caller.Call(ctx, job, broker.ToQueue(queue)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// respond answers every request of queue with a fixed MessagePack body,
// correlated as a warren worker correlates, until the test ends.
func respond(tb testing.TB, queue string) {
	tb.Helper()
	ch := brokertest.Channel(tb)
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		for d := range deliveries {
			corr := d.CorrelationId
			if corr == "" {
				corr = d.MessageId
			}
			_ = ch.Publish("", d.ReplyTo, false, false, amqp.Publishing{
				ContentType: broker.ContentType, CorrelationId: corr, Body: []byte{0xc3},
			})
		}
	}()
}

// BenchmarkPublishBatch publishes batches of 512 jobs with confirms into a
// queue of its own, purged as it goes: allocs/op divided by 512 is a
// job's cost on the publishing side.
func BenchmarkPublishBatch(b *testing.B) {
	ctx := brokertest.Context(b, 5*time.Minute)
	conn, err := broker.Dial(ctx, []string{brokertest.URL(b)}, broker.WithName("warren-bench-publish"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	queue := brokertest.Name(b, "jobs")
	ch := brokertest.Channel(b)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	brokertest.DeleteQueuesAtCleanup(b, queue)
	pub, err := broker.NewPublisher(conn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = pub.Close(context.Background()) })
	type payload struct {
		Seq  int    `msgpack:"seq"`
		Data string `msgpack:"data"`
	}
	jobs := make([]broker.Job, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for j := range jobs {
			jobs[j] = broker.Job{Type: "bench.job", Payload: payload{Seq: j, Data: "0123456789abcdef"}}
		}
		if err := pub.PublishBatch(ctx, jobs, broker.ToQueue(queue)); err != nil {
			b.Fatal(err)
		}
		if i%20 == 19 {
			if _, err := ch.QueuePurge(queue, false); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPublishValidator publishes jobs of a ten-field payload without
// and with WithValidator: one at a time, each awaiting its confirm
// ("publish"), and in batches of 512 ("batch", per batch), into a queue of
// its own, purged as it goes.
func BenchmarkPublishValidator(b *testing.B) {
	set := contracttest.Parse(b, contracttest.Invoices)
	payload := contracttest.NewInvoice()
	for _, mode := range []string{"publish", "batch"} {
		for _, validate := range []bool{false, true} {
			name := mode + "/no-validator"
			var opts []broker.PublisherOption
			if validate {
				name = mode + "/validator"
				opts = append(opts, broker.WithValidator(set))
			}
			b.Run(name, func(b *testing.B) {
				ctx := brokertest.Context(b, 5*time.Minute)
				conn, err := broker.Dial(ctx, []string{brokertest.URL(b)}, broker.WithName("warren-bench-validate"))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = conn.Close() })
				queue := brokertest.Name(b, "jobs")
				ch := brokertest.Channel(b)
				if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
					b.Fatal(err)
				}
				brokertest.DeleteQueuesAtCleanup(b, queue)
				pub, err := broker.NewPublisher(conn, opts...)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = pub.Close(context.Background()) })
				jobs := make([]broker.Job, 512)
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if mode == "publish" {
						if err := pub.Publish(ctx, broker.Job{Type: "invoice.render", Version: 1, Payload: payload}, broker.ToQueue(queue)); err != nil {
							b.Fatal(err)
						}
					} else {
						for j := range jobs {
							jobs[j] = broker.Job{Type: "invoice.render", Version: 1, Payload: payload}
						}
						if err := pub.PublishBatch(ctx, jobs, broker.ToQueue(queue)); err != nil {
							b.Fatal(err)
						}
					}
					if i%2000 == 1999 || mode == "batch" && i%20 == 19 {
						if _, err := ch.QueuePurge(queue, false); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
