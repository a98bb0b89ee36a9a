package batch_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/batch"
	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// A report of three pages rendered as a batch: the pages run in any
// order, on any worker, and the report is assembled once, when the last
// has ended; one page fails, and the callback says which.
func ExamplePublish() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		dbURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	amqpURL := os.Getenv("AMQP_URL")
	if amqpURL == "" {
		amqpURL = broker.DefaultURL
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "example_batch"
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	defer db.Exec(context.Background(), `DROP SCHEMA example_batch CASCADE`)
	if _, err := db.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS example_batch`); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := batch.Migrate(ctx, db); err != nil { // at deploy time: warren batch migrate
		fmt.Println(err)
		return
	}
	conn, err := broker.Dial(ctx, []string{amqpURL}, broker.WithName("example-batch"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.batch: {type: direct, auto_delete: true}
queues:
  example.batch.reports: {type: classic, expires: 1m, dead_letter: false}
bindings:
  - {exchange: example.batch, queue: example.batch.reports, routing_keys: [page.render, report.assemble]}
routes:
  page.render: {exchange: example.batch}
  report.assemble: {exchange: example.batch}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	d := broker.NewDeclarer(conn)
	defer d.Close(ctx)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		fmt.Println(err)
		return
	}

	// The workers: pages, and the callback. The finisher counts the pages.
	done := make(chan struct{})
	mux := worker.NewMux()
	mux.HandleFunc("page.render", func(ctx context.Context, job *worker.Job) error {
		var page int
		if err := job.Decode(&page); err != nil {
			return err
		}
		if page == 2 {
			return worker.Permanent(errors.New("page 2: font missing"))
		}
		return nil
	})
	mux.Handle("report.assemble", worker.Typed(func(ctx context.Context, job *worker.Job, r batch.Result) error {
		var report string
		if err := r.DecodePayload(&report); err != nil {
			return err
		}
		fmt.Printf("%s: %d pages, %d rendered, %d failed: %s\n", report, r.Total, r.Succeeded, r.Failed, r.Failures[0].Error)
		close(done)
		return nil
	}))
	fin, err := batch.NewFinisher(db)
	if err != nil {
		fmt.Println(err)
		return
	}
	pool, err := worker.NewPool(conn, topo, mux, worker.WithFinisher(fin))
	if err != nil {
		fmt.Println(err)
		return
	}
	relay, err := outbox.NewRelay(db, conn)
	if err != nil {
		fmt.Println(err)
		return
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 2)
	go func() { ran <- pool.Run(rctx) }()
	go func() { ran <- relay.Run(rctx) }()

	// The batch, in the service's transaction.
	pages := []broker.Job{{Type: "page.render", Payload: 1}, {Type: "page.render", Payload: 2}, {Type: "page.render", Payload: 3}}
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		_, err := batch.Publish(ctx, tx, topo, pages, broker.Job{Type: "report.assemble", Payload: "report-7"})
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
		fmt.Println("no callback")
	}
	stop()
	for range 2 {
		if err := <-ran; err != nil && !errors.Is(err, context.Canceled) {
			fmt.Println(err)
		}
	}
	// Output:
	// report-7: 3 pages, 2 rendered, 1 failed: page 2: font missing
}
