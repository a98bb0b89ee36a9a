package worker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// A pool that sends at most 5 text messages a second from its queue, and
// at most 100 a minute of the type "sms.bulk" whatever queue they come
// from. Jobs held back wait unacked in the pool's prefetch, then in the
// broker; none is retried or dead-lettered for it. With several workers,
// worker.GlobalRateLimit(5, time.Second) shares the 5 among them instead.
func ExampleRateLimit() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-ratelimit"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.ratelimit.jobs: {type: direct, auto_delete: true}
queues:
  example.ratelimit.sms: {type: classic, expires: 1m}
bindings:
  - {exchange: example.ratelimit.jobs, queue: example.ratelimit.sms, routing_keys: [sms.send, sms.bulk]}
routes:
  sms.send: {exchange: example.ratelimit.jobs}
  sms.bulk: {exchange: example.ratelimit.jobs}
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
	for i := 1; i <= 3; i++ {
		if err := pub.Publish(ctx, broker.Job{Type: "sms.send", Payload: i}); err != nil {
			fmt.Println(err)
			return
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	sent := 0
	mux := worker.NewMux()
	mux.Handle("sms.send", worker.Typed(func(ctx context.Context, job *worker.Job, n int) error {
		fmt.Println("sending text", n)
		if sent++; sent == 3 {
			stop()
		}
		return nil
	}))
	pool, err := worker.NewPool(conn, topo, mux,
		worker.WithQueue("example.ratelimit.sms", worker.Concurrency(1), worker.RateLimit(5, time.Second)),
		worker.TypeRateLimit("sms.bulk", 100, time.Minute))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("run:", pool.Run(runCtx))
	// Output:
	// sending text 1
	// sending text 2
	// sending text 3
	// run: <nil>
}
