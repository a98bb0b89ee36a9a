// Command taxi is warren's example of a transaction across services: a
// taxi-booking system whose services run in one program, each on
// connections of its own, as if it ran apart (see README.md):
//
//   - trip books rides: for each, the rider's app asks dispatch for a
//     pick-up estimate and waits for it (Caller.Call, over direct
//     reply-to); then the trip service records the trip and starts its
//     booking saga in the same transaction (saga.Start); the saga's last
//     step, the trip service's own, marks the trip booked and writes a
//     trip.booked event into the outbox. It also sends a request whose
//     reply goes to its durable reply queue, trip.replies;
//   - the booking saga's coordinator sends the saga's commands through the
//     outbox (its relay also publishes the events) and applies their
//     replies from trip.saga.replies: authorise (passenger), reserve a
//     driver (dispatch), charge (billing), confirm (trip); a step that
//     fails undoes the ones before it;
//   - passenger authorises payments and releases them; dispatch reserves
//     and releases drivers, through an inbox; billing charges each trip
//     once, through an inbox;
//   - notifications and analytics get every trip.booked event, through
//     the fanout exchange taxi.events.
//
// The program applies its topology and its database schema, runs the
// scenario, waits until every saga has ended and every reply and event it
// expects has arrived, shuts the services down gracefully, checks what
// each ride left behind (saga.Get, trips, charges, reservations), prints
// a summary and exits 0; or exits 1, after 30 seconds at most.
//
//	go run ./examples/taxi [--database-url URL] [--schema taxi]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/daemon"
	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/saga"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

const (
	// defaultTopology is relative to the root of the repository, where
	// `make taxi` runs the program.
	defaultTopology = "examples/taxi/topology.yaml"
	// runTimeout bounds the whole run, so that it always ends.
	runTimeout = 30 * time.Second
)

func main() {
	// The flags of the warren CLI, with their environment fallbacks.
	url := flag.String("url", "", "broker URL(s), comma-separated, tried in turn (default: env "+daemon.EnvURL+", else "+broker.RedactURL(broker.DefaultURL)+")")
	file := os.Getenv("WARREN_TOPOLOGY")
	if file == "" {
		file = defaultTopology
	}
	flag.StringVar(&file, "file", file, "topology file (env WARREN_TOPOLOGY)")
	flag.StringVar(&file, "f", file, "shorthand for --file")
	dbURL := flag.String("database-url", "", "PostgreSQL URL of the trip, dispatch and billing services and of the sagas (default: env WARREN_DATABASE_URL, else DATABASE_URL, else the local test database)")
	schema := flag.String("schema", defaultSchema, "the example's schema in the database, created if missing")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, config{urls: brokerURLs(*url), file: file, databaseURL: databaseURL(*dbURL), schema: *schema})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "taxi:", err)
		os.Exit(1)
	}
}

// config is what the program is told.
type config struct {
	urls        []string // the broker's
	file        string   // the topology file
	databaseURL string
	schema      string
}

func run(ctx context.Context, cfg config) error {
	urls, file := cfg.urls, cfg.file
	started := time.Now()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	ctx, cancel := context.WithTimeoutCause(ctx, runTimeout, fmt.Errorf("the scenario did not end within %s", runTimeout))
	defer cancel()

	topo, err := topology.Load(file)
	if err != nil {
		return err
	}
	// The contracts the topology includes (contracts/taxi.yaml): every
	// service checks the payloads it receives against them, and the trip
	// service those it sends (docs/versioning.md#validation-and-class-schema).
	contracts, err := contract.Load(file)
	if err != nil {
		return err
	}
	// warren's own warnings and errors go to stderr; the story, to stdout.
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).
		Level(zerolog.WarnLevel).With().Timestamp().Logger()
	if err := apply(ctx, urls, topo, log); err != nil {
		return err
	}
	say("taxi", "topology %s applied", file)
	db, err := openDB(ctx, cfg.databaseURL, cfg.schema)
	if err != nil {
		return err
	}
	defer db.Close() // after the services, deferred below
	store, err := migrate(ctx, db)
	if err != nil {
		return err
	}
	say("taxi", "schema %s migrated: trips, drivers, charges, the outbox, the sagas and the inbox", cfg.schema)
	billingInbox, err := inbox.New(store, billingConsumer, inbox.WithLogger(log))
	if err != nil {
		return err
	}
	dispatchInbox, err := inbox.New(store, dispatchConsumer, inbox.WithLogger(log))
	if err != nil {
		return err
	}

	// The consumers start first, but need not: the queues exist, and keep
	// what is sent to them until their service consumes it.
	poolCtx, stopPools := context.WithCancel(ctx)
	svc := &services{urls: urls, topo: topo, contracts: contracts, log: log, stopPools: stopPools, fail: fail}
	defer svc.close() // last: after the trip service's caller and publisher
	seen := newExpectations()
	for _, s := range []struct {
		name string
		h    worker.Handler
	}{
		{"passenger", passengerMux(seen)},
		{"dispatch", dispatchMux(dispatchInbox)},
		{"billing", billingMux(billingInbox, seen)},
		{"trip", confirmMux(db, topo, seen)}, // the trip service's own step
	} {
		if err := svc.serve(poolCtx, s.name, s.name, s.h); err != nil {
			return err
		}
	}
	for _, s := range subscribers {
		if err := svc.serve(poolCtx, s.name, s.name, subscriberMux(s.name, s.react, seen, started)); err != nil {
			return err
		}
	}
	// The booking saga's coordinator, a service of its own, with a
	// connection of its own: it consumes the replies to the sagas'
	// commands, and its outbox relay publishes what the sagas and the
	// trip service commit to the outbox: commands and trip.booked events.
	def, err := bookingSaga()
	if err != nil {
		return err
	}
	coordConn, err := svc.dial(ctx, "trip-saga")
	if err != nil {
		return err
	}
	var relayed relayCount
	coord, err := saga.NewCoordinator(db, coordConn, topo, saga.WithReplyQueue(sagaReplyQueue), saga.WithLogger(log),
		saga.WithRelayOptions(outbox.WithAppID("trip"), outbox.WithObserver(&relayed)))
	if err != nil {
		return err
	}
	if err := coord.Register(def); err != nil {
		return err
	}
	svc.run(poolCtx, "trip-saga", coord.Run)
	// The trip service: a connection to call and publish on, and a pool,
	// on another, that consumes its reply queue.
	conn, err := svc.dial(ctx, "trip-app")
	if err != nil {
		return err
	}
	t, err := newTrip(conn, db, topo, contracts, coord, def, seen)
	if err != nil {
		return err
	}
	defer closeWithin(5*time.Second, t.close)
	if err := svc.serve(poolCtx, "trip-replies", replyQueue, t.replyMux()); err != nil {
		return err
	}

	rides, err := t.run(ctx)
	if err == nil {
		for _, r := range rides {
			if r.saga.Status != saga.Completed {
				continue
			}
			for _, s := range subscribers {
				seen.expect(s.name + " " + r.ride)
			}
		}
		err = seen.wait(ctx)
	}
	// Each pool finishes the jobs in flight, returns the ones it had
	// prefetched to their queue, and sends its last acks; the
	// coordinator finishes the replies it applies, and its relay its
	// batch.
	err = errors.Join(err, svc.stop())
	if err != nil {
		return err
	}
	say("taxi", "every saga ended, every reply and event arrived; services stopped")
	if err := check(ctx, db, rides); err != nil {
		return err
	}
	say("taxi", "summary: %d rides, %d booked; %d commands and events relayed by the outbox; %d duplicates skipped by the inboxes",
		len(rides), countBooked(rides), relayed.sent.Load(), billingInbox.Skipped()+dispatchInbox.Skipped())
	return nil
}

// sagaReplyQueue is the booking saga coordinator's reply queue.
const sagaReplyQueue = "trip.saga.replies"

// check reads what each ride left behind and fails unless it is what the
// ride should have done: the saga's end state (saga.Get), the trip's
// status, one charge per booked trip and none for the others, a driver
// held for each booked trip and released for each compensated one that
// had one, none reserved for a ride whose authorisation was declined.
func check(ctx context.Context, db *pgxpool.Pool, rides []ride) error {
	var errs []error
	for _, r := range rides {
		got, err := effects(ctx, db, r.trip)
		if err != nil {
			return err
		}
		want := r.effect()
		say("taxi", "check ride %s (%s): %s", r.ride, r.why, got)
		if got != want {
			errs = append(errs, fmt.Errorf("ride %s: %s, want %s", r.ride, got, want))
		}
	}
	return errors.Join(errs...)
}

// effect is what a ride left behind.
type effect struct {
	saga     saga.Status
	trip     string // the trip's status
	charges  int
	reserved bool
	driver   string // held, released, or none
}

func (e effect) String() string {
	return fmt.Sprintf("saga %s, trip %s, %d charge(s), driver %s", e.saga, e.trip, e.charges, e.driver)
}

// effect is what the booking should leave behind.
func (b booking) effect() effect {
	e := effect{saga: b.want, trip: "cancelled", reserved: b.reserves, driver: "none"}
	switch {
	case b.want == saga.Completed:
		e.trip, e.charges, e.driver = "booked", 1, "held"
	case b.reserves:
		e.driver = "released"
	}
	return e
}

// effects reads what the trip id left behind.
func effects(ctx context.Context, db *pgxpool.Pool, id string) (effect, error) {
	in, err := saga.Get(ctx, db, id)
	if err != nil {
		return effect{}, err
	}
	e := effect{saga: in.Status, driver: "none"}
	err = db.QueryRow(ctx, `SELECT t.status,
		(SELECT count(*) FROM charges c WHERE c.trip_id = t.id),
		coalesce((SELECT CASE WHEN r.released_at IS NULL THEN 'held' ELSE 'released' END FROM reservations r WHERE r.trip_id = t.id), 'none')
		FROM trips t WHERE t.id = $1`, id).Scan(&e.trip, &e.charges, &e.driver)
	if err != nil {
		return effect{}, fmt.Errorf("read the effects of trip %s: %w", id, err)
	}
	e.reserved = e.driver != "none"
	return e, nil
}

// countBooked counts the rides whose saga completed.
func countBooked(rides []ride) int {
	n := 0
	for _, r := range rides {
		if r.saga.Status == saga.Completed {
			n++
		}
	}
	return n
}

// relayCount is an outbox.Observer that counts the events the relay
// published.
type relayCount struct{ sent atomic.Int64 }

func (c *relayCount) OutboxBatch(sent, _ int, _ []time.Duration) { c.sent.Add(int64(sent)) }
func (c *relayCount) OutboxStats(outbox.Stats)                   {}
func (c *relayCount) OutboxDeleted(int64)                        {}

// apply declares the topology, as `warren topology apply` does. Declaring
// is idempotent, so a program may do it at every start.
func apply(ctx context.Context, urls []string, topo *topology.Topology, log zerolog.Logger) error {
	conn, err := broker.Dial(ctx, urls, broker.WithName("taxi-setup"), broker.WithLogger(log))
	if err != nil {
		return err
	}
	defer conn.Close()
	d := broker.NewDeclarer(conn)
	defer d.Close(ctx)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		return fmt.Errorf("apply the topology: %w", err)
	}
	return nil
}

// services runs the services' pools, and owns their connections.
type services struct {
	urls      []string
	topo      *topology.Topology
	contracts *contract.Set
	log       zerolog.Logger
	stopPools context.CancelFunc      // ends the ctx the pools run with
	fail      context.CancelCauseFunc // ends the scenario when a pool fails

	conns []*broker.Conn
	wg    sync.WaitGroup // the pools' goroutines
	mu    sync.Mutex     // guards errs
	errs  []error
}

// dial opens a connection named after its service, as RabbitMQ's
// management UI will show it.
func (s *services) dial(ctx context.Context, name string) (*broker.Conn, error) {
	conn, err := broker.Dial(ctx, s.urls, broker.WithName("taxi-"+name), broker.WithLogger(s.log))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.conns = append(s.conns, conn)
	return conn, nil
}

// serve starts the service name: a pool, on a connection of its own, that
// consumes queue until ctx ends.
func (s *services) serve(ctx context.Context, name, queue string, h worker.Handler) error {
	conn, err := s.dial(ctx, name)
	if err != nil {
		return err
	}
	// The pool publishes its replies, retries and dead letters on conn
	// too. A production worker gives them a connection of its own
	// (worker.WithSender), as the quickstart's worker does.
	pool, err := worker.NewPool(conn, s.topo, h, worker.WithQueue(queue), worker.WithLogger(s.log), worker.WithValidator(s.contracts))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	s.run(ctx, name, pool.Run)
	return nil
}

// run runs the service name until ctx ends; its error ends the scenario.
func (s *services) run(ctx context.Context, name string, run func(context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := run(ctx); err != nil {
			err = fmt.Errorf("%s: %w", name, err)
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.mu.Unlock()
			s.fail(err)
		}
	}()
}

// stop shuts the pools down gracefully, waits for them and returns their
// errors.
func (s *services) stop() error {
	s.stopPools()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// close stops the pools, then closes the connections.
func (s *services) close() {
	s.stop()
	for _, conn := range slices.Backward(s.conns) {
		conn.Close()
	}
}

// expectations are what the scenario waits for: replies and events to
// arrive, named like "billing r-1". One may arrive before it is expected.
type expectations struct {
	mu      sync.Mutex
	want    map[string]bool
	got     map[string]bool
	changed chan struct{} // a token after a change; buffered 1, so that nobody blocks on it
}

func newExpectations() *expectations {
	return &expectations{want: map[string]bool{}, got: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (e *expectations) expect(name string)  { e.update(e.want, name) }
func (e *expectations) arrived(name string) { e.update(e.got, name) }

func (e *expectations) update(set map[string]bool, name string) {
	e.mu.Lock()
	set[name] = true
	e.mu.Unlock()
	select {
	case e.changed <- struct{}{}:
	default: // a token is waiting already
	}
}

// wait returns once everything expected has arrived, or ctx ends.
func (e *expectations) wait(ctx context.Context) error {
	for {
		e.mu.Lock()
		var missing []string
		for name := range e.want {
			if !e.got[name] {
				missing = append(missing, name)
			}
		}
		e.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-e.changed:
		case <-ctx.Done():
			slices.Sort(missing)
			return fmt.Errorf("%w; still waiting for %s", context.Cause(ctx), strings.Join(missing, ", "))
		}
	}
}

// say prints a line of the story, prefixed with the service that tells
// it. It is one write, so the services' lines do not mix.
func say(service, format string, args ...any) {
	fmt.Printf("%-13s %s\n", service, fmt.Sprintf(format, args...))
}

// brokerURLs returns the URLs of --url, else of the environment as a
// worker daemon reads it (daemon.EnvURLs: WARREN_URL, else a deprecated
// name, with a warning), else broker.DefaultURL.
func brokerURLs(flagValue string) []string {
	var urls []string
	for _, u := range strings.Split(flagValue, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		urls = daemon.EnvURLs(os.LookupEnv, os.Stderr)
	}
	if len(urls) == 0 {
		urls = []string{broker.DefaultURL}
	}
	return urls
}

// closeWithin calls closeFn with a ctx that ends after d.
func closeWithin(d time.Duration, closeFn func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_ = closeFn(ctx)
}
