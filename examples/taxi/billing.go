package main

import (
	"context"
	"fmt"

	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/worker"
)

// The billing service charges each booked trip once. trip.booked events
// come at least once — a relay that dies mid-batch sends some again, and
// a billing worker that dies after charging but before its ack gets the
// event back — so billing consumes them through an inbox in its own
// database: the charge and the record that the event was processed are
// written in one transaction, and an event whose record exists is
// skipped.

// billingConsumer is billing's name in the inbox.
const billingConsumer = "billing"

// chargedKey marks a ctx whose handler reports, through a *bool, that it
// charged: middleware outside the inbox then knows that the charge has
// committed (the inbox has returned) and the event is not acked yet.
type chargedKey struct{}

// billingMux is the billing service's handler: the inbox ib, around
// charge; outer middleware, if any, around the inbox. seen, if not nil,
// hears of each charge, by trip id. Unlike notifications and analytics,
// billing does not ignore the events of an earlier, interrupted run: a
// trip booked then is charged now, once.
func billingMux(ib *inbox.Inbox, seen *expectations, outer ...worker.Middleware) *worker.Mux {
	mux := worker.NewMux()
	mux.Use(append(outer, ib.Middleware)...)
	mux.Handle(TripBookedType, worker.Typed(func(ctx context.Context, job *worker.Job, e TripBooked) error {
		// The inbox's transaction: the charge commits with the record.
		if _, err := pginbox.Tx(ctx).Exec(ctx, "INSERT INTO charges (trip_id, rider, amount) VALUES ($1, $2, $3)", e.Trip, e.Rider, e.Amount); err != nil {
			return fmt.Errorf("charge trip %s: %w", e.Trip, err)
		}
		if charged, ok := ctx.Value(chargedKey{}).(*bool); ok {
			*charged = true
		}
		say("billing", "%s %s: charge %s %s", TripBookedType, e.Ride, e.Rider, money(e.Amount))
		if seen != nil {
			seen.arrived("billing " + e.Trip)
		}
		return nil
	}))
	return mux
}
