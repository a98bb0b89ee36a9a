package broker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/contract"
)

// A publisher that checks every payload against its contract: a job whose
// payload breaks it is refused, and nothing is published.
func ExampleWithValidator() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Usually contract.Load("topology.yaml"): the contracts the topology
	// file declares or includes.
	set, err := contract.Parse("contracts.yaml", []byte(`
version: 1
types:
  trip.book:
    versions:
      1:
        schema:
          type: object
          required: [rider]
          properties:
            rider: {type: string, minLength: 1}
            seats: {type: integer, minimum: 1, maximum: 8}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-validated-producer"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	pub, err := broker.NewPublisher(conn, broker.WithValidator(set))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close(ctx)

	job := broker.Job{ID: "trip-1", Type: "trip.book", Version: 1, Payload: map[string]any{"rider": "ann", "seats": 12}}
	err = pub.Publish(ctx, job, broker.ToQueue("example.trips"))
	fmt.Println(errors.Is(err, broker.ErrInvalidPayload), errors.Is(err, contract.ErrMismatch))
	fmt.Println(err)
	// Output:
	// true true
	// broker: publish job trip-1 (type "trip.book"): contract: the payload of trip.book v1 does not match its contract: /seats: maximum: got 12, want 8; fix the payload, or publish it as the version whose contract it follows
}
