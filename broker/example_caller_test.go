package broker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// A service awaits another's answer: Call sends the request and waits for
// the reply over direct reply-to; a worker answers with TypedResult.
func ExampleCaller_Call() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-caller"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.rpc: {type: direct, auto_delete: true}
queues:
  example.rpc.riders: {type: classic, expires: 1m, dead_letter: false}
bindings:
  - {exchange: example.rpc, queue: example.rpc.riders, routing_key: passenger.authorise}
routes:
  passenger.authorise: {exchange: example.rpc}
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

	// The passenger service: answers, or refuses for good.
	type Authorise struct {
		Rider string `json:"rider"`
	}
	type Authorisation struct {
		Approved bool `json:"approved"`
	}
	mux := worker.NewMux()
	mux.Handle("passenger.authorise", worker.TypedResult(func(ctx context.Context, job *worker.Job, a Authorise) (Authorisation, error) {
		if a.Rider == "mallory" {
			return Authorisation{}, worker.Permanent(errors.New("rider is blocked"))
		}
		return Authorisation{Approved: true}, nil
	}))
	pool, err := worker.NewPool(conn, topo, mux)
	if err != nil {
		fmt.Println(err)
		return
	}
	poolCtx, stopPool := context.WithCancel(ctx)
	poolDone := make(chan error, 1)
	go func() { poolDone <- pool.Run(poolCtx) }()
	defer func() { stopPool(); <-poolDone }()

	// The trip service: awaits the answer, at most 5 seconds.
	caller, err := broker.NewCaller(conn, broker.WithCallRouter(topo))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer caller.Close(ctx)
	for _, rider := range []string{"ada", "mallory"} {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		reply, err := caller.Call(callCtx, broker.Job{Type: "passenger.authorise", Payload: Authorise{Rider: rider}})
		cancel()
		var re *broker.RemoteError
		switch {
		case errors.As(err, &re):
			fmt.Printf("%s: refused (%s): %s\n", rider, re.Class, re.Message)
		case err != nil:
			fmt.Printf("%s: %v\n", rider, err)
		default:
			var a Authorisation
			if err := reply.Decode(&a); err != nil {
				fmt.Println(err)
				return
			}
			fmt.Printf("%s: approved %v\n", rider, a.Approved)
		}
	}
	// Output:
	// ada: approved true
	// mallory: refused (permanent): rider is blocked
}

// Many concurrent callers in one process: replies come to an exclusive
// queue of the Caller's own rather than through direct reply-to.
func ExampleWithCallReplyQueue() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-reply-queue"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	caller, err := broker.NewCaller(conn, broker.WithCallReplyQueue())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer caller.Close(ctx)
	// Each Call is sent with reply_to naming the Caller's queue (amq.gen-…);
	// workers answer it as they answer direct reply-to.
	reply, err := caller.Call(ctx, broker.Job{Type: "passenger.authorise", Payload: map[string]string{"rider": "ada"}},
		broker.To("passengers", "passenger.authorise"))
	if err != nil {
		fmt.Println(err)
		return
	}
	var answer map[string]any
	if err := reply.Decode(&answer); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(answer)
}
