package saga_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/daemon"
	"github.com/warrenmq/warren/saga"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// Booking is the example saga's state, stored as JSON.
type Booking struct {
	Trip   string `json:"trip"`
	Car    string `json:"car"`
	Charge string `json:"charge"`
}

// Order is the payload of the example's commands.
type Order struct {
	Trip string `msgpack:"trip"`
}

// bookTrip reserves a car, then charges the rider; the reservation is
// released if the charge fails for good or times out.
func bookTrip() (*saga.Definition[Booking], error) {
	return saga.Define("trip.book",
		saga.Step[Booking]{
			Name: "reserve-car",
			Command: func(_ context.Context, b *Booking) (broker.Job, error) {
				return broker.Job{Type: "car.reserve", Payload: Order{Trip: b.Trip}}, nil
			},
			OnReply: func(_ context.Context, b *Booking, r saga.Reply) error {
				return r.Decode(&b.Car) // the car service's result
			},
			Compensate: func(_ context.Context, b *Booking) (broker.Job, error) {
				return broker.Job{Type: "car.release", Payload: Order{Trip: b.Trip}}, nil
			},
			Timeout: time.Minute,
		},
		saga.Step[Booking]{
			Name: "charge",
			Command: func(_ context.Context, b *Booking) (broker.Job, error) {
				return broker.Job{Type: "card.charge", Payload: Order{Trip: b.Trip}}, nil
			},
			OnReply: func(_ context.Context, b *Booking, r saga.Reply) error {
				return r.Decode(&b.Charge)
			},
			Timeout: time.Minute,
		})
}

// A definition is checked when it is made: every problem at once.
func ExampleDefine() {
	_, err := saga.Define("trip.book",
		saga.Step[Booking]{Name: "reserve-car"},
		saga.Step[Booking]{Name: "reserve-car", Timeout: -time.Second})
	var de *saga.DefinitionError
	if errors.As(err, &de) {
		for _, p := range de.Problems {
			fmt.Println(p)
		}
	}
	// Output:
	// step 1 ("reserve-car") has no Command
	// step 2 ("reserve-car") has the name of step 1: step names must be unique
	// step 2 ("reserve-car") has no Command
	// step 2 ("reserve-car") has a negative Timeout (-1s); use 0 for none
}

const exampleTopology = `version: 1
exchanges:
  example.saga: {type: direct}
queues:
  example.saga.cars: {type: quorum}
  example.saga.cards: {type: quorum}
  example.saga.replies: {type: quorum}   # the coordinator's reply queue: no binding needed
bindings:
  - {exchange: example.saga, queue: example.saga.cars, routing_key: car.reserve}
  - {exchange: example.saga, queue: example.saga.cars, routing_key: car.release}
  - {exchange: example.saga, queue: example.saga.cards, routing_key: card.charge}
routes:
  car.reserve: {exchange: example.saga}
  car.release: {exchange: example.saga}
  card.charge: {exchange: example.saga}
`

// A service books a trip: the saga starts in the service's own
// transaction (StartTx here), the coordinator sends each command through the
// outbox and applies each reply.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, done, err := exampleDB(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	if _, err := saga.Migrate(ctx, db); err != nil { // once, at deploy time: warren saga migrate
		fmt.Println(err)
		return
	}
	conn, err := broker.Dial(ctx, []string{"amqp://guest:guest@127.0.0.1:5672/"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	topo, err := topology.Parse("topology.yaml", []byte(exampleTopology))
	if err != nil {
		fmt.Println(err)
		return
	}
	d := broker.NewDeclarer(conn) // or: warren topology apply
	defer d.Close(context.Background())
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		for _, q := range topo.Queues {
			_, _ = d.DeleteQueue(context.Background(), q.Name, false)
		}
	}()

	// The car and card services (step handlers should be idempotent: an
	// inbox, package inbox).
	mux := worker.NewMux()
	mux.Handle("car.reserve", worker.TypedResult(func(_ context.Context, _ *worker.Job, o Order) (string, error) {
		return "car-7", nil
	}))
	mux.Handle("car.release", worker.Typed(func(context.Context, *worker.Job, Order) error { return nil }))
	mux.Handle("card.charge", worker.TypedResult(func(_ context.Context, _ *worker.Job, o Order) (string, error) {
		return "charge-" + o.Trip, nil
	}))
	services, err := worker.NewPool(conn, topo, mux, worker.WithQueue("example.saga.cars"), worker.WithQueue("example.saga.cards"))
	if err != nil {
		fmt.Println(err)
		return
	}

	def, err := bookTrip()
	if err != nil {
		fmt.Println(err)
		return
	}
	coord, err := saga.NewCoordinator(db, conn, topo, saga.WithReplyQueue("example.saga.replies"))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := coord.Register(def); err != nil {
		fmt.Println(err)
		return
	}
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 2)
	go func() { ran <- services.Run(rctx) }()
	go func() { ran <- coord.Run(rctx) }() // or daemon.Run(ctx, pool, coord)
	defer func() { stop(); <-ran; <-ran }()

	if err := saga.StartTx(ctx, coord, def, "trip-42", Booking{Trip: "trip-42"}); err != nil {
		fmt.Println(err)
		return
	}
	for {
		in, err := saga.Get(ctx, db, "trip-42")
		if err != nil {
			fmt.Println(err)
			return
		}
		if in.Status.Ended() {
			fmt.Println(in.Status, string(in.State))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Output:
	// completed {"car": "car-7", "trip": "trip-42", "charge": "charge-trip-42"}
}

// exampleDB returns a pool on a schema of the example's own, dropped by
// done.
func exampleDB(ctx context.Context) (*pgxpool.Pool, func(), error) {
	u := os.Getenv("DATABASE_URL")
	if u == "" {
		u = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	schema := fmt.Sprintf("example_saga_%d", time.Now().UnixNano())
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if _, err := db.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, func() {
		_, _ = db.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	}, nil
}

// A Coordinator runs in a service's daemon: daemon.Run(ctx, pool, coord).
var _ daemon.Service = (*saga.Coordinator)(nil)
