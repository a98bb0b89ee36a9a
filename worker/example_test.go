package worker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

func exampleURL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return broker.DefaultURL
}

// A worker daemon: handlers registered by job type on a Mux, a pool
// consuming the topology's queue until its ctx ends.
func ExamplePool() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Separate connections for consuming and for publishing retries and
	// dead letters.
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-worker"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	pubConn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-worker-publisher"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pubConn.Close()

	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.worker.jobs: {type: direct, auto_delete: true}
queues:
  example.worker.emails: {type: classic, expires: 1m}
bindings:
  - {exchange: example.worker.jobs, queue: example.worker.emails, routing_key: email.send}
routes:
  email.send: {exchange: example.worker.jobs}
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
	pub, err := broker.NewPublisher(pubConn, broker.WithRouter(topo))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close(ctx)
	// Retries, dead letters and replies go out through a Sender.
	snd, err := broker.NewSender(pubConn)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer snd.Close(ctx)

	type Email struct {
		To string `json:"to"`
	}
	runCtx, stop := context.WithCancel(ctx)
	mux := worker.NewMux()
	mux.Handle("email.send", worker.Typed(func(ctx context.Context, job *worker.Job, e Email) error {
		fmt.Printf("sending to %s (attempt %d of %d)\n", e.To, job.Attempt, job.MaxAttempts)
		stop() // the example ends after one job
		return nil
	}))
	pool, err := worker.NewPool(conn, topo, mux,
		worker.WithQueue("example.worker.emails", worker.Concurrency(4)),
		worker.WithSender(snd))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := pub.Publish(ctx, broker.Job{Type: "email.send", Payload: Email{To: "ada@example.com"}}); err != nil {
		fmt.Println(err)
		return
	}
	// Run returns once runCtx ends and the pool has shut down cleanly.
	fmt.Println("run:", pool.Run(runCtx))
	// Output:
	// sending to ada@example.com (attempt 1 of 5)
	// run: <nil>
}

// Queues names what a pool consumes, as it was built: every work queue of
// the topology, or those named by WithQueue. A test harness or a status
// page reads it rather than guessing from the consumers the broker shows,
// which come and go with the connection.
func ExamplePool_Queues() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-worker-queues"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.queues.jobs: {type: direct}
queues:
  example.queues.emails: {type: classic}
  example.queues.reports: {type: classic}
bindings:
  - {exchange: example.queues.jobs, queue: example.queues.emails, routing_key: email.send}
  - {exchange: example.queues.jobs, queue: example.queues.reports, routing_key: report.render}
routes:
  email.send: {exchange: example.queues.jobs}
  report.render: {exchange: example.queues.jobs}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := worker.NewMux()
	all, err := worker.NewPool(conn, topo, mux)
	if err != nil {
		fmt.Println(err)
		return
	}
	reports, err := worker.NewPool(conn, topo, mux, worker.WithQueue("example.queues.reports"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(all.Queues())
	fmt.Println(reports.Queues())
	// Output:
	// [example.queues.emails example.queues.reports]
	// [example.queues.reports]
}

// Middleware wraps every handler of a Mux, e.g. to log or time jobs.
func ExampleMux_Use() {
	mux := worker.NewMux()
	mux.Use(func(next worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
			err := next.HandleJob(ctx, job)
			fmt.Printf("%s %s: %v\n", job.Type, job.ID, err)
			return err
		})
	})
	mux.HandleFunc("report.render", func(ctx context.Context, job *worker.Job) error { return nil })

	mux.HandleJob(context.Background(), &worker.Job{ID: "j1", Type: "report.render"})
	err := mux.HandleJob(context.Background(), &worker.Job{ID: "j2", Type: "sms.send", Queue: "default"})
	fmt.Println(errors.Is(err, worker.ErrUnknownType))
	// Output:
	// report.render j1: <nil>
	// sms.send j2: worker: no handler for the job type "sms.send" (queue "default"); register one, then replay the job from the dead-letter queue
	// true
}

// A handler says that retrying cannot help by wrapping its error with
// Permanent: the job goes to the dead-letter queue at once. RetryAfter
// chooses the delay of the next attempt.
func ExamplePermanent() {
	type Charge struct {
		Account string `json:"account"`
		Cents   int64  `json:"cents"`
	}
	errRateLimited := errors.New("payment API: 429 too many requests")
	h := worker.Typed(func(ctx context.Context, job *worker.Job, c Charge) error {
		switch {
		case c.Cents <= 0:
			return worker.Permanent(fmt.Errorf("charge of %d cents: amount must be positive", c.Cents))
		case c.Account == "busy":
			return worker.RetryAfter(30*time.Second, errRateLimited)
		}
		return nil
	})
	_ = h
	err := worker.Permanent(errors.New("amount must be positive"))
	fmt.Println(errors.Is(err, worker.ErrPermanent), err)
	// Output: true amount must be positive
}
