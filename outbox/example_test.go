package outbox_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/daemon"
	"github.com/warrenmq/warren/outbox"
)

// Order is the example's aggregate.
type Order struct {
	ID    string `msgpack:"id"`
	Total int    `msgpack:"total"`
}

// An order and its order.placed job are written in one transaction: the
// job is published if, and only if, the order is stored. The relay runs
// next to the producer (or in the worker daemons) and publishes the job
// after the commit.
func ExamplePublish() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		dbURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "example_outbox"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	defer pool.Exec(context.Background(), `DROP SCHEMA example_outbox CASCADE`)
	if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS example_outbox;
		CREATE TABLE IF NOT EXISTS example_outbox.orders (id text PRIMARY KEY, total int)`); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := outbox.Migrate(ctx, pool); err != nil { // once, at deploy time: warren outbox migrate
		fmt.Println(err)
		return
	}

	conn, err := broker.Dial(ctx, []string{"amqp://guest:guest@127.0.0.1:5672/"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	order := Order{ID: "o-1001", Total: 4200}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO orders (id, total) VALUES ($1, $2)`, order.ID, order.Total); err != nil {
			return err
		}
		// To a queue by name here; outbox.Router(topo) routes by the
		// topology's routes instead. The key keeps one order's jobs in
		// sequence.
		return outbox.Publish(ctx, tx, broker.Job{Type: "order.placed", Payload: order},
			outbox.To("", "example.orders"), outbox.OrderingKey(order.ID))
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	relay, err := outbox.NewRelay(pool, conn)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = relay.Run // go relay.Run(ctx), or daemon.Run(ctx, pool, relay)

	s, err := outbox.ReadStats(ctx, pool)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("waiting to be sent:", s.Backlog)
	// Output:
	// waiting to be sent: 1
}

// A Relay runs in a worker daemon next to the pool: daemon.Run(ctx, pool, relay).
var _ daemon.Service = (*outbox.Relay)(nil)
