package broker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

// A producer schedules jobs with In or At. The broker holds them in the
// delay cascade the topology derives, so the producer may exit before they
// are due; each reaches the queues its route leads to (or the one named
// with ToQueue) when due, to the second.
func ExamplePublisher_Publish_scheduled() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-scheduler"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	// A small topology; its queue expires a minute after last use, after
	// the jobs below have reached it.
	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.scheduler: {type: direct, auto_delete: true}
queues:
  example.reminders: {type: classic, expires: 1m, dead_letter: false}
bindings:
  - {exchange: example.scheduler, queue: example.reminders, routing_key: reminder.send}
routes:
  reminder.send: {exchange: example.scheduler}
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

	// The topology is the publisher's router: it lists the queues of each
	// job type's route, where delayed jobs are delivered.
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close(ctx)

	type Reminder struct {
		User string `json:"user"`
	}
	err = pub.Publish(ctx, broker.Job{Type: "reminder.send", Payload: Reminder{User: "ada"}}, broker.In(2*time.Second))
	fmt.Println("scheduled in 2s:", err == nil)

	err = pub.Publish(ctx, broker.Job{Type: "reminder.send", Payload: Reminder{User: "grace"}},
		broker.At(time.Now().Add(3*time.Second)), broker.ToQueue("example.reminders"))
	fmt.Println("scheduled at a time, to a named queue:", err == nil)

	// A delay targets queues: To, which names an exchange, is refused.
	err = pub.Publish(ctx, broker.Job{Type: "reminder.send"}, broker.In(time.Minute), broker.To("example.scheduler", "reminder.send"))
	fmt.Println("To refused:", err != nil)

	// A negative delay is a mistake, not "now".
	err = pub.Publish(ctx, broker.Job{Type: "reminder.send"}, broker.In(-time.Minute))
	fmt.Println("negative delay refused:", errors.Is(err, broker.ErrInvalidOption))
	// Output:
	// scheduled in 2s: true
	// scheduled at a time, to a named queue: true
	// To refused: true
	// negative delay refused: true
}
