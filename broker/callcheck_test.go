package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
)

// requestQueue declares a durable queue for requests, deleted at the
// test's end.
func requestQueue(t *testing.T) string {
	t.Helper()
	queue := brokertest.Name(t, "requests")
	if _, err := brokertest.Channel(t).QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	brokertest.DeleteQueuesAtCleanup(t, queue)
	return queue
}

func newCaller(t *testing.T, conn *broker.Conn, opts ...broker.CallerOption) *broker.Caller {
	t.Helper()
	c, err := broker.NewCaller(conn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// answer consumes queue on conn and replies "pong" to every request until
// the test ends.
func answer(t *testing.T, conn *broker.Conn, queue string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := broker.Consume(ctx, conn, queue)
	if err != nil {
		t.Fatal(err)
	}
	snd := newSender(t, conn)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			d, ok := c.Next(ctx)
			if !ok {
				return
			}
			_ = snd.Reply(ctx, d.Envelope, "pong", nil)
			_ = d.Ack()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = c.Close(context.Background())
		<-done
	})
}

// TestCallFailsFast: with WithConsumerCheck, a Call to a queue nobody
// consumes fails at once, without publishing, saying why: no consumer,
// paused, or every consumer's breaker open.
func TestCallFailsFast(t *testing.T) {
	conn := dial(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, queue string)
		want  error
	}{
		{"no consumer", func(*testing.T, string) {}, broker.ErrNoConsumer},
		{"paused", func(t *testing.T, queue string) {
			ctx := brokertest.Context(t, 20*time.Second)
			if err := broker.SetPaused(ctx, conn, queue, true); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = broker.SetPaused(context.Background(), conn, queue, false) })
		}, broker.ErrQueuePaused},
		{"breaker open", func(t *testing.T, queue string) {
			ctx, cancel := context.WithCancel(context.Background())
			held := make(chan struct{})
			go func() {
				defer close(held)
				broker.HoldBreakerMarker(ctx, conn, queue)
			}()
			t.Cleanup(func() { cancel(); <-held })
			testkit.WaitFor(t, 20*time.Second, "the breaker marker held", func() bool {
				n, err := broker.BreakerOpen(brokertest.Context(t, 10*time.Second), conn, queue)
				return err == nil && n == 1
			})
		}, broker.ErrBreakerOpen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			queue := requestQueue(t)
			tc.setup(t, queue)
			c := newCaller(t, conn, broker.WithConsumerCheck(0))
			ctx := brokertest.Context(t, 30*time.Second)
			_, err := c.Call(ctx, broker.Job{Type: "ping"}, broker.ToQueue(queue))
			if !errors.Is(err, tc.want) || !errors.Is(err, broker.ErrNoConsumer) {
				t.Fatalf("Call: %v; want %v (and ErrNoConsumer)", err, tc.want)
			}
			var ue *broker.UnavailableError
			if !errors.As(err, &ue) || ue.Queue != queue {
				t.Fatalf("Call: %v; want an *UnavailableError naming %s", err, queue)
			}
			if n := brokertest.Depth(t, queue); n != 0 {
				t.Errorf("%d requests in the queue; a call that failed fast must publish nothing", n)
			}
		})
	}
}

// TestCallCheckCached: the answer is kept for the period: a consumer that
// comes within it is not seen; once it passes, calls go through.
func TestCallCheckCached(t *testing.T) {
	conn := dial(t)
	queue := requestQueue(t)
	ctx := brokertest.Context(t, 30*time.Second)
	long := newCaller(t, conn, broker.WithConsumerCheck(time.Hour))
	short := newCaller(t, conn, broker.WithConsumerCheck(50*time.Millisecond))
	for _, c := range []*broker.Caller{long, short} {
		if _, err := c.Call(ctx, broker.Job{Type: "ping"}, broker.ToQueue(queue)); !errors.Is(err, broker.ErrNoConsumer) {
			t.Fatalf("Call before any consumer: %v, want ErrNoConsumer", err)
		}
	}
	answer(t, conn, queue)
	testkit.WaitFor(t, 20*time.Second, "a call answered once the short period passed", func() bool {
		_, err := short.Call(ctx, broker.Job{Type: "ping"}, broker.ToQueue(queue))
		return err == nil
	})
	if _, err := long.Call(ctx, broker.Job{Type: "ping"}, broker.ToQueue(queue)); !errors.Is(err, broker.ErrNoConsumer) {
		t.Fatalf("Call within the period: %v; want the cached ErrNoConsumer", err)
	}
}

// TestCallWithoutCheckWaits: without WithConsumerCheck, a request waits
// in its queue for a worker until its deadline, as before.
func TestCallWithoutCheckWaits(t *testing.T) {
	conn := dial(t)
	queue := requestQueue(t)
	c := newCaller(t, conn)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Call(ctx, broker.Job{Type: "ping"}, broker.ToQueue(queue)); !errors.Is(err, broker.ErrReplyTimeout) {
		t.Fatalf("Call: %v, want ErrReplyTimeout", err)
	}
	if n := brokertest.Depth(t, queue); n != 1 {
		t.Errorf("%d requests in the queue, want the one sent", n)
	}
}
