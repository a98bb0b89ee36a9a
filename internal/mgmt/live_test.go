package mgmt

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/topology"
)

// TestLiveAgainstBroker declares a few entities with arguments on the test
// broker and reads them back through the management API.
func TestLiveAgainstBroker(t *testing.T) {
	src, dst := brokertest.Name(t, "docs"), brokertest.Name(t, "all")
	quorum, classic := brokertest.Name(t, "pdfs"), brokertest.Name(t, "plain")
	brokertest.DeleteQueuesAtCleanup(t, quorum, classic)
	brokertest.DeleteExchangesAtCleanup(t, src, dst)

	ch := brokertest.Channel(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ch.ExchangeDeclare(src, "headers", true, false, false, false, amqp.Table{"alternate-exchange": dst}))
	must(ch.ExchangeDeclare(dst, "fanout", false, true, true, false, nil))
	qargs := amqp.Table{"x-queue-type": "quorum", "x-message-ttl": int64(60000), "x-delivery-limit": int32(5), "x-overflow": "reject-publish"}
	_, err := ch.QueueDeclare(quorum, true, false, false, false, qargs)
	must(err)
	_, err = ch.QueueDeclare(classic, true, false, false, false, nil)
	must(err)
	must(ch.QueueBind(quorum, "", src, false, amqp.Table{"x-match": "all", "format": "pdf", "pages": int64(3)}))
	must(ch.ExchangeBind(dst, "k", src, false, nil))

	c := newClient(t, brokertest.ManagementURL(t), "/")
	live, err := c.Live(brokertest.Context(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	find := func(name string, xs []topology.Exchange) *topology.Exchange {
		i := slices.IndexFunc(xs, func(x topology.Exchange) bool { return x.Name == name })
		if i < 0 {
			t.Fatalf("exchange %s not listed", name)
		}
		return &xs[i]
	}
	if diff := cmp.Diff(&topology.Exchange{Name: src, Kind: "headers", Durable: true, Args: topology.Table{"alternate-exchange": dst}},
		find(src, live.Exchanges)); diff != "" {
		t.Errorf("exchange (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&topology.Exchange{Name: dst, Kind: "fanout", AutoDelete: true, Internal: true, Args: topology.Table{}},
		find(dst, live.Exchanges)); diff != "" {
		t.Errorf("exchange (-want +got):\n%s", diff)
	}

	queue := func(name string) topology.Queue {
		i := slices.IndexFunc(live.Queues, func(q topology.Queue) bool { return q.Name == name })
		if i < 0 {
			t.Fatalf("queue %s not listed", name)
		}
		return live.Queues[i]
	}
	if diff := cmp.Diff(topology.Queue{Name: quorum, Type: "quorum", Durable: true,
		Args: topology.Table{"x-queue-type": "quorum", "x-message-ttl": int64(60000), "x-delivery-limit": int64(5), "x-overflow": "reject-publish"}},
		queue(quorum)); diff != "" {
		t.Errorf("quorum queue (-want +got):\n%s", diff)
	}
	if q := queue(classic); q.Type != "classic" || !q.Durable {
		t.Errorf("classic queue: %+v", q)
	}

	var got []topology.Binding
	for _, b := range live.Bindings {
		if b.Exchange == src {
			got = append(got, b)
		}
	}
	slices.SortFunc(got, func(a, b topology.Binding) int { return len(a.Queue) - len(b.Queue) })
	want := []topology.Binding{
		{Exchange: src, ToExchange: dst, RoutingKey: "k", Args: topology.Table{}},
		{Exchange: src, Queue: quorum, Args: topology.Table{"x-match": "all", "format": "pdf", "pages": int64(3)}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bindings (-want +got):\n%s", diff)
	}
}
