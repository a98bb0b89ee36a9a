package broker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

// A caller that fails at once when no worker consumes the queue its
// request goes to (or its workers paused it, or their circuit breakers
// are open), instead of waiting for the reply until its deadline.
func ExampleWithConsumerCheck() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-consumer-check"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	// A queue nobody consumes.
	d := broker.NewDeclarer(conn)
	defer d.Close(ctx)
	const queue = "example.consumercheck.quotes"
	if err := d.DeclareQueue(ctx, topology.Queue{Name: queue, Durable: true, Args: topology.Table{"x-expires": 60000}}); err != nil {
		fmt.Println(err)
		return
	}
	defer d.DeleteQueue(ctx, queue, false)

	// The check's answer is kept for a second: one passive
	// queue.declare per queue and second, whatever the calls.
	caller, err := broker.NewCaller(conn, broker.WithConsumerCheck(time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer caller.Close(ctx)
	_, err = caller.Call(ctx, broker.Job{Type: "quote.get", Payload: "EURUSD"}, broker.ToQueue(queue))
	var ue *broker.UnavailableError
	switch {
	case errors.Is(err, broker.ErrQueuePaused):
		fmt.Println("paused; try later")
	case errors.Is(err, broker.ErrBreakerOpen):
		fmt.Println("its workers' dependency is down; try later")
	case errors.As(err, &ue):
		fmt.Println("no worker for", ue.Queue)
	case err != nil:
		fmt.Println(err)
	}
	// Output:
	// no worker for example.consumercheck.quotes
}
