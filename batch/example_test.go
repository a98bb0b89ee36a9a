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

const exampleTopology = `version: 1
exchanges:
  example.batch: {type: direct}
queues:
  example.batch.images: {type: quorum, retry: {max_attempts: 1}}
bindings:
  - {exchange: example.batch, queue: example.batch.images, routing_keys: [image.resize, images.resized]}
routes:
  image.resize: {exchange: example.batch}
  images.resized: {exchange: example.batch}
`

// Image is the example's job payload.
type Image struct {
	Name string `msgpack:"name"`
}

// A service resizes three images at once and learns, in one callback, how
// the batch went. The pool that runs the images has the batches'
// Finisher; the relay sends the jobs and the callback from the outbox.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, done, err := exampleDB(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	if _, err := batch.Migrate(ctx, db); err != nil { // once, at deploy time: warren batch migrate
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

	results := make(chan batch.Result, 1)
	mux := worker.NewMux()
	mux.Handle("image.resize", worker.Typed(func(_ context.Context, _ *worker.Job, img Image) error {
		if img.Name == "c.tiff" {
			return worker.Permanent(errors.New("unsupported format"))
		}
		return nil
	}))
	mux.Handle("images.resized", worker.Typed(func(_ context.Context, _ *worker.Job, res batch.Result) error {
		results <- res
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
	ran := make(chan error, 2)
	go func() { ran <- pool.Run(rctx) }()
	go func() { ran <- relay.Run(rctx) }() // or daemon.Run(ctx, pool, relay)
	defer func() { stop(); <-ran; <-ran }()

	var jobs []broker.Job
	for _, name := range []string{"a.png", "b.png", "c.tiff"} {
		jobs = append(jobs, broker.Job{Type: "image.resize", Payload: Image{Name: name}})
	}
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		_, err := batch.Publish(ctx, tx, jobs, broker.Job{Type: "images.resized"}, batch.Router(topo))
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	select {
	case res := <-results:
		fmt.Printf("%d jobs: %d succeeded, %d failed\n", res.Total, res.Succeeded, res.Failed)
		for _, f := range res.Failures {
			fmt.Printf("%s %s (%s): %s\n", f.Type, f.Status, f.Class, f.Error)
		}
	case <-ctx.Done():
		fmt.Println("no callback")
	}
	// Output:
	// 3 jobs: 2 succeeded, 1 failed
	// image.resize dead-lettered (permanent): unsupported format
}

// A batch is checked before anything is written.
func ExamplePublish_invalid() {
	ctx := context.Background()
	var tx pgx.Tx // the caller's transaction; nothing is written to it here
	_, err := batch.Publish(ctx, tx, nil, broker.Job{Type: "images.resized"})
	fmt.Println(errors.Is(err, batch.ErrInvalid), err)
	// Output:
	// true batch: invalid batch: no job; give Publish at least one
}

// exampleDB returns a pool on a schema of the example's own, dropped by
// done.
func exampleDB(ctx context.Context) (*pgxpool.Pool, func(), error) {
	u := os.Getenv("DATABASE_URL")
	if u == "" {
		u = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	schema := fmt.Sprintf("example_batch_%d", time.Now().UnixNano())
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
