package broker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

// A Sender passes along a job that already exists, as a worker pool parks
// a failed job in its dead-letter queue: the envelope goes as it is, to
// the exchange and routing key named, and the kind of publish is said
// for the Conn's observers (metrics count it as a dead letter, not a new
// job).
func ExampleSender_Publish() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	kinds := make(chan broker.PublishKind, 1)
	watch := broker.ObserverFuncs{OnPublish: func(ctx context.Context, info broker.PublishInfo, env *broker.Envelope) (context.Context, func(error)) {
		kinds <- info.Kind
		return ctx, nil
	}}
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-sender"), broker.WithObserver(watch))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	topo, err := topology.Parse("example.yaml", []byte(`
queues:
  example.sender.parked: {type: classic, expires: 1m, dead_letter: false}
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

	snd, err := broker.NewSender(conn)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer snd.Close(ctx)

	// The job as a worker holds it after its last attempt failed.
	env, err := broker.NewEnvelope(broker.Job{Type: "email.send"})
	if err != nil {
		fmt.Println(err)
		return
	}
	env.Attempt = 5
	env.Failure = &broker.Failure{Error: "smtp: connection refused", Class: "error", FailedAt: time.Now()}

	err = snd.Publish(ctx, broker.KindDeadLetter, env, "", "example.sender.parked")
	fmt.Println("parked:", err == nil, "as", <-kinds)
	// Output:
	// parked: true as dead_letter
}
