package pginbox_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/worker"
)

func exampleDB(ctx context.Context) (*pgxpool.Pool, func(), error) {
	u := os.Getenv("DATABASE_URL")
	if u == "" {
		u = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db, err := pgxpool.New(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	// A schema of the example's own, dropped at the end.
	schema := fmt.Sprintf("example_pginbox_%d", time.Now().UnixNano())
	if _, err := db.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		return nil, nil, err
	}
	db.Close()
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, nil, err
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	db, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return db, func() {
		db.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	}, nil
}

// The handler writes its effect in the inbox's transaction (Tx): the
// charge and the record that the job was processed commit together, so
// a copy of the job delivered again, after a crash before the ack, is
// skipped and nobody is charged twice.
func ExampleTx() {
	ctx := context.Background()
	db, done, err := exampleDB(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	if _, err := db.Exec(ctx, "CREATE TABLE charges (order_id text, cents int)"); err != nil {
		fmt.Println(err)
		return
	}

	store, err := pginbox.New(db)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := store.Migrate(ctx); err != nil { // or: warren inbox migrate
		fmt.Println(err)
		return
	}
	ib, err := inbox.New(store, "billing.charge")
	if err != nil {
		fmt.Println(err)
		return
	}
	type Charge struct {
		OrderID string `msgpack:"order_id"`
		Cents   int    `msgpack:"cents"`
	}
	mux := worker.NewMux()
	mux.Use(ib.Middleware)
	mux.Handle("charge", worker.Typed(func(ctx context.Context, job *worker.Job, c Charge) error {
		_, err := pginbox.Tx(ctx).Exec(ctx, "INSERT INTO charges VALUES ($1, $2)", c.OrderID, c.Cents)
		return err
	}))

	env, err := broker.NewEnvelope(broker.Job{ID: "job-1", Type: "charge", Payload: Charge{"order-42", 1999}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 2 { // delivered twice
		job := &worker.Job{ID: env.ID, Type: env.Type, Envelope: env}
		if err := mux.HandleJob(ctx, job); err != nil {
			fmt.Println(err)
		}
	}
	var n int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM charges").Scan(&n); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("charges:", n, "skipped:", ib.Skipped())
	// Output: charges: 1 skipped: 1
}
