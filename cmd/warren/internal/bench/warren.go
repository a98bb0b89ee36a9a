package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// warrenBatch is how many jobs each PublishBatch call gets: one window.
// PublishBatch pipelines a call's jobs through a sliding window of
// PublishWindow and waits for all their confirms before returning, so the
// window empties at the end of each call, which the baseline's never does.
// Calls of 8 windows measured the same within noise (50k jobs, classic
// and quorum, a few runs each), so the simplest use is the one measured.
const warrenBatch = PublishWindow

// RunWarren runs the workload of cfg.Mode through warren's API and
// measures it: broker.Publisher and worker.Pool for ModeJobs,
// broker.Caller and worker.Pool for ModeRPC.
func RunWarren(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Mode == ModeRPC {
		return MeasureCalls(ctx, ImplWarren, cfg, warrenRPC)
	}
	return Measure(ctx, ImplWarren, cfg, runWarren)
}

// benchTopology returns the topology file of a run: one direct exchange
// named name, queues of queueType bound to it, queue i with keys[i], and a
// route for each key, which is also the job type. warren derives each
// queue's dead-letter queue (<queue>.dlq) and the shared warren.* entities
// from it.
func benchTopology(name, queueType string, queues, keys []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nexchanges:\n  %s:\n    type: direct\nqueues:\n", name)
	for _, q := range queues {
		fmt.Fprintf(&b, "  %s:\n    type: %s\n", q, queueType)
	}
	b.WriteString("bindings:\n")
	for i, q := range queues {
		fmt.Fprintf(&b, "  - exchange: %s\n    queue: %s\n    routing_key: %s\n", name, q, keys[i])
	}
	b.WriteString("routes:\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s:\n    exchange: %s\n", k, name)
	}
	return b.String()
}

// benchQueue is a run's own queues: their topology, and how to delete
// what it declared (the queues, their dead-letter and quarantine queues,
// the exchange; the warren.* entities derived with them are shared and
// stay).
type benchQueue struct {
	name   string
	queues []string
	keys   []string
	topo   *topology.Topology
}

// parseBenchQueue builds the topology of a run named name with n queues
// of queueType, without declaring it.
func parseBenchQueue(name, queueType string, n int, keys []string) (*benchQueue, error) {
	queues := queueNames(name, n)
	topo, err := topology.Parse("bench.yaml", []byte(benchTopology(name, queueType, queues, keys)))
	if err != nil {
		return nil, fmt.Errorf("the generated topology: %w", err)
	}
	return &benchQueue{name: name, queues: queues, keys: keys, topo: topo}, nil
}

// applyBenchQueue parses and declares the topology of a run: cfg.Queues
// queues (one for ModeRPC) with the routing keys keys.
func applyBenchQueue(ctx context.Context, cfg Config, conn *broker.Conn, impl string, keys []string) (*benchQueue, error) {
	bq, err := parseBenchQueue(uniqueName(impl, cfg.QueueType), cfg.QueueType, len(keys), keys)
	if err != nil {
		return nil, err
	}
	decl := broker.NewDeclarer(conn)
	_, err = topology.Declare(ctx, decl, bq.topo)
	if err = errors.Join(err, decl.Close(ctx)); err != nil {
		return bq, err
	}
	return bq, nil
}

// delete removes what the run declared.
func (bq *benchQueue) delete(url string) error {
	var queues []string
	for _, q := range bq.queues {
		queues = append(queues, q, topology.DeadLetterQueueName(q), topology.QuarantineQueueName(q))
	}
	return deleteEntities(url, queues, []string{bq.name})
}

// warrenConsumer is warren's consumer side: one worker.Pool consuming
// every queue, each with cfg.Concurrency handlers and prefetch
// cfg.Prefetch.
type warrenConsumer struct {
	stopPool context.CancelFunc // nil once stopped
	poolDone chan error
}

// startWarrenConsumer starts the pool on conn, its retries and dead
// letters going through snd (nil: the pool's own sender on conn). A pool
// that stops on its own fails the run.
func startWarrenConsumer(ctx context.Context, conn *broker.Conn, snd *broker.Sender, bq *benchQueue, cfg Config, s sink) (*warrenConsumer, error) {
	handler := worker.Typed(func(_ context.Context, _ *worker.Job, p Payload) error {
		s.Handled(p.Seq, p.SentAt)
		return nil
	})
	var opts []worker.Option
	if snd != nil {
		opts = append(opts, worker.WithSender(snd))
	}
	for _, q := range bq.queues {
		opts = append(opts, worker.WithQueue(q, worker.Concurrency(cfg.Concurrency), worker.Prefetch(cfg.Prefetch)))
	}
	pool, err := worker.NewPool(conn, bq.topo, handler, opts...)
	if err != nil {
		return nil, err
	}
	poolCtx, stopPool := context.WithCancel(ctx)
	c := &warrenConsumer{stopPool: stopPool, poolDone: make(chan error, 1)}
	go func() {
		err := pool.Run(poolCtx)
		if poolCtx.Err() == nil {
			s.Fail(fmt.Errorf("the pool stopped before every job was handled: %w", cmp.Or(err, errors.New("Run returned nil"))))
		}
		c.poolDone <- err
	}()
	if err := awaitReady(ctx, pool, c.poolDone); err != nil {
		c.abort()
		return nil, err
	}
	return c, nil
}

// awaitReady returns once pool consumes every queue, as the baseline's
// Consume returns once the broker registered its consumer: jobs published
// before then would wait in the queue, and the run would measure the
// pool's start, not its work. It fails if the pool stops first (what Run
// returned is put back in poolDone) or ctx ends.
func awaitReady(ctx context.Context, pool *worker.Pool, poolDone chan error) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		err := pool.Ready()
		if err == nil {
			return nil
		}
		select {
		case runErr := <-poolDone:
			poolDone <- runErr
			return fmt.Errorf("the pool stopped before it consumed every queue: %w", cmp.Or(runErr, err))
		case <-ctx.Done():
			return fmt.Errorf("waiting for the pool to consume (%w): %w", err, ctx.Err())
		case <-tick.C:
		}
	}
}

// stop stops the pool, which drains and acks what it handled.
func (c *warrenConsumer) stop() error {
	if c.stopPool == nil {
		return nil
	}
	stop := c.stopPool
	c.stopPool = nil
	stop()
	if err := <-c.poolDone; err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	return nil
}

// abort stops the pool of a failed run, if it runs.
func (c *warrenConsumer) abort() { _ = c.stop() }

func runWarren(ctx context.Context, cfg Config, rec *Recorder) (err error) {
	pubConn, err := broker.Dial(ctx, []string{cfg.URL}, broker.WithName("warren-bench-publisher"))
	if err != nil {
		return err
	}
	defer pubConn.Close()
	bq, err := applyBenchQueue(ctx, cfg, pubConn, ImplWarren, routingKeys(cfg.Queues))
	if bq != nil {
		// Deferred after the close, so it runs before.
		defer func() { err = errors.Join(err, bq.delete(cfg.URL)) }()
	}
	if err != nil {
		return err
	}

	pub, err := broker.NewPublisher(pubConn, broker.WithRouter(bq.topo), broker.WithBatchWindow(PublishWindow))
	if err != nil {
		return err
	}
	defer func() {
		// Every job is confirmed by now, unless the run failed: then give
		// the stragglers a moment, not forever.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, pub.Close(cctx))
	}()
	// The pool's retries and dead letters go through a sender on the
	// publishing connection; a worker process's pool has its own.
	snd, err := broker.NewSender(pubConn)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, snd.Close(cctx))
	}()

	// Shutdown order: stop the consumers (a pool drains and acks what it
	// handled) before the publisher and the connections close (deferred
	// above).
	var cons consumerSide
	if cfg.Workers > 0 {
		ws, err := startWorkers(ctx, cfg, workerSpec{Impl: ImplWarren, Name: bq.name}, rec)
		if err != nil {
			return err
		}
		cons = ws
	} else {
		conConn, err := broker.Dial(ctx, []string{cfg.URL}, broker.WithName("warren-bench-consumer"))
		if err != nil {
			return err
		}
		defer conConn.Close()
		wc, err := startWarrenConsumer(ctx, conConn, snd, bq, cfg, rec)
		if err != nil {
			return err
		}
		cons = localConsumer{wc, rec}
	}
	defer cons.abort()

	// Publish in calls of warrenBatch jobs, round-robin over the queues'
	// job types; the payload is stamped when the publisher encodes it,
	// right before it goes on the wire.
	data := rec.Filler()
	jobs := make([]broker.Job, min(warrenBatch, cfg.Jobs))
	rec.Start()
	for start := 0; start < cfg.Jobs; start += len(jobs) {
		if err := rec.failure(); err != nil {
			return err
		}
		jobs = jobs[:min(cap(jobs), cfg.Jobs-start)]
		for i := range jobs {
			// A new Job each time: PublishBatch writes the generated IDs
			// into the slice, and each job needs its own.
			seq := start + i
			jobs[i] = broker.Job{Type: bq.keys[seq%len(bq.keys)], Payload: stampedPayload{seq: seq, data: data}}
		}
		if err := pub.PublishBatch(ctx, jobs); err != nil {
			return err
		}
	}
	rec.Published()

	if err := cons.wait(ctx); err != nil {
		return err
	}
	if err := cons.stop(); err != nil {
		return err
	}
	rec.Stop()
	return nil
}
