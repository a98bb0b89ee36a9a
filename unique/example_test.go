package unique_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/unique"
	"github.com/warrenmq/warren/worker"
)

func exampleURL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return broker.DefaultURL
}

// A monthly report is queued once: a second request while the first is
// pending is refused, and accepted again once a worker has made the
// report (the Releaser releases the key).
func ExamplePublisher() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-unique"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.unique.jobs: {type: direct, auto_delete: true}
queues:
  example.unique.reports: {type: classic, expires: 1m}
bindings:
  - {exchange: example.unique.jobs, queue: example.unique.reports, routing_key: report}
routes:
  report: {exchange: example.unique.jobs}
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

	store := unique.NewMemory() // pgunique.New(db) or redisunique.New(client) across processes
	up, err := unique.NewPublisher(pub, store)
	if err != nil {
		fmt.Println(err)
		return
	}
	report := broker.Job{Type: "report", Payload: "acme 2026-12"}
	const key = "report:acme:2026-12"
	fmt.Println("first:", up.Publish(ctx, report, key, time.Hour))
	err = up.Publish(ctx, report, key, time.Hour)
	fmt.Println("second is a duplicate:", errors.Is(err, unique.ErrDuplicate))

	// The worker releases the key once the report is made.
	rel, err := unique.NewReleaser(store)
	if err != nil {
		fmt.Println(err)
		return
	}
	made := make(chan struct{}, 1)
	pool, err := worker.NewPool(conn, topo, worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error { return nil }),
		worker.WithObserver(rel),
		worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) { made <- struct{}{} })))
	if err != nil {
		fmt.Println(err)
		return
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- pool.Run(runCtx) }()
	<-made
	stop()
	if err := <-ran; err != nil {
		fmt.Println(err)
	}
	fmt.Println("after the report:", up.Publish(ctx, report, key, time.Hour))
	// Output:
	// first: <nil>
	// second is a duplicate: true
	// after the report: <nil>
}
