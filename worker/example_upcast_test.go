package worker_test

import (
	"context"
	"fmt"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/worker"
)

// Version 2 of trip.book added the class of car. The consumer handles
// both: v1 jobs still in queues are converted to v2 and go to the same
// handler.
func ExampleUpcast() {
	type BookV1 struct {
		Rider string `json:"rider"`
	}
	type BookV2 struct {
		Rider string `json:"rider"`
		Class string `json:"class"`
	}
	v1ToV2 := func(v BookV1) (BookV2, error) {
		return BookV2{Rider: v.Rider, Class: "standard"}, nil
	}
	book := func(ctx context.Context, job *worker.Job, b BookV2) error {
		fmt.Printf("job of v%d: %s rides %s\n", max(job.Version, 1), b.Rider, b.Class)
		return nil
	}
	mux := worker.NewMux()
	mux.HandleVersion("trip.book", 1, worker.Upcast(v1ToV2, book))
	mux.HandleVersion("trip.book", 2, worker.Typed(book))

	// What a pool would hand the Mux.
	for _, j := range []struct {
		version int
		payload any
	}{
		{1, BookV1{Rider: "ann"}},
		{2, BookV2{Rider: "bea", Class: "van"}},
	} {
		body, err := broker.EncodePayload(j.payload)
		if err != nil {
			fmt.Println(err)
			return
		}
		job := &worker.Job{Type: "trip.book", Version: j.version, Envelope: &broker.Envelope{Type: "trip.book", Version: j.version, Body: body}}
		if err := mux.HandleJob(context.Background(), job); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// job of v1: ann rides standard
	// job of v2: bea rides van
}
