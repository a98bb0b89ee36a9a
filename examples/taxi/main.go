// Command taxi is warren's request-reply example: a taxi-booking system
// whose services run in one program, each on connections of its own, as
// if it ran apart (see README.md):
//
//   - trip books rides: for each, it calls the passenger service and waits
//     for the answer (Caller.Call, over direct reply-to), then books the
//     trip in its PostgreSQL table and writes a trip.booked event into its
//     outbox in the same transaction, which an outbox relay publishes; it
//     also sends a request whose reply goes to its durable reply queue,
//     trip.replies, and reads the reply from there;
//   - passenger authorises the payments;
//   - billing, notifications and analytics each get every trip.booked
//     event, through the fanout exchange taxi.events; billing charges each
//     trip once, through an inbox in PostgreSQL.
//
// The program applies its topology and its database schema, runs the
// scenario, waits until every reply and event it expects has arrived,
// shuts the services down gracefully, prints a summary and exits 0; or
// exits 1, after 30 seconds at most.
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
	"github.com/warrenmq/warren/daemon"
	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/outbox"
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
	dbURL := flag.String("database-url", "", "PostgreSQL URL of the trip and billing services (default: env WARREN_DATABASE_URL, else DATABASE_URL, else the local test database)")
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
	say("taxi", "schema %s migrated: trips, charges, the outbox and the inbox", cfg.schema)
	ib, err := inbox.New(store, billingConsumer, inbox.WithLogger(log))
	if err != nil {
		return err
	}

	// The consumers start first, but need not: the queues exist, and keep
	// what is sent to them until their service consumes it.
	poolCtx, stopPools := context.WithCancel(ctx)
	svc := &services{urls: urls, topo: topo, log: log, stopPools: stopPools, fail: fail}
	defer svc.close() // last: after the trip service's caller and publisher
	seen := newExpectations()
	if err := svc.serve(poolCtx, "passenger", "passenger", passengerMux()); err != nil {
		return err
	}
	if err := svc.serve(poolCtx, "billing", "billing", billingMux(ib, seen)); err != nil {
		return err
	}
	for _, s := range subscribers {
		if err := svc.serve(poolCtx, s.name, s.name, subscriberMux(s.name, s.react, seen, started)); err != nil {
			return err
		}
	}
	// The trip service's outbox relay, a service of its own, with a
	// connection of its own: it publishes what the trip service commits.
	relayConn, err := svc.dial(ctx, "trip-outbox")
	if err != nil {
		return err
	}
	var relayed relayCount
	relay, err := outbox.NewRelay(db, relayConn, outbox.WithAppID("trip"), outbox.WithObserver(&relayed), outbox.WithLogger(log))
	if err != nil {
		return err
	}
	svc.run(poolCtx, "trip-outbox", relay.Run)
	// The trip service: a connection to call and publish on, and a pool,
	// on another, that consumes its reply queue.
	conn, err := svc.dial(ctx, "trip")
	if err != nil {
		return err
	}
	t, err := newTrip(conn, db, topo, seen)
	if err != nil {
		return err
	}
	defer closeWithin(5*time.Second, t.close)
	if err := svc.serve(poolCtx, "trip-replies", replyQueue, t.replyMux()); err != nil {
		return err
	}

	booked, err := t.run(ctx)
	if err == nil {
		for _, e := range booked {
			seen.expect("billing " + e.Trip)
			for _, s := range subscribers {
				seen.expect(s.name + " " + e.Ride)
			}
		}
		err = seen.wait(ctx)
	}
	// Each pool finishes the jobs in flight, returns the ones it had
	// prefetched to their queue, and sends its last acks; the relay
	// finishes its batch.
	err = errors.Join(err, svc.stop())
	if err != nil {
		return err
	}
	say("taxi", "every reply and event arrived; services stopped")
	return summary(ctx, db, booked, relayed.sent.Load(), ib.Skipped())
}

// summary prints the run's ledger: trips booked, events the relay
// published, charges for the trips booked, and the duplicate events that
// billing's inbox skipped. It fails unless each trip booked was charged
// exactly once.
func summary(ctx context.Context, db *pgxpool.Pool, booked []TripBooked, relayed, skipped int64) error {
	ids := make([]string, len(booked))
	for i, e := range booked {
		ids[i] = e.Trip
	}
	var charges, charged int
	err := db.QueryRow(ctx, "SELECT count(*), count(DISTINCT trip_id) FROM charges WHERE trip_id = ANY($1)", ids).Scan(&charges, &charged)
	if err != nil {
		return fmt.Errorf("read the charges: %w", err)
	}
	say("taxi", "summary: %d trips booked, %d events relayed by the outbox, %d charges, %d duplicates skipped by billing's inbox",
		len(booked), relayed, charges, skipped)
	if charges != len(booked) || charged != len(booked) {
		return fmt.Errorf("%d trips booked, %d charged, %d charges: want one charge per trip", len(booked), charged, charges)
	}
	return nil
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
	pool, err := worker.NewPool(conn, s.topo, h, worker.WithQueue(queue), worker.WithLogger(s.log))
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
