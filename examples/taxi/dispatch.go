package main

import (
	"context"
	"fmt"

	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/worker"
)

// The dispatch service assigns drivers. It reserves a driver for a trip
// (driver.reserve, the booking saga's second step) and releases the
// reservation when a later step fails (driver.release, its
// compensation), through an inbox in its own database: a command
// delivered twice reserves once, and its copy is answered with the first
// copy's driver, which the inbox kept. It also answers the rider's app,
// which asks how soon a driver could be there before booking
// (driver.eta, a synchronous call).

// The dispatch service's commands and request.
const (
	ReserveDriverType = "driver.reserve"
	ReleaseDriverType = "driver.release"
	ETAType           = "driver.eta"
)

// dispatchConsumer is dispatch's name in the inbox.
const dispatchConsumer = "dispatch"

// DriverOrder names the trip a driver is reserved for, or released from.
type DriverOrder struct {
	Trip string `msgpack:"trip"`
	Ride string `msgpack:"ride"`
}

// ETA asks how soon a driver could pick a rider up.
type ETA struct {
	Rider string `msgpack:"rider"`
}

// driversSQL is the dispatch service's small fleet; reservations holds
// one row per trip, released_at set once the reservation is undone.
const driversSQL = `
CREATE TABLE IF NOT EXISTS drivers (
	id   text PRIMARY KEY,
	name text NOT NULL
);
INSERT INTO drivers (id, name) VALUES ('d-1', 'Nadia'), ('d-2', 'Omar'), ('d-3', 'Priya')
	ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS reservations (
	trip_id     text PRIMARY KEY,
	driver_id   text NOT NULL REFERENCES drivers,
	reserved_at timestamptz NOT NULL DEFAULT now(),
	released_at timestamptz
);`

// dispatchMux is the dispatch service's handler: reservations and their
// releases through the inbox ib, estimates without one (they change
// nothing).
func dispatchMux(ib *inbox.Inbox) *worker.Mux {
	mux := worker.NewMux()
	mux.Handle(ReserveDriverType, ib.Middleware(worker.TypedResult(reserveDriver)))
	mux.Handle(ReleaseDriverType, ib.Middleware(worker.TypedResult(releaseDriver)))
	mux.Handle(ETAType, worker.TypedResult(func(ctx context.Context, job *worker.Job, e ETA) (int, error) {
		minutes := 3 + len(e.Rider)%4 // a fixed answer, so that every run says the same
		say("dispatch", "pick-up estimate for %s: %d min", e.Rider, minutes)
		return minutes, nil
	}))
	return mux
}

// reserveDriver reserves the driver with the fewest reservations held,
// in the inbox's transaction, and replies with the driver's id. A second
// reservation for the same trip (a new command for it) gets the driver
// reserved the first time.
func reserveDriver(ctx context.Context, job *worker.Job, o DriverOrder) (string, error) {
	tx := pginbox.Tx(ctx)
	// One reservation at a time, so that two trips reserved at once do not
	// both pick the same driver: the lock is held until the inbox commits.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.drivers'))"); err != nil {
		return "", fmt.Errorf("reserve a driver for trip %s: %w", o.Trip, err)
	}
	var driver string
	err := tx.QueryRow(ctx, `
INSERT INTO reservations (trip_id, driver_id)
	SELECT $1, d.id FROM drivers d
	ORDER BY (SELECT count(*) FROM reservations r WHERE r.driver_id = d.id AND r.released_at IS NULL), d.id
	LIMIT 1
ON CONFLICT (trip_id) DO UPDATE SET trip_id = EXCLUDED.trip_id
RETURNING driver_id`, o.Trip).Scan(&driver)
	if err != nil {
		return "", fmt.Errorf("reserve a driver for trip %s: %w", o.Trip, err)
	}
	say("dispatch", "ride %s: driver %s reserved", o.Ride, driver)
	return driver, nil
}

// releaseDriver releases the trip's reservation. It is safe for a trip
// that has none, or whose reservation is released already.
func releaseDriver(ctx context.Context, job *worker.Job, o DriverOrder) (bool, error) {
	var driver string
	err := pginbox.Tx(ctx).QueryRow(ctx, `
UPDATE reservations SET released_at = now() WHERE trip_id = $1 AND released_at IS NULL
RETURNING driver_id`, o.Trip).Scan(&driver)
	switch {
	case err == nil:
		say("dispatch", "ride %s: driver %s released", o.Ride, driver)
	case isNoRows(err):
		say("dispatch", "ride %s: no driver held, nothing to release", o.Ride)
	default:
		return false, fmt.Errorf("release the driver of trip %s: %w", o.Trip, err)
	}
	return true, nil
}
