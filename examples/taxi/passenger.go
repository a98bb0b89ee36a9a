package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/worker"
)

// The passenger service authorises the payment for a ride. It answers
// passenger.authorise requests, and its handler does not know or care how
// the caller gets the answer: waiting for it (Caller.Call), or later, from
// a durable reply queue named in the request. The pool sends the reply.

// AuthoriseType is the passenger service's request.
const AuthoriseType = "passenger.authorise"

// Authorise asks whether a rider may pay an amount.
type Authorise struct {
	Rider  string `msgpack:"rider"`
	Amount int    `msgpack:"amount"` // in cents
}

// Authorisation is the answer. A declined payment is an answer, not a
// failure: the caller gets it as a result, and nothing is dead-lettered.
type Authorisation struct {
	Approved bool   `msgpack:"approved"`
	Reason   string `msgpack:"reason,omitempty"` // why not, when declined
}

// The passenger service's rules, fixed so that every run ends the same way.
const limit = 200_00 // the most a ride may cost, in cents

var (
	// denied riders are refused outright: their requests fail for good
	// (worker.Permanent), the caller gets a *broker.RemoteError, and the
	// request is parked in passenger.dlq for someone to look at.
	denied = map[string]bool{"mallory": true}
	// slowIssuer riders have a card issuer that takes this long to answer.
	slowIssuer = map[string]time.Duration{"ken": 2 * time.Second}
)

// passengerMux is the passenger service's handler.
func passengerMux() *worker.Mux {
	mux := worker.NewMux()
	// TypedResult decodes the request and sends back what authorise
	// returns: the result, or the failure once the job has failed for good.
	mux.Handle(AuthoriseType, worker.TypedResult(authorise))
	return mux
}

func authorise(ctx context.Context, job *worker.Job, a Authorise) (Authorisation, error) {
	what := fmt.Sprintf("authorise %s %s", a.Rider, money(a.Amount))
	if job.ReplyTo != "" && !broker.IsCallerReplyTo(job.ReplyTo) {
		what += ", reply to " + job.ReplyTo // a durable reply queue
	}
	if denied[a.Rider] {
		say("passenger", "%s: refused, on the deny list", what)
		return Authorisation{}, worker.Permanent(errors.New("rider " + a.Rider + " is on the deny list"))
	}
	if d := slowIssuer[a.Rider]; d > 0 {
		// A handler returns when ctx ends (its timeout, or the shutdown
		// deadline); ctx does not end when the caller gives up.
		if err := sleep(ctx, d); err != nil {
			return Authorisation{}, err
		}
		what += fmt.Sprintf(" (the card issuer took %s)", d)
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

// sleep waits for d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
