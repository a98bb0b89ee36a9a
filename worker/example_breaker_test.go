package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// breakerStates records the changes of a pool's breakers: a
// worker.BreakerObserver (and an Observer that ignores jobs, as
// WithObserver takes Observers).
type breakerStates struct {
	worker.OutcomeFunc
	mu     sync.Mutex
	states []string
	closed func()
}

func (b *breakerStates) BreakerChanged(queue string, s worker.BreakerState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.states = append(b.states, s.String())
	if s == worker.BreakerClosed {
		b.closed()
	}
}

// A pool whose payment jobs depend on an external API. When half the jobs
// of the last minute fail (at least 20 of them), or a handler knows the
// API is down and returns worker.TripBreaker, the pool stops taking jobs
// from the queue: they wait in the broker, not in retries. After the
// cool-down one trial job runs; when it succeeds, the pool consumes the
// queue as before.
func ExampleTripBreaker() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-breaker"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.breaker.jobs: {type: direct, auto_delete: true}
queues:
  example.breaker.payments: {type: classic, expires: 1m}
bindings:
  - {exchange: example.breaker.jobs, queue: example.breaker.payments, routing_keys: [payment.charge]}
routes:
  payment.charge: {exchange: example.breaker.jobs}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	d := broker.NewDeclarer(conn)
	defer d.Close(ctx)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		fmt.Println(err)
		return
	}
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close(ctx)
	if err := pub.Publish(ctx, broker.Job{Type: "payment.charge", Payload: "order 1"}); err != nil {
		fmt.Println(err)
		return
	}

	runCtx, stop := context.WithCancel(ctx)
	apiDown := true
	mux := worker.NewMux()
	mux.Handle("payment.charge", worker.Typed(func(ctx context.Context, job *worker.Job, order string) error {
		if apiDown {
			apiDown = false // it comes back during the cool-down
			fmt.Println("payments API down")
			return worker.TripBreaker(errors.New("payments API: 503"))
		}
		fmt.Println("charged", order)
		return nil
	}))
	states := &breakerStates{OutcomeFunc: func(worker.Outcome) {}, closed: stop}
	pool, err := worker.NewPool(conn, topo, mux,
		worker.WithQueue("example.breaker.payments", worker.Concurrency(1), worker.Breaker(worker.BreakerPolicy{
			Window:       time.Minute,
			MinJobs:      20,
			FailureRatio: 0.5,
			CoolDown:     200 * time.Millisecond, // 30s or more in production
			HalfOpenJobs: 1,
		})),
		worker.WithObserver(states))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("run:", pool.Run(runCtx))
	fmt.Println("breaker:", strings.Join(states.states, ", "))
	// Output:
	// payments API down
	// charged order 1
	// run: <nil>
	// breaker: open, half-open, closed
}
