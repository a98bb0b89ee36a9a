package broker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// TestConnReconnectsAfterTheBrokerClosesIt: the broker closes the
// connection (as rabbitmqctl close_connection, or a node going down, does);
// the Conn says so, connects again, and publishing goes on.
func TestConnReconnectsAfterTheBrokerClosesIt(t *testing.T) {
	name := brokertest.ConnName(t, "reconnect")
	var mu sync.Mutex
	var states []broker.State
	changed := make(chan struct{}, 16)
	conn, err := broker.Dial(brokertest.Context(t, 30*time.Second), []string{brokertest.URL(t)},
		broker.WithName(name), broker.WithReconnectBackoff(50*time.Millisecond, time.Second),
		broker.WithObserver(broker.ObserverFuncs{OnConnection: func(c broker.StateChange) {
			mu.Lock()
			states = append(states, c.State)
			mu.Unlock()
			changed <- struct{}{}
		}}))
	if err != nil {
		t.Fatal(err)
	}
	exchange, queue := setup(t, nil)
	pub := newPublisher(t, conn)
	ctx := brokertest.Context(t, 30*time.Second)
	if err := pub.Publish(ctx, broker.Job{Type: "t", Payload: 1}, broker.To(exchange, "k")); err != nil {
		t.Fatal(err)
	}

	brokertest.CloseConnections(t, name)
	for range 2 {
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("states seen: %v", states)
		}
	}
	mu.Lock()
	got := append([]broker.State(nil), states...)
	mu.Unlock()
	if len(got) != 2 || got[0] != broker.Disconnected || got[1] != broker.Connected {
		t.Fatalf("states %v, want [disconnected connected]", got)
	}
	if conn.Reconnects() != 1 || conn.State() != broker.Connected || conn.Err() != nil {
		t.Errorf("after reconnection: reconnects %d, state %v, err %v", conn.Reconnects(), conn.State(), conn.Err())
	}
	if err := pub.Publish(ctx, broker.Job{Type: "t", Payload: 2}, broker.To(exchange, "k")); err != nil {
		t.Fatalf("publish after reconnection: %v", err)
	}
	if d := brokertest.Depth(t, queue); d != 2 {
		t.Errorf("queue holds %d jobs, want 2", d)
	}

	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if conn.State() != broker.Closed || !errors.Is(conn.Err(), broker.ErrClosed) {
		t.Errorf("after Close: state %v, err %v", conn.State(), conn.Err())
	}
	select {
	case <-conn.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if err := pub.Publish(ctx, broker.Job{Type: "t"}, broker.To(exchange, "k")); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("publish after Close: %v, want ErrClosed", err)
	}
}

// TestPublishWaitsForReconnection: publishing while the connection is
// down waits for the next one, within ctx, and every Publish that returned
// nil is in the queue.
func TestPublishWaitsForReconnection(t *testing.T) {
	name := brokertest.ConnName(t, "pubwait")
	conn, err := broker.Dial(brokertest.Context(t, 30*time.Second), []string{brokertest.URL(t)},
		broker.WithName(name), broker.WithReconnectBackoff(50*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	exchange, queue := setup(t, nil)
	pub := newPublisher(t, conn)
	ctx := brokertest.Context(t, 60*time.Second)

	const publishers, each = 8, 150
	var confirmed sync.Map
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				id, err := broker.NewJobID()
				if err == nil {
					err = pub.Publish(ctx, broker.Job{ID: id, Type: "t", Payload: 1}, broker.To(exchange, "k"))
				}
				if err != nil {
					errs <- err
					return
				}
				confirmed.Store(id, true)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	brokertest.CloseConnections(t, name)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Publish: %v", err)
	}
	got := map[string]int{}
	ch := brokertest.Channel(t)
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got[d.MessageId]++
	}
	lost, dups := 0, 0
	confirmed.Range(func(k, _ any) bool {
		if got[k.(string)] == 0 {
			lost++
		}
		return true
	})
	for _, n := range got {
		dups += n - 1
	}
	if lost != 0 {
		t.Errorf("%d confirmed jobs lost", lost)
	}
	if conn.Reconnects() < 1 {
		t.Errorf("no reconnection seen (reconnects %d): was the connection closed?", conn.Reconnects())
	}
	t.Logf("%d confirmed, %d in the queue, %d sent twice around the reconnection", publishers*each, len(got), dups)
}

// TestPublishWithEndedCtxAndSeveralURLs: a Conn given several URLs is on
// the first that answers (URL says which), and a Publish whose ctx has
// ended returns the ctx's error rather than wait.
func TestPublishWithEndedCtxAndSeveralURLs(t *testing.T) {
	name := brokertest.ConnName(t, "pubgiveup")
	conn, err := broker.Dial(brokertest.Context(t, 30*time.Second), []string{brokertest.URL(t), "amqp://guest:guest@127.0.0.1:1/"},
		broker.WithName(name), broker.WithReconnectBackoff(20*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if conn.URL() != broker.RedactURL(brokertest.URL(t)) {
		t.Errorf("URL %q", conn.URL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	pub := newPublisher(t, conn)
	err = pub.Publish(ctx, broker.Job{Type: "t"}, broker.To("", "nowhere"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish with an ended ctx: %v", err)
	}
}
