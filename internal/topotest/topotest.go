package topotest

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/topology"
)

// Apply parses the topology file text (whose names should come from
// brokertest.Name, so tests do not collide), declares it on the test
// broker and, at cleanup, deletes its queues (the derived dead-letter
// queues included) and exchanges. The delay cascade and the dead-letter
// exchange, shared by every topology of the vhost, are left in place.
func Apply(t testing.TB, text string) *topology.Topology {
	t.Helper()
	topo, err := topology.Parse(t.Name()+".yaml", []byte(text))
	if err != nil {
		t.Fatalf("topotest: parse: %v", err)
	}
	var queues, exchanges []string
	for _, q := range topo.Queues {
		if !strings.HasPrefix(q.Name, topology.ReservedPrefix) {
			queues = append(queues, q.Name)
		}
	}
	for _, x := range topo.Exchanges {
		if !strings.HasPrefix(x.Name, topology.ReservedPrefix) {
			exchanges = append(exchanges, x.Name)
		}
	}
	brokertest.DeleteQueuesAtCleanup(t, queues...)
	brokertest.DeleteExchangesAtCleanup(t, exchanges...)

	ctx := brokertest.Context(t, 60*time.Second)
	conn, err := broker.Dial(ctx, []string{brokertest.URL(t)}, broker.WithName("warren-test-declare"))
	if err != nil {
		t.Fatalf("topotest: %v", err)
	}
	defer conn.Close()
	d := broker.NewDeclarer(conn)
	defer d.Close(ctx)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		t.Fatalf("topotest: declare: %v", err)
	}
	return topo
}
