package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/worker"
)

// The billing service charges each booked trip once: billing.charge, the
// booking saga's third step. Commands come at least once — the
// coordinator's relay that dies mid-batch sends some again, and a
// billing worker that dies after charging but before its ack gets the
// command back — so billing consumes them through an inbox in its own
// database: the charge and the record that the command was processed are
// written in one transaction, and a command whose record exists is
// skipped, and answered with the first copy's receipt, which the inbox
// kept with its record. A declined card fails the command for good
// (worker.Permanent): it is dead-lettered in billing.dlq, and its
// failure reply makes the saga compensate.

// ChargeType is billing's command.
const ChargeType = "billing.charge"

// billingConsumer is billing's name in the inbox.
const billingConsumer = "billing"

// Charge asks billing to charge a rider's card for a trip.
type Charge struct {
	Trip   string `msgpack:"trip"`
	Ride   string `msgpack:"ride"`
	Rider  string `msgpack:"rider"`
	Amount int    `msgpack:"amount"` // in cents
}

// declinedCards are the riders whose card issuer declines every charge.
var declinedCards = map[string]string{"ken": "card expired"}

// chargedKey marks a ctx whose handler reports, through a *string, the
// trip it charged: middleware outside the inbox then knows that the
// charge has committed (the inbox has returned) and the command is not
// acked, nor replied to, yet.
type chargedKey struct{}

// billingMux is the billing service's handler: the inbox ib, around
// charge; outer middleware, if any, around the inbox. seen, if not nil,
// hears of each charge, by trip id.
func billingMux(ib *inbox.Inbox, seen *expectations, outer ...worker.Middleware) *worker.Mux {
	mux := worker.NewMux()
	mux.Use(append(outer, ib.Middleware)...)
	mux.Handle(ChargeType, worker.TypedResult(func(ctx context.Context, job *worker.Job, c Charge) (string, error) {
		if why, ok := declinedCards[c.Rider]; ok {
			say("billing", "ride %s: charge %s %s: declined, %s", c.Ride, c.Rider, money(c.Amount), why)
			return "", worker.Permanent(errors.New("card declined: " + why))
		}
		receipt, err := uuid.NewV7()
		if err != nil {
			return "", err
		}
		// The inbox's transaction: the charge commits with the record.
		if _, err := pginbox.Tx(ctx).Exec(ctx, "INSERT INTO charges (trip_id, rider, amount, receipt) VALUES ($1, $2, $3, $4)",
			c.Trip, c.Rider, c.Amount, receipt.String()); err != nil {
			return "", fmt.Errorf("charge trip %s: %w", c.Trip, err)
		}
		if charged, ok := ctx.Value(chargedKey{}).(*string); ok {
			*charged = c.Trip
		}
		say("billing", "ride %s: charge %s %s, receipt %s", c.Ride, c.Rider, money(c.Amount), receipt)
		if seen != nil {
			seen.arrived("billing " + c.Trip)
		}
		return receipt.String(), nil
	}))
	return mux
}
