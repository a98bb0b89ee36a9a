package amqpmem_test

import (
	"context"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/amqpmem"
	"github.com/warrenmq/warren/internal/behaviour"
	"github.com/warrenmq/warren/topology"
)

// emulation is a Target on an amqpmem.Broker: its clock is virtual, and
// Await moves it to the next expiry whenever the condition waits.
type emulation struct{ b *amqpmem.Broker }

func (e emulation) Apply(t testing.TB, text string) *topology.Topology {
	t.Helper()
	topo, err := topology.Parse(t.Name()+".yaml", []byte(text))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	conn := e.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), behaviour.Timeout)
	defer cancel()
	d := broker.NewDeclarer(conn)
	defer d.Close(ctx)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		t.Fatalf("declare: %v", err)
	}
	return topo
}

func (e emulation) Dial(t testing.TB) *broker.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), behaviour.Timeout)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{"amqp://guest:guest@amqpmem/"}, broker.WithDialer(e.b.Dial), broker.WithName("behaviour"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func (e emulation) Pass(t testing.TB, d time.Duration) { e.b.Advance(d) }

func (e emulation) Await(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(behaviour.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", behaviour.Timeout, what)
		}
		// Give the clients a moment (cond's own frames count as changes
		// of the broker, so Changed cannot tell when they are done), then
		// let the broker's time run to what it holds next.
		time.Sleep(5 * time.Millisecond)
		if cond() {
			return
		}
		if at, ok := e.b.NextExpiry(); ok {
			e.b.Advance(max(at.Sub(e.b.Now()), 0))
		}
	}
}

// The shared behaviour suite, against the emulation: the same scenarios
// run against RabbitMQ in internal/behaviour.
func TestBehaviour(t *testing.T) {
	b := amqpmem.New()
	t.Cleanup(func() { b.Close() })
	behaviour.Run(t, emulation{b})
}
