package main

import (
	"context"
	"fmt"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/worker"
)

// The passenger service authorises the payment for a ride, and releases
// the authorisation of a booking that failed, telling the rider why. It
// answers passenger.authorise, and its handler does not know or care how
// the sender gets the answer: the booking saga's coordinator, from its
// reply queue, or the trip service's nightly job, from trip.replies. The
// pool sends the reply.

// The passenger service's commands.
const (
	AuthoriseType = "passenger.authorise"
	ReleaseType   = "passenger.release"
)

// Authorise asks whether a rider may pay an amount.
type Authorise struct {
	Trip   string `msgpack:"trip,omitempty"` // none for the nightly re-authorisations
	Rider  string `msgpack:"rider"`
	Amount int    `msgpack:"amount"` // in cents
}

// Authorisation is the answer. A declined payment is an answer, not a
// failure: the sender gets it as a result, and nothing is dead-lettered.
// The booking saga's authorise step fails on it (OnReply).
type Authorisation struct {
	Approved bool   `msgpack:"approved"`
	Reason   string `msgpack:"reason,omitempty"` // why not, when declined
}

// Release undoes an authorisation: the booking failed after it, for
// Reason.
type Release struct {
	Trip   string `msgpack:"trip"`
	Ride   string `msgpack:"ride"`
	Rider  string `msgpack:"rider"`
	Amount int    `msgpack:"amount"`
	Reason string `msgpack:"reason"`
}

// limit is the most a ride may cost, in cents: the passenger service's
// rule, fixed so that every run ends the same way.
const limit = 200_00

// passengerMux is the passenger service's handler. seen, if not nil,
// hears of each release, by trip id.
func passengerMux(seen *expectations) *worker.Mux {
	mux := worker.NewMux()
	// TypedResult decodes the request and sends back what authorise
	// returns: the result, or the failure once the job has failed for good.
	mux.Handle(AuthoriseType, worker.TypedResult(authorise))
	// Releasing is idempotent: a hold released twice is released, and a
	// second text message does no harm.
	mux.Handle(ReleaseType, worker.TypedResult(func(ctx context.Context, job *worker.Job, r Release) (bool, error) {
		say("passenger", "release %s's hold of %s for ride %s; text %s: your booking failed, %s", r.Rider, money(r.Amount), r.Ride, r.Rider, r.Reason)
		if seen != nil {
			seen.arrived("passenger release " + r.Trip)
		}
		return true, nil
	}))
	return mux
}

func authorise(ctx context.Context, job *worker.Job, a Authorise) (Authorisation, error) {
	what := fmt.Sprintf("authorise %s %s", a.Rider, money(a.Amount))
	if job.ReplyTo != "" && !broker.IsCallerReplyTo(job.ReplyTo) {
		what += ", reply to " + job.ReplyTo // a durable reply queue
	}
	if a.Amount > limit {
		say("passenger", "%s: declined, over the %s limit", what, money(limit))
		return Authorisation{Reason: "over the " + money(limit) + " limit"}, nil
	}
	say("passenger", "%s: ok", what)
	return Authorisation{Approved: true}, nil
}

// money formats cents as 23.50.
func money(cents int) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }
