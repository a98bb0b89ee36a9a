package broker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

func exampleURL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return broker.DefaultURL
}

// A producer publishes by job type; the topology's routes say where each
// type goes. Publish returns nil only once the broker has the job.
func ExamplePublisher_Publish() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-producer"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	// A small topology; its queue expires a minute after last use.
	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.jobs: {type: direct, auto_delete: true}
queues:
  example.emails: {type: classic, expires: 1m, dead_letter: false}
bindings:
  - {exchange: example.jobs, queue: example.emails, routing_key: email.send}
routes:
  email.send: {exchange: example.jobs}
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

	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo), broker.WithAppID("signup-service"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close(ctx)

	type Email struct {
		To      string `json:"to"`
		Subject string `json:"subject"`
	}
	err = pub.Publish(ctx, broker.Job{Type: "email.send", Payload: Email{To: "ada@example.com", Subject: "Welcome"}})
	fmt.Println("confirmed:", err == nil)

	err = pub.Publish(ctx, broker.Job{Type: "sms.send"})
	fmt.Println("no route:", errors.Is(err, broker.ErrNoRoute))

	// A job's id is generated when empty. To know it (to record the job
	// before a worker can answer it), choose it first.
	id, err := broker.NewJobID()
	if err != nil {
		fmt.Println(err)
		return
	}
	err = pub.Publish(ctx, broker.Job{ID: id, Type: "email.send", Payload: Email{To: "grace@example.com"}})
	fmt.Println("confirmed with its id:", err == nil)
	// Output:
	// confirmed: true
	// no route: true
	// confirmed with its id: true
}
