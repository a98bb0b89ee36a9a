package inbox_test

import (
	"context"
	"fmt"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/worker"
)

// A job delivered twice (a worker died before its ack) is handled once:
// the inbox skips the second copy, which the pool then acks.
func ExampleInbox_Middleware() {
	ib, err := inbox.New(inbox.NewMemory(), "billing.charge")
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := worker.NewMux()
	mux.Use(ib.Middleware)
	mux.HandleFunc("charge", func(ctx context.Context, job *worker.Job) error {
		fmt.Println("charged for job", job.ID)
		return nil
	})

	job := &worker.Job{ID: "order-42", Type: "charge", Envelope: &broker.Envelope{ID: "order-42", Type: "charge"}}
	for range 2 { // the same job, delivered twice
		if err := mux.HandleJob(context.Background(), job); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("skipped:", ib.Skipped())
	// Output:
	// charged for job order-42
	// skipped: 1
}
