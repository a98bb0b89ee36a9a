package tracing_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/worker"
)

// TestChoreographyOneTraceOneCorrelation follows a flow of domain events
// between three services through a topic exchange, each subscriber with
// its queue: the trip service publishes trip.booked; billing and notify
// each get it on their own queue; billing publishes payment.charged, which
// notify gets too. The handlers only pass their ctx on. Every job carries
// the correlation id the flow started with, and every span is in the
// trace the flow started in, each the child of what led to it.
func TestChoreographyOneTraceOneCorrelation(t *testing.T) {
	tp, exp, tr := newProvider(t)
	events := brokertest.Name(t, "events")
	billing, notify := brokertest.Name(t, "billing"), brokertest.Name(t, "notify")
	topo := topotest.Apply(t, fmt.Sprintf(`version: 1
exchanges:
  %[1]s: {type: topic}
queues:
  %[2]s: {type: classic}
  %[3]s: {type: classic}
bindings:
  - {exchange: %[1]s, queue: %[2]s, routing_key: "trip.booked"}
  - {exchange: %[1]s, queue: %[3]s, routing_keys: ["trip.*", "payment.#"]}
routes:
  trip.booked: {exchange: %[1]s}
  payment.charged: {exchange: %[1]s}
`, events, billing, notify))
	dial := func(name string) *broker.Conn { return testkit.Dial(t, name, broker.WithObserver(tr)) }

	type seen struct{ Service, Type, Correlation string }
	var mu sync.Mutex
	var got []seen
	var wg sync.WaitGroup
	wg.Add(3)
	record := func(service string, job *worker.Job) {
		mu.Lock()
		got = append(got, seen{service, job.Type, job.CorrelationID})
		mu.Unlock()
		wg.Done()
	}

	// Billing: charges a booked trip, and says so.
	billingPub, err := broker.NewPublisher(dial("choreography-billing-publish"), broker.WithRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	defer billingPub.Close(context.Background())
	billingMux := worker.NewMux()
	billingMux.HandleFunc("trip.booked", func(ctx context.Context, job *worker.Job) error {
		defer record("billing", job)
		return billingPub.Publish(ctx, broker.Job{Type: "payment.charged", Payload: "42 EUR"})
	})
	// Notify: tells the passenger of both.
	notifyMux := worker.NewMux()
	for _, ty := range []string{"trip.booked", "payment.charged"} {
		notifyMux.HandleFunc(ty, func(ctx context.Context, job *worker.Job) error {
			record("notify", job)
			return nil
		})
	}
	var stops []func()
	for _, svc := range []struct {
		queue string
		mux   *worker.Mux
	}{{billing, billingMux}, {notify, notifyMux}} {
		pool, err := worker.NewPool(dial("choreography-"+svc.queue), topo, svc.mux, worker.WithQueue(svc.queue))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- pool.Run(ctx) }()
		stops = append(stops, func() {
			cancel()
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}

	// The trip service: a request comes in, with its id; the trip is
	// booked and the event published.
	tripPub, err := broker.NewPublisher(dial("choreography-trips"), broker.WithRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	defer tripPub.Close(context.Background())
	ctx, root := tp.Tracer("test").Start(brokertest.Context(t, 30*time.Second), "POST /trips")
	ctx = broker.ContextWithCorrelationID(ctx, "req-42")
	if err := tripPub.Publish(ctx, broker.Job{Type: "trip.booked", Payload: "trip-1"}); err != nil {
		t.Fatal(err)
	}
	root.End()
	testkit.WaitDone(t, &wg, 30*time.Second, "the flow's three jobs")
	for _, stop := range stops {
		stop()
	}

	mu.Lock()
	sort.Slice(got, func(i, j int) bool { return got[i].Service+got[i].Type < got[j].Service+got[j].Type })
	want := []seen{{"billing", "trip.booked", "req-42"}, {"notify", "payment.charged", "req-42"}, {"notify", "trip.booked", "req-42"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jobs handled (-want +got):\n%s", diff)
	}
	mu.Unlock()

	wantTree := []string{
		"POST /trips (internal) <- (root)",
		"process " + billing + "#1 (consumer) <- publish " + events,
		"process " + notify + "#1 (consumer) <- publish " + events,
		"process " + notify + "#1 (consumer) <- publish " + events,
		"publish " + events + " (producer) <- POST /trips",
		"publish " + events + " (producer) <- process " + billing + "#1",
	}
	if diff := cmp.Diff(wantTree, tree(t, exp.GetSpans())); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}
