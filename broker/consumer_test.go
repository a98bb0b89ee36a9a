package broker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

func consume(t *testing.T, conn *broker.Conn, queue string, opts ...broker.ConsumeOption) *broker.Consumer {
	t.Helper()
	c, err := broker.Consume(brokertest.Context(t, 10*time.Second), conn, queue, opts...)
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("Consumer.Close: %v", err)
		}
	})
	return c
}

func publishN(t *testing.T, p *broker.Publisher, exchange string, n int) []string {
	t.Helper()
	jobs := make([]broker.Job, n)
	for i := range jobs {
		jobs[i] = broker.Job{Type: "count", Payload: i}
	}
	if err := p.PublishBatch(brokertest.Context(t, 30*time.Second), jobs, broker.To(exchange, "k")); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	ids := make([]string, n)
	for i := range jobs {
		ids[i] = jobs[i].ID
	}
	return ids
}

// TestConsumeAcksEveryDeliveryOnce consumes with several goroutines
// finishing out of order and grouped acks, then checks every job was seen
// once and the queue is empty once the consumer is closed: every ack
// reached the broker.
func TestConsumeAcksEveryDeliveryOnce(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	ids := publishN(t, newPublisher(t, conn), exchange, 1000)

	c, err := broker.Consume(brokertest.Context(t, 10*time.Second), conn, queue, broker.WithPrefetch(64))
	if err != nil {
		t.Fatal(err)
	}
	ctx := brokertest.Context(t, 30*time.Second)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				total := len(seen)
				mu.Unlock()
				if total == len(ids) {
					return
				}
				nctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				d, ok := c.Next(nctx)
				cancel()
				if !ok {
					continue
				}
				if d.Err != nil {
					t.Errorf("delivery: %v", d.Err)
				}
				if w%3 == 0 {
					time.Sleep(time.Millisecond) // finish out of order
				}
				mu.Lock()
				seen[d.Envelope.ID]++
				mu.Unlock()
				if err := d.Ack(); err != nil {
					t.Errorf("Ack: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if d, ok := c.Next(ctx); ok {
		t.Errorf("a delivery after every job was seen: %s", d.Envelope.ID)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("job %s seen %d times", id, seen[id])
		}
	}
	if n := brokertest.Depth(t, queue); n != 0 {
		t.Errorf("%d jobs back in the queue after Close: acks were lost", n)
	}
}

func TestDeliverySettlesOnce(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	publishN(t, newPublisher(t, conn), exchange, 2)
	c := consume(t, conn, queue, broker.WithPrefetch(1))
	ctx := brokertest.Context(t, 10*time.Second)

	d, ok := c.Next(ctx)
	if !ok {
		t.Fatal("no delivery")
	}
	if err := d.Requeue(); err != nil {
		t.Fatal(err)
	}
	for _, settle := range []func() error{d.Ack, d.Requeue, d.Reject} {
		if err := settle(); !errors.Is(err, broker.ErrAlreadySettled) {
			t.Errorf("second settlement: got %v, want ErrAlreadySettled", err)
		}
	}
	// The requeued job comes back, flagged as redelivered.
	seen := map[string]bool{}
	for range 2 {
		d, ok := c.Next(ctx)
		if !ok {
			t.Fatal("no delivery")
		}
		if d.Envelope.ID == "" || seen[d.Envelope.ID] {
			t.Errorf("unexpected delivery %q", d.Envelope.ID)
		}
		seen[d.Envelope.ID] = true
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSlowDeliveryDoesNotHoldPrefetch: with prefetch 4, one job that is not
// finished must not keep the three after it from being acked, or the broker
// would stop delivering.
func TestSlowDeliveryDoesNotHoldPrefetch(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	publishN(t, newPublisher(t, conn), exchange, 20)
	c := consume(t, conn, queue, broker.WithPrefetch(4))
	ctx := brokertest.Context(t, 20*time.Second)

	slow, ok := c.Next(ctx)
	if !ok {
		t.Fatal("no delivery")
	}
	for range 19 {
		d, ok := c.Next(ctx)
		if !ok {
			t.Fatalf("deliveries stopped behind the unfinished one: %v", c.Err())
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if err := slow.Ack(); err != nil {
		t.Fatal(err)
	}
}

func TestMalformedDeliveryKeepsWhatCameIn(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	ch := brokertest.Channel(t)
	err := ch.PublishWithContext(brokertest.Context(t, 5*time.Second), exchange, "k", false, false, amqp.Publishing{
		ContentType: "application/json",
		MessageId:   "m1",
		Type:        "email.send",
		Headers:     amqp.Table{"warren-attempt": "three", "tenant": "acme"},
		Body:        []byte(`{"to":"x"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := consume(t, conn, queue)
	d, ok := c.Next(brokertest.Context(t, 10*time.Second))
	if !ok {
		t.Fatal("no delivery")
	}
	defer d.Ack()
	if !errors.Is(d.Err, broker.ErrUnsupportedContentType) {
		t.Errorf("Err = %v, want ErrUnsupportedContentType", d.Err)
	}
	e := d.Envelope
	if e == nil || e.ID != "m1" || e.Type != "email.send" || string(e.Body) != `{"to":"x"}` || e.ContentType != "application/json" {
		t.Fatalf("envelope lost what came in: %+v", e)
	}
	if e.Headers["tenant"] != "acme" || e.Headers["warren-attempt"] != "three" {
		t.Errorf("headers lost: %v", e.Headers)
	}
	if d.Queue != queue || d.Exchange != exchange || d.RoutingKey != "k" {
		t.Errorf("origin: %q %q %q", d.Queue, d.Exchange, d.RoutingKey)
	}
}

func TestConsumerCancelledWhenQueueDeleted(t *testing.T) {
	conn := dial(t)
	_, queue := setup(t, nil)
	c := consume(t, conn, queue)
	if _, err := brokertest.Channel(t).QueueDelete(queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	ctx := brokertest.Context(t, 10*time.Second)
	if d, ok := c.Next(ctx); ok {
		t.Fatalf("delivery from a deleted queue: %+v", d)
	}
	if ctx.Err() != nil {
		t.Fatal("Next waited for the ctx instead of noticing the cancel")
	}
	if err := c.Err(); !errors.Is(err, broker.ErrConsumerCancelled) {
		t.Errorf("Err = %v, want ErrConsumerCancelled", err)
	}
}

func TestConsumeMissingQueue(t *testing.T) {
	conn := dial(t)
	_, err := broker.Consume(brokertest.Context(t, 10*time.Second), conn, brokertest.Name(t, "missing"))
	if err == nil {
		t.Fatal("consuming a missing queue succeeded")
	}
	if want := "apply the topology first"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestSettleAfterChannelClosed(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	publishN(t, newPublisher(t, conn), exchange, 1)
	c, err := broker.Consume(brokertest.Context(t, 10*time.Second), conn, queue)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := c.Next(brokertest.Context(t, 10*time.Second))
	if !ok {
		t.Fatal("no delivery")
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Ack after Close: %v, want ErrClosed", err)
	}
	if n := brokertest.Depth(t, queue); n != 1 {
		t.Errorf("depth %d, want the unsettled job back in the queue", n)
	}
}

// TestConsumeCtxDoesNotCancelConsumer: the ctx given to Consume bounds the
// start only. Ending it must not cancel the consumer behind the caller's
// back (amqp091-go's ConsumeWithContext does), which would stop deliveries
// and race Cancel, making Close fail.
func TestConsumeCtxDoesNotCancelConsumer(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := broker.Consume(ctx, conn, queue)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(100 * time.Millisecond)
	publishN(t, newPublisher(t, conn), exchange, 1)
	d, ok := c.Next(brokertest.Context(t, 5*time.Second))
	if !ok {
		t.Fatalf("no delivery after the start ctx ended: %v", c.Err())
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := c.Cancel(context.Background()); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestReturnAllIsVisibleAtOnce: a browsing consumer returns what it read,
// and the queue counts it as soon as ReturnAll returns.
func TestReturnAllIsVisibleAtOnce(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	publishN(t, newPublisher(t, conn), exchange, 5)
	for range 5 { // repeatedly: a race would show
		c, err := broker.Consume(brokertest.Context(t, 10*time.Second), conn, queue, broker.WithPrefetch(10))
		if err != nil {
			t.Fatal(err)
		}
		var last *broker.Delivery
		for range 5 {
			d, ok := c.Next(brokertest.Context(t, 10*time.Second))
			if !ok {
				t.Fatal("no delivery")
			}
			last = d
		}
		if err := c.Cancel(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := c.ReturnAll(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := brokertest.Depth(t, queue); n != 5 {
			t.Fatalf("depth %d right after ReturnAll, want 5", n)
		}
		if err := last.Ack(); err == nil {
			t.Error("a delivery was settled after ReturnAll")
		}
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReturnAllAfterSomeAcks: the deliveries acked stay acked (grouped acks
// are sent first), the others return, even when the newest was acked (a
// multiple nack must not name a settled tag).
func TestReturnAllAfterSomeAcks(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	publishN(t, newPublisher(t, conn), exchange, 5)
	c, err := broker.Consume(brokertest.Context(t, 10*time.Second), conn, queue, broker.WithPrefetch(10))
	if err != nil {
		t.Fatal(err)
	}
	var ds []*broker.Delivery
	for range 5 {
		d, ok := c.Next(brokertest.Context(t, 10*time.Second))
		if !ok {
			t.Fatal("no delivery")
		}
		ds = append(ds, d)
	}
	for _, i := range []int{0, 4} {
		if err := ds[i].Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Cancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.ReturnAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := brokertest.Depth(t, queue); n != 3 {
		t.Errorf("depth %d after ReturnAll, want the 3 unacked", n)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); err != nil && !errors.Is(err, broker.ErrClosed) {
		t.Errorf("consumer ended with %v", err)
	}
}
