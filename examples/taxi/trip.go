package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// The trip service books rides. For each booking it asks the passenger
// service to authorise the payment and waits for the answer with
// Caller.Call, as the rider's app is waiting too; then it books the trip
// in its own table, trips, and announces it with a trip.booked event
// written into its outbox in the same transaction (bookTrip): the event
// is published, by the outbox's relay, if and only if the trip is booked. Once a night it re-authorises the
// monthly passes: nobody waits for those answers, which go to the
// service's durable reply queue, trip.replies, and are read from there by
// a pool, however late they come, even after a restart.

// TripBookedType is the event the trip service publishes for a booked ride.
const TripBookedType = "trip.booked"

// TripBooked is its payload.
type TripBooked struct {
	Trip   string `msgpack:"trip"` // the trip's id in the trips table
	Ride   string `msgpack:"ride"`
	Rider  string `msgpack:"rider"`
	Amount int    `msgpack:"amount"` // in cents
}

// replyQueue is the trip service's durable reply queue.
const replyQueue = "trip.replies"

// callTimeout is how long the rider's app waits for an authorisation.
const callTimeout = 5 * time.Second

type booking struct {
	ride, rider string
	amount      int           // in cents
	wait        time.Duration // how long the rider's app waits for the answer
}

// bookings are the scenario; the passenger service's rules
// (passenger.go) decide what becomes of each.
var bookings = []booking{
	{"r-1", "ada", 23_50, callTimeout},
	{"r-2", "grace", 41_00, callTimeout},
	{"r-3", "mallory", 12_00, callTimeout}, // on the deny list: refused
	{"r-4", "linus", 480_00, callTimeout},  // over the limit: declined
	{"r-5", "ken", 18_00, time.Second},     // his card issuer is slower than his app's patience
}

// nightly is the monthly pass re-authorised tonight.
var nightly = Authorise{Rider: "ada", Amount: 60_00}

type trip struct {
	caller *broker.Caller
	pub    *broker.Publisher
	db     *pgxpool.Pool
	topo   *topology.Topology
	seen   *expectations

	// sent holds the requests whose replies go to trip.replies, by
	// correlation id (the request's id). It stands in for the service's
	// database: a reply may come after a restart.
	mu   sync.Mutex
	sent map[string]Authorise
}

// newTrip returns the trip service on conn, booking trips in db. The
// caller, the publisher and the outbox route by job type with the
// topology's routes.
func newTrip(conn *broker.Conn, db *pgxpool.Pool, topo *topology.Topology, seen *expectations) (*trip, error) {
	caller, err := broker.NewCaller(conn, broker.WithCallRouter(topo), broker.WithCallAppID("trip"))
	if err != nil {
		return nil, err
	}
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo), broker.WithAppID("trip"))
	if err != nil {
		caller.Close(context.Background())
		return nil, err
	}
	return &trip{caller: caller, pub: pub, db: db, topo: topo, seen: seen, sent: make(map[string]Authorise)}, nil
}

// close closes the caller, and the publisher once its jobs are confirmed.
func (t *trip) close(ctx context.Context) error {
	return errors.Join(t.caller.Close(ctx), t.pub.Close(ctx))
}

// run books the rides and sends the nightly request. It returns the trips
// booked, whose events the subscribers should receive.
func (t *trip) run(ctx context.Context) ([]TripBooked, error) {
	var booked []TripBooked
	timedOut := 0
	for _, b := range bookings {
		outcome, e, err := t.book(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("ride %s: %w", b.ride, err)
		}
		switch outcome {
		case "booked":
			booked = append(booked, e)
		case "timed out":
			timedOut++
		}
	}
	if err := t.reauthorise(ctx, nightly); err != nil {
		return nil, err
	}
	return booked, t.awaitLateReplies(ctx, timedOut)
}

// book asks the passenger service to authorise the ride and waits for the
// answer, for b.wait at most; then it books the trip. It returns what
// became of it: "booked" (with the event), "declined", "refused" or
// "timed out".
func (t *trip) book(ctx context.Context, b booking) (string, TripBooked, error) {
	callCtx, cancel := context.WithTimeout(ctx, b.wait)
	defer cancel()
	reply, err := t.caller.Call(callCtx, broker.Job{Type: AuthoriseType, Payload: Authorise{Rider: b.rider, Amount: b.amount}})
	var refused *broker.RemoteError
	switch {
	case errors.As(err, &refused):
		// The request failed for good in the passenger service, which
		// parked it in its dead-letter queue.
		say("trip", "ride %s for %s: refused (class %s): %s; the request is in passenger.dlq", b.ride, b.rider, refused.Class, refused.Message)
		return "refused", TripBooked{}, nil
	case errors.Is(err, broker.ErrReplyTimeout):
		// No answer in time. If no worker had started the request, none
		// will (it carries the deadline); this one had, so its reply
		// comes late and the caller discards it.
		say("trip", "ride %s for %s: no answer within %s, not booked", b.ride, b.rider, b.wait)
		return "timed out", TripBooked{}, nil
	case err != nil:
		return "", TripBooked{}, err
	}
	var a Authorisation
	if err := reply.Decode(&a); err != nil {
		return "", TripBooked{}, err
	}
	if !a.Approved {
		say("trip", "ride %s for %s: declined, %s", b.ride, b.rider, a.Reason)
		return "declined", TripBooked{}, nil
	}

	id, err := broker.NewJobID()
	if err != nil {
		return "", TripBooked{}, err
	}
	e := TripBooked{Trip: id, Ride: b.ride, Rider: b.rider, Amount: b.amount}
	if err := bookTrip(ctx, t.db, t.topo, e); err != nil {
		return "", TripBooked{}, err
	}
	say("trip", "ride %s for %s: authorised, booked as trip %s; trip.booked in the outbox", b.ride, b.rider, id)
	return "booked", e, nil
}

// bookTrip inserts the trip e into the trips table and writes its
// trip.booked event into the outbox, in one transaction: both commit, or
// neither. The outbox's relay publishes the event after the commit, to
// the fanout exchange, which copies it to every subscriber's queue. The
// event's job id is the trip's id, so every copy of it, however many the
// relay sends, is the same event to the subscribers' inboxes.
func bookTrip(ctx context.Context, db *pgxpool.Pool, router broker.Router, e TripBooked) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO trips (id, ride, rider, amount) VALUES ($1, $2, $3, $4)", e.Trip, e.Ride, e.Rider, e.Amount); err != nil {
			return fmt.Errorf("book trip %s: %w", e.Trip, err)
		}
		return outbox.Publish(ctx, tx, broker.Job{ID: e.Trip, Type: TripBookedType, Payload: e}, outbox.Router(router))
	})
}

// reauthorise sends an authorisation request whose reply goes to
// trip.replies, and does not wait for it: reply handles it.
func (t *trip) reauthorise(ctx context.Context, a Authorise) error {
	// The reply can come before Publish returns, so the request gets
	// its id (which is its correlation id) and is recorded first.
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.sent[id.String()] = a
	t.mu.Unlock()
	t.seen.expect(replyQueue + " " + id.String())
	say("trip", "nightly: re-authorise %s's monthly pass %s, request %s, reply to %s", a.Rider, money(a.Amount), id, replyQueue)
	return t.pub.Publish(ctx, broker.Job{ID: id.String(), Type: AuthoriseType, Payload: a, ReplyTo: replyQueue})
}

// replyMux is the handler of the pool that consumes trip.replies. Replies
// are jobs of type "<request type>.reply".
func (t *trip) replyMux() *worker.Mux {
	mux := worker.NewMux()
	mux.Handle(AuthoriseType+broker.ReplyTypeSuffix, worker.HandleReply(t.reply))
	return mux
}

// reply matches a reply from trip.replies with the request it answers.
func (t *trip) reply(ctx context.Context, r worker.Reply[Authorisation]) error {
	t.mu.Lock()
	a, ok := t.sent[r.CorrelationID]
	delete(t.sent, r.CorrelationID) // replies are at least once: the next copy is ignored
	t.mu.Unlock()
	if !ok {
		say("trip", "reply to %s in %s: no such request pending, ignored", r.CorrelationID, replyQueue)
		return nil
	}
	answer := "ok"
	switch {
	case r.Err != nil:
		answer = fmt.Sprintf("refused (class %s): %s", r.Err.Class, r.Err.Message)
	case !r.Result.Approved:
		answer = "declined, " + r.Result.Reason
	}
	say("trip", "reply to request %s in %s: %s's monthly pass %s: %s", r.CorrelationID, replyQueue, a.Rider, money(a.Amount), answer)
	t.seen.arrived(replyQueue + " " + r.CorrelationID)
	return nil
}

// awaitLateReplies waits until the caller has discarded n replies that
// came after their call gave up.
func (t *trip) awaitLateReplies(ctx context.Context, n int) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for t.caller.Discarded() < uint64(n) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("%d late replies expected, %d came: %w", n, t.caller.Discarded(), context.Cause(ctx))
		}
	}
	say("trip", "%d late reply discarded by the caller (Caller.Discarded)", n)
	return nil
}
