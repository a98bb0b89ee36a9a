package worker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// A pool that checks every payload against its contract before the
// handler sees it: a payload that breaks it is dead-lettered at once,
// class "schema", with the fields at fault.
func ExampleWithValidator() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Usually contract.Load("topology.yaml"), whose Topology is the pool's.
	set, err := contract.Parse("contracts.yaml", []byte(`
version: 1
types:
  trip.book:
    versions:
      1:
        schema:
          type: object
          required: [rider]
          properties:
            rider: {type: string, minLength: 1}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	// No dead-letter queue, for the example: the refused job is dropped.
	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.validated.jobs: {type: direct, auto_delete: true}
queues:
  example.validated.trips: {type: classic, expires: 1m, dead_letter: false}
bindings:
  - {exchange: example.validated.jobs, queue: example.validated.trips, routing_key: trip.book}
routes:
  trip.book: {exchange: example.validated.jobs}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-validated-worker"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	d := broker.NewDeclarer(conn)
	defer d.Close(ctx)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		fmt.Println(err)
		return
	}
	// A producer that does not validate.
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close(ctx)

	runCtx, stop := context.WithCancel(ctx)
	mux := worker.NewMux()
	mux.HandleFunc("trip.book", func(ctx context.Context, job *worker.Job) error {
		fmt.Println("never called")
		return nil
	})
	pool, err := worker.NewPool(conn, topo, mux, worker.WithValidator(set),
		worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) {
			fmt.Printf("%s: class %s: %v\n", o.Status, o.Class, o.Err)
			stop() // the example ends after one job
		})))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := pub.Publish(ctx, broker.Job{Type: "trip.book", Version: 1, Payload: map[string]any{"rider": ""}}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("run:", pool.Run(runCtx))
	// Output:
	// rejected: class schema: worker: contract: the payload of trip.book v1 does not match its contract: /rider: minLength: got 0, want 1; fix the producer, or the contract, then replay the job from the dead-letter queue
	// run: <nil>
}
