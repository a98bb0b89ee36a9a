package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/saga"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// The trip service books rides. For each, the rider's app first asks the
// dispatch service how soon a driver could be there, and waits for the
// answer (Caller.Call); then the service writes the trip, 'booking', into
// its table trips and starts the booking saga in the same transaction
// (saga.Start): the saga runs if and only if the trip is recorded. The
// saga's coordinator, a service of the program, sends its commands and
// applies their replies; its last step, trip.confirm, is the trip
// service's own: it marks the trip booked and writes its trip.booked event
// into the outbox in one transaction. The service waits for each saga to
// end, as the rider's app does, and cancels the trips whose saga was
// compensated.
//
// Once a night it also re-authorises the monthly passes: nobody waits for
// those answers, which go to the service's durable reply queue,
// trip.replies, and are read from there by a pool, however late they
// come, even after a restart.

// The trip service's command (the booking saga's last step) and event.
const (
	ConfirmType    = "trip.confirm"
	TripBookedType = "trip.booked"
)

// BookingSaga is the name of the booking saga.
const BookingSaga = "trip.book"

// Booking is the booking saga's state, stored as JSON in warren_saga.
type Booking struct {
	Trip    string `json:"trip"`
	Ride    string `json:"ride"`
	Rider   string `json:"rider"`
	Amount  int    `json:"amount"`            // in cents
	Driver  string `json:"driver,omitempty"`  // once reserved
	Receipt string `json:"receipt,omitempty"` // once charged
}

// Confirm is the trip.confirm command: the trip is paid for, with a driver.
type Confirm struct {
	Trip   string `msgpack:"trip"`
	Driver string `msgpack:"driver"`
}

// TripBooked is the trip.booked event's payload.
type TripBooked struct {
	Trip   string `msgpack:"trip"` // the trip's id in the trips table
	Ride   string `msgpack:"ride"`
	Rider  string `msgpack:"rider"`
	Amount int    `msgpack:"amount"` // in cents
	Driver string `msgpack:"driver"`
}

// stepTimeout bounds the wait for each reply of the booking saga. The
// services answer in milliseconds here; a step that gets no answer in
// time fails, and the steps before it are undone.
const stepTimeout = 10 * time.Second

// bookingSaga defines the booking: authorise the payment, reserve a
// driver, charge the card, confirm. A step that fails undoes the ones
// before it, newest first: the driver is released, then the
// authorisation, and the rider is told why.
func bookingSaga() (*saga.Definition[Booking], error) {
	return saga.Define(BookingSaga,
		saga.Step[Booking]{
			Name: "authorise",
			Command: func(_ context.Context, b *Booking) (broker.Job, error) {
				return broker.Job{Type: AuthoriseType, Payload: Authorise{Trip: b.Trip, Rider: b.Rider, Amount: b.Amount}}, nil
			},
			OnReply: func(_ context.Context, _ *Booking, r saga.Reply) error {
				var a Authorisation
				if err := r.Decode(&a); err != nil {
					return err
				}
				if !a.Approved {
					return errors.New("payment declined: " + a.Reason) // fails the step
				}
				return nil
			},
			Compensate: func(_ context.Context, b *Booking) (broker.Job, error) {
				// A compensation sees the state, not the failure: what
				// was done says how far the booking got.
				reason := "no driver could be reserved"
				if b.Driver != "" {
					reason = "the payment did not go through"
				}
				return broker.Job{Type: ReleaseType, Payload: Release{Trip: b.Trip, Ride: b.Ride, Rider: b.Rider, Amount: b.Amount, Reason: reason}}, nil
			},
			Timeout: stepTimeout,
		},
		saga.Step[Booking]{
			Name: "reserve-driver",
			Command: func(_ context.Context, b *Booking) (broker.Job, error) {
				return broker.Job{Type: ReserveDriverType, Payload: DriverOrder{Trip: b.Trip, Ride: b.Ride}}, nil
			},
			OnReply: func(_ context.Context, b *Booking, r saga.Reply) error {
				return r.Decode(&b.Driver)
			},
			Compensate: func(_ context.Context, b *Booking) (broker.Job, error) {
				return broker.Job{Type: ReleaseDriverType, Payload: DriverOrder{Trip: b.Trip, Ride: b.Ride}}, nil
			},
			Timeout: stepTimeout,
		},
		saga.Step[Booking]{
			// No compensation: no step after it can fail (confirm only
			// records what is done), so a charge is never undone.
			Name: "charge",
			Command: func(_ context.Context, b *Booking) (broker.Job, error) {
				return broker.Job{Type: ChargeType, Payload: Charge{Trip: b.Trip, Ride: b.Ride, Rider: b.Rider, Amount: b.Amount}}, nil
			},
			OnReply: func(_ context.Context, b *Booking, r saga.Reply) error {
				return r.Decode(&b.Receipt)
			},
			Timeout: stepTimeout,
		},
		saga.Step[Booking]{
			// No timeout: the card is charged by now, and a timeout
			// would undo the driver and the authorisation, not the
			// charge. The trip service's own queue waits for it.
			Name: "confirm",
			Command: func(_ context.Context, b *Booking) (broker.Job, error) {
				return broker.Job{Type: ConfirmType, Payload: Confirm{Trip: b.Trip, Driver: b.Driver}}, nil
			},
		})
}

// confirmMux is the handler of the trip service's own queue, trip: the
// booking saga's last step. seen, if not nil, hears of each trip booked,
// by trip id.
func confirmMux(db *pgxpool.Pool, router broker.Router, seen *expectations) *worker.Mux {
	mux := worker.NewMux()
	mux.Handle(ConfirmType, worker.TypedResult(func(ctx context.Context, job *worker.Job, c Confirm) (bool, error) {
		return true, confirm(ctx, db, router, c, seen)
	}))
	return mux
}

// confirm marks the trip booked and writes its trip.booked event into the
// outbox, in one transaction: both commit, or neither; the coordinator's
// outbox relay publishes the event after the commit, to the fanout
// exchange, which copies it to every subscriber's queue. A copy of the
// command finds the trip booked already, and changes nothing: the
// transition from 'booking' is the step's idempotence. The event's job
// id is the trip's id, so every copy the relay sends is the same event;
// it carries the command's correlation id (the handler's ctx).
func confirm(ctx context.Context, db *pgxpool.Pool, router broker.Router, c Confirm, seen *expectations) error {
	var e TripBooked
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE trips SET status = 'booked', driver = $2 WHERE id = $1 AND status = 'booking'
			RETURNING ride, rider, amount`, c.Trip, c.Driver).Scan(&e.Ride, &e.Rider, &e.Amount)
		if err != nil {
			return err
		}
		e.Trip, e.Driver = c.Trip, c.Driver
		return outbox.Publish(ctx, tx, broker.Job{ID: e.Trip, Type: TripBookedType, Payload: e}, outbox.Router(router))
	})
	switch {
	case isNoRows(err):
		say("trip", "trip %s: confirmed already", c.Trip)
		return nil
	case err != nil:
		return fmt.Errorf("confirm trip %s: %w", c.Trip, err)
	}
	say("trip", "ride %s: booked with driver %s; trip.booked in the outbox", e.Ride, e.Driver)
	if seen != nil {
		seen.arrived("trip " + c.Trip)
	}
	return nil
}

// The rides the program books, and how each must end.
type booking struct {
	ride, rider string
	amount      int         // in cents
	want        saga.Status // the saga's end
	reserves    bool        // whether a driver is reserved on the way
	why         string      // what the ride shows
}

// bookings are the scenario; the services' rules (passenger.go,
// billing.go) decide what becomes of each.
var bookings = []booking{
	{"r-1", "ada", 23_50, saga.Completed, true, "booked end to end"},
	{"r-2", "grace", 41_00, saga.Completed, true, "booked end to end"},
	{"r-3", "linus", 480_00, saga.Compensated, false, "authorisation declined: nothing reserved, nothing to undo"},
	{"r-4", "ken", 18_00, saga.Compensated, true, "card declined: driver released, rider told"},
}

// ride is a booking the trip service made, and its saga once ended.
type ride struct {
	booking
	trip string
	saga saga.Instance
}

// replyQueue is the trip service's durable reply queue.
const replyQueue = "trip.replies"

// etaTimeout is how long the rider's app waits for the pick-up estimate.
const etaTimeout = 2 * time.Second

// nightly is the monthly pass re-authorised tonight.
var nightly = Authorise{Rider: "ada", Amount: 60_00}

type trip struct {
	caller *broker.Caller
	pub    *broker.Publisher
	db     *pgxpool.Pool
	coord  *saga.Coordinator
	def    *saga.Definition[Booking]
	seen   *expectations

	// sent holds the requests whose replies go to trip.replies, by
	// correlation id (the request's id). It stands in for the service's
	// database: a reply may come after a restart.
	mu   sync.Mutex
	sent map[string]Authorise
}

// newTrip returns the trip service on conn, booking trips in db through
// the sagas of coord. The caller and the publisher route by job type with
// the topology's routes.
func newTrip(conn *broker.Conn, db *pgxpool.Pool, topo *topology.Topology, contracts *contract.Set, coord *saga.Coordinator, def *saga.Definition[Booking], seen *expectations) (*trip, error) {
	caller, err := broker.NewCaller(conn, broker.WithCallRouter(topo), broker.WithCallAppID("trip"), broker.WithCallValidator(contracts))
	if err != nil {
		return nil, err
	}
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo), broker.WithAppID("trip"), broker.WithValidator(contracts))
	if err != nil {
		caller.Close(context.Background())
		return nil, err
	}
	return &trip{caller: caller, pub: pub, db: db, coord: coord, def: def, seen: seen, sent: make(map[string]Authorise)}, nil
}

// close closes the caller, and the publisher once its jobs are confirmed.
func (t *trip) close(ctx context.Context) error {
	return errors.Join(t.caller.Close(ctx), t.pub.Close(ctx))
}

// run books the rides, sends the nightly request, and waits for every
// booking's saga to end.
func (t *trip) run(ctx context.Context) ([]ride, error) {
	var rides []ride
	for _, b := range bookings {
		id, err := t.book(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("ride %s: %w", b.ride, err)
		}
		rides = append(rides, ride{booking: b, trip: id})
	}
	if err := t.reauthorise(ctx, nightly); err != nil {
		return nil, err
	}
	for i := range rides {
		in, err := awaitSaga(ctx, t.db, rides[i].trip)
		if err != nil {
			return nil, fmt.Errorf("ride %s: %w", rides[i].ride, err)
		}
		rides[i].saga = in
		if err := settle(ctx, t.db, in); err != nil {
			return nil, err
		}
		r := rides[i]
		if in.Status == saga.Completed {
			var b Booking
			if err := json.Unmarshal(in.State, &b); err != nil {
				return nil, err
			}
			say("trip", "ride %s for %s: saga %s: booked, driver %s, receipt %s", r.ride, r.rider, in.Status, b.Driver, b.Receipt)
		} else {
			say("trip", "ride %s for %s: saga %s: not booked, %s", r.ride, r.rider, in.Status, in.LastError)
		}
	}
	return rides, nil
}

// book asks the dispatch service for a pick-up estimate and waits for it,
// then records the trip and starts its booking saga, in one transaction.
// It returns the trip's id, which is the saga's.
func (t *trip) book(ctx context.Context, b booking) (string, error) {
	callCtx, cancel := context.WithTimeout(ctx, etaTimeout)
	defer cancel()
	reply, err := t.caller.Call(callCtx, broker.Job{Type: ETAType, Payload: ETA{Rider: b.rider}})
	eta := "no estimate"
	switch {
	case errors.Is(err, broker.ErrReplyTimeout):
		// The app books anyway: the estimate is a courtesy.
		eta = fmt.Sprintf("no estimate within %s", etaTimeout)
	case err != nil:
		return "", err
	default:
		var minutes int
		if err := reply.Decode(&minutes); err != nil {
			return "", err
		}
		eta = fmt.Sprintf("a driver in %d min", minutes)
	}

	id, err := broker.NewJobID()
	if err != nil {
		return "", err
	}
	if err := startBooking(ctx, t.db, t.coord, t.def, Booking{Trip: id, Ride: b.ride, Rider: b.rider, Amount: b.amount}); err != nil {
		return "", err
	}
	say("trip", "ride %s for %s, %s (%s): trip %s booking, saga %s started", b.ride, b.rider, money(b.amount), eta, id, BookingSaga)
	return id, nil
}

// startBooking inserts the trip, 'booking', and starts its saga, in one
// transaction: the saga's first command is in the outbox if and only if
// the trip is recorded.
func startBooking(ctx context.Context, db *pgxpool.Pool, coord *saga.Coordinator, def *saga.Definition[Booking], b Booking) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO trips (id, ride, rider, amount, status) VALUES ($1, $2, $3, $4, 'booking')",
			b.Trip, b.Ride, b.Rider, b.Amount); err != nil {
			return fmt.Errorf("record trip %s: %w", b.Trip, err)
		}
		return saga.Start(ctx, tx, coord, def, b.Trip, b)
	})
}

// awaitSaga waits until the saga id has ended, and returns it.
func awaitSaga(ctx context.Context, db *pgxpool.Pool, id string) (saga.Instance, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		in, err := saga.Get(ctx, db, id)
		if err != nil {
			return saga.Instance{}, err
		}
		if in.Status.Ended() {
			return in, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return saga.Instance{}, fmt.Errorf("saga %s still %s at step %s: %w", id, in.Status, in.Step, context.Cause(ctx))
		}
	}
}

// settle records a booking saga's end in the trip's row: a compensated or
// failed saga cancels the trip (a completed one booked it: confirm).
func settle(ctx context.Context, db *pgxpool.Pool, in saga.Instance) error {
	if in.Status == saga.Completed {
		return nil
	}
	if _, err := db.Exec(ctx, "UPDATE trips SET status = 'cancelled' WHERE id = $1 AND status = 'booking'", in.ID); err != nil {
		return fmt.Errorf("cancel trip %s: %w", in.ID, err)
	}
	return nil
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
