package workflow_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
	"github.com/warrenmq/warren/workflow"
)

func exampleURL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return broker.DefaultURL
}

// A booking in three steps, each undone by a compensation when a later
// one fails for good: here the charge fails, so the driver is released,
// then the authorisation.
func ExampleNewChain() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-workflow"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.workflow: {type: topic, auto_delete: true}
queues:
  example.workflow.booking: {type: classic, expires: 1m, dead_letter: false}
bindings:
  - {exchange: example.workflow, queue: example.workflow.booking, routing_key: "#"}
routes:
  trip.authorise: {exchange: example.workflow}
  trip.release: {exchange: example.workflow}
  driver.reserve: {exchange: example.workflow}
  driver.release: {exchange: example.workflow}
  card.charge: {exchange: example.workflow}
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

	// The steps' handlers. Each result feeds the next step.
	var wg sync.WaitGroup
	wg.Add(5)
	mux := worker.NewMux()
	mux.HandleFunc("trip.authorise", func(ctx context.Context, job *worker.Job) error {
		defer wg.Done()
		var passenger string
		if err := job.Decode(&passenger); err != nil {
			return err
		}
		fmt.Println("authorised", passenger)
		job.SetResult("auth-1")
		return nil
	})
	mux.HandleFunc("driver.reserve", func(ctx context.Context, job *worker.Job) error {
		defer wg.Done()
		fmt.Println("reserved a driver")
		job.SetResult("driver-7")
		return nil
	})
	mux.HandleFunc("card.charge", func(ctx context.Context, job *worker.Job) error {
		defer wg.Done()
		fmt.Println("charge declined")
		return worker.Permanent(errors.New("card declined"))
	})
	// A compensation's payload is the result of the step it undoes.
	mux.HandleFunc("driver.release", func(ctx context.Context, job *worker.Job) error {
		defer wg.Done()
		var driver string
		if err := job.Decode(&driver); err != nil {
			return err
		}
		fmt.Printf("released %s (%s failed)\n", driver, workflow.Of(job).Failed.Type)
		return nil
	})
	mux.HandleFunc("trip.release", func(ctx context.Context, job *worker.Job) error {
		defer wg.Done()
		var auth string
		if err := job.Decode(&auth); err != nil {
			return err
		}
		fmt.Println("released", auth)
		return nil
	})
	pool, err := worker.NewPool(conn, topo, mux, worker.WithQueue("example.workflow.booking", worker.Concurrency(1)))
	if err != nil {
		fmt.Println(err)
		return
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- pool.Run(pctx) }()

	c, err := workflow.NewChain(
		workflow.Step{Type: "trip.authorise", Payload: "ada", Compensate: &workflow.Step{Type: "trip.release"}},
		workflow.Step{Type: "driver.reserve", Compensate: &workflow.Step{Type: "driver.release"}},
		workflow.Step{Type: "card.charge"},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close(ctx)
	if _, err := c.Publish(ctx, pub); err != nil {
		fmt.Println(err)
		return
	}
	wg.Wait()
	stop()
	if err := <-done; err != nil {
		fmt.Println(err)
	}
	// Output:
	// authorised ada
	// reserved a driver
	// charge declined
	// released driver-7 (card.charge failed)
	// released auth-1
}
