package topology_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/topology"
)

func ExampleParse() {
	file := `
exchanges:
  jobs: {type: direkt}
queues:
  emails:
    type: quorum
    max_priority: 5
    retry: {max_attempts: 0}
bindings:
  - {exchange: job, queue: emails, routing_key: email.send}
`
	_, err := topology.Parse("topology.yaml", []byte(file))
	var problems topology.Problems
	if errors.As(err, &problems) {
		fmt.Println(problems)
	}
	// Output:
	// topology.yaml:3:16: type "direkt" is not one of direct, fanout, topic, headers
	// 	hint: did you mean "direct"?
	// topology.yaml:7:19: max_priority is for classic queues only, and queue "emails" is quorum
	// 	hint: remove max_priority, or make the queue classic (type: classic)
	// topology.yaml:8:27: max_attempts must be at least 1, not 0
	// topology.yaml:10:16: exchange "job" is not declared
	// 	hint: did you mean "jobs"?
}

func ExampleParse_resolved() {
	file := `
exchanges:
  jobs: {type: direct}
queues:
  emails:
    retry: {max_attempts: 3}
bindings:
  - {exchange: jobs, queue: emails, routing_key: email.send}
routes:
  email.send: {exchange: jobs}
`
	t, err := topology.Parse("topology.yaml", []byte(file))
	if err != nil {
		fmt.Println(err)
		return
	}
	exchange, key, _ := t.Route("email.send")
	fmt.Println("publish email.send to", exchange, "with key", key)
	q, _ := t.Queue("emails")
	fmt.Println("emails:", q.Type, "dead letters to", q.DeadLetterQueue)
	fmt.Printf("retry: %+v\n", t.RetryPolicy("emails", "email.send"))
	// Output:
	// publish email.send to jobs with key email.send
	// emails: quorum dead letters to emails.dlq
	// retry: {MaxAttempts:3 InitialInterval:1s MaxInterval:1h0m0s Multiplier:2 Jitter:0.2}
}

func ExampleDelayRoute() {
	exchange, key, err := topology.DelayRoute("emails", 5*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(exchange)
	fmt.Println(key)

	// Sub-second delays round up to a whole second.
	exchange, _, _ = topology.DelayRoute("emails", 1500*time.Millisecond)
	fmt.Println(exchange)
	// Output:
	// warren.delay.02
	// 0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.1.emails
	// warren.delay.01
}

// printer is a Declarer that only prints; broker.Declarer is the real one.
type printer struct{}

func (printer) ExchangeExists(context.Context, string) (bool, error) { return false, nil }
func (printer) QueueExists(context.Context, string) (bool, error)    { return false, nil }
func (printer) DeclareExchange(context.Context, topology.Exchange) error {
	return nil
}
func (printer) DeclareQueue(context.Context, topology.Queue) error { return nil }
func (printer) Bind(context.Context, topology.Binding) error       { return nil }

func ExampleDeclare() {
	t, err := topology.Parse("topology.yaml", []byte(`
exchanges: {jobs: {type: direct}}
queues: {emails: }
bindings: [{exchange: jobs, queue: emails, routing_key: email.send}]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	report, err := topology.Declare(context.Background(), printer{}, t)
	if err != nil {
		fmt.Println(err)
	}
	fmt.Println(report)
	// Output:
	// exchanges: 32 created, 0 existed
	// queues:    32 created, 0 existed
	// bindings:  60 bound
}
