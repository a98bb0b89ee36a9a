package warrentest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/warrentest"
	"github.com/warrenmq/warren/worker"
)

// A test of a handler that fails twice, then succeeds: its two retries
// wait on the kit's virtual clock, so Drain returns at once. (The body of
// a test; examples/warrentest runs tests like it.)
func Example() {
	_ = func(t *testing.T) {
		topo, err := topology.Parse("topology.yaml", []byte(`
version: 1
exchanges: {jobs: {type: direct}}
queues: {emails: {type: quorum, delivery_limit: 20, retry: {max_attempts: 3, initial_interval: 1m}}}
bindings: [{exchange: jobs, queue: emails, routing_key: email.send}]
routes: {email.send: {exchange: jobs}}
`))
		if err != nil {
			t.Fatal(err)
		}
		kit := warrentest.New(t, topo)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := kit.Publisher().Publish(ctx, broker.Job{Type: "email.send", Payload: "ada@example.com"}); err != nil {
			t.Fatal(err)
		}
		mux := worker.NewMux()
		mux.HandleFunc("email.send", func(ctx context.Context, job *worker.Job) error {
			if job.Attempt < 3 {
				return errors.New("smtp: try again")
			}
			return nil
		})
		if err := kit.Drain(ctx, mux); err != nil {
			t.Fatal(err)
		}
		if dead := kit.DeadLettered("emails"); len(dead) != 0 {
			t.Fatalf("dead-lettered: %v", dead)
		}
	}
}
