package main

import (
	"context"
	"fmt"
	"time"

	"github.com/warrenmq/warren/worker"
)

// Two services react to trip.booked, the event the booking saga's last
// step publishes: notifications and analytics, a choreography. Each
// consumes a queue of its own, bound to the fanout exchange taxi.events,
// so each gets a copy of every event, and a slow or failing one holds up
// none of the others: its copies wait, are retried or are dead-lettered
// in its own queue. A second text message or count does no harm here, so
// neither consumes through an inbox. Neither is part of the saga: the
// booking does not wait for them, and nothing they do is undone.
var subscribers = []struct {
	name  string // the service, and its queue
	react func(TripBooked) string
}{
	{"notifications", func(e TripBooked) string { return fmt.Sprintf("text %s: your taxi is on its way", e.Rider) }},
	{"analytics", func(e TripBooked) string { return "one more booking" }},
}

// subscriberMux is the handler of the subscriber name. Events published
// before since were left in its queue by an earlier run that was
// interrupted: it says so and drops them.
func subscriberMux(name string, react func(TripBooked) string, seen *expectations, since time.Time) *worker.Mux {
	since = since.Truncate(time.Second) // PublishedAt is in whole seconds
	mux := worker.NewMux()
	mux.Handle(TripBookedType, worker.Typed(func(ctx context.Context, job *worker.Job, e TripBooked) error {
		if job.PublishedAt.Before(since) {
			say(name, "%s %s: from an earlier run, ignored", TripBookedType, e.Ride)
			return nil
		}
		say(name, "%s %s: %s", TripBookedType, e.Ride, react(e))
		seen.arrived(name + " " + e.Ride)
		return nil
	}))
	return mux
}
