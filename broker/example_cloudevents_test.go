package broker_test

import (
	"fmt"
	"log"
	"time"

	"github.com/warrenmq/warren/broker"
)

// A job marked with AsCloudEvent carries the CloudEvents binary-mode
// attributes, written from its own id, type and timestamp; CloudEventOf
// reads them back, as a handler or CloudEvents tooling would. (A
// Publisher takes AsCloudEvent per Publish, or WithCloudEvents for every
// job; package outbox takes it in outbox.Marks.)
func ExampleAsCloudEvent() {
	env, err := broker.NewEnvelope(broker.Job{
		ID:      "01a20cff-7d00-7c55-a1b2-3c4d5e6f7a04",
		Type:    "order.placed",
		Payload: map[string]any{"order_id": "o-1042"},
		Headers: map[string]any{"cloudEvents_tenant": "acme"}, // an extension attribute
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := broker.MarkEnvelope(env, broker.AsCloudEvent("/shop/orders", "o-1042")); err != nil {
		log.Fatal(err)
	}
	msg := env.Message()
	for _, name := range []string{"cloudEvents_specversion", "cloudEvents_id", "cloudEvents_type", "cloudEvents_source", "cloudEvents_subject"} {
		fmt.Printf("%-24s %v\n", name, msg.Headers[name])
	}
	fmt.Println("cloudEvents_time is the timestamp:", msg.Headers["cloudEvents_time"] == msg.Timestamp.Format(time.RFC3339))

	ce, ok := broker.CloudEventOf(env)
	fmt.Println(ok, ce.DataContentType, ce.Extensions["tenant"])
	// Output:
	// cloudEvents_specversion  1.0
	// cloudEvents_id           01a20cff-7d00-7c55-a1b2-3c4d5e6f7a04
	// cloudEvents_type         order.placed
	// cloudEvents_source       /shop/orders
	// cloudEvents_subject      o-1042
	// cloudEvents_time is the timestamp: true
	// true application/msgpack acme
}
