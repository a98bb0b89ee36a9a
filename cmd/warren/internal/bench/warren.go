package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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

// benchTopology is the run's topology file: one exchange, one queue, one
// route. warren derives the queue's dead-letter queue (<queue>.dlq) and the
// shared warren.* entities from it.
const benchTopology = `version: 1
exchanges:
  %[1]s:
    type: direct
queues:
  %[1]s:
    type: %[2]s
bindings:
  - exchange: %[1]s
    queue: %[1]s
    routing_key: %[3]s
routes:
  %[3]s:
    exchange: %[1]s
`

// benchQueue is a run's own queue: its topology, applied, and how to
// delete what it declared (the queue, its dead-letter queue, the
// exchange; the warren.* entities derived with them are shared and stay).
type benchQueue struct {
	name string
	topo *topology.Topology
}

// applyBenchQueue parses and declares the one-queue topology of a run.
func applyBenchQueue(ctx context.Context, cfg Config, conn *broker.Conn, impl, jobType string) (*benchQueue, error) {
	name := uniqueName(impl, cfg.QueueType)
	topo, err := topology.Parse("bench.yaml", fmt.Appendf(nil, benchTopology, name, cfg.QueueType, jobType))
	if err != nil {
		return nil, fmt.Errorf("the generated topology: %w", err)
	}
	bq := &benchQueue{name: name, topo: topo}
	decl := broker.NewDeclarer(conn)
	_, err = topology.Declare(ctx, decl, topo)
	if err = errors.Join(err, decl.Close(ctx)); err != nil {
		return bq, err
	}
	return bq, nil
}

// delete removes what the run declared.
func (bq *benchQueue) delete(url string) error {
	return deleteEntities(url, []string{bq.name, topology.DeadLetterQueueName(bq.name), topology.QuarantineQueueName(bq.name)}, []string{bq.name})
}

func runWarren(ctx context.Context, cfg Config, rec *Recorder) (err error) {
	pubConn, err := broker.Dial(ctx, []string{cfg.URL}, broker.WithName("warren-bench-publisher"))
	if err != nil {
		return err
	}
	defer pubConn.Close()
	bq, err := applyBenchQueue(ctx, cfg, pubConn, ImplWarren, JobType)
	if bq != nil {
		// Deferred after the close, so it runs before.
		defer func() { err = errors.Join(err, bq.delete(cfg.URL)) }()
	}
	if err != nil {
		return err
	}
	queue, topo := bq.name, bq.topo
	conConn, err := broker.Dial(ctx, []string{cfg.URL}, broker.WithName("warren-bench-consumer"))
	if err != nil {
		return err
	}
	defer conConn.Close()

	pub, err := broker.NewPublisher(pubConn, broker.WithRouter(topo), broker.WithBatchWindow(PublishWindow))
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
	snd, err := broker.NewSender(pubConn)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, snd.Close(cctx))
	}()

	handler := worker.Typed(func(_ context.Context, _ *worker.Job, p Payload) error {
		rec.Handled(p.Seq, p.SentAt)
		return nil
	})
	pool, err := worker.NewPool(conConn, topo, handler,
		worker.WithQueue(queue, worker.Concurrency(cfg.Concurrency), worker.Prefetch(cfg.Prefetch)),
		worker.WithSender(snd))
	if err != nil {
		return err
	}
	// Shutdown order: stop the pool (it drains and acks what it handled)
	// before the publisher and the connections close (deferred above). A
	// pool that stops on its own fails the run.
	poolCtx, stopPool := context.WithCancel(ctx)
	poolDone := make(chan error, 1)
	go func() {
		err := pool.Run(poolCtx)
		if poolCtx.Err() == nil {
			rec.Fail(fmt.Errorf("the pool stopped before every job was handled: %w", cmp.Or(err, errors.New("Run returned nil"))))
		}
		poolDone <- err
	}()
	defer func() {
		if stopPool != nil {
			stopPool()
			<-poolDone
		}
	}()

	// Publish in calls of warrenBatch jobs; the payload is stamped when
	// the publisher encodes it, right before it goes on the wire.
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
			jobs[i] = broker.Job{Type: JobType, Payload: stampedPayload{seq: start + i, data: data}}
		}
		if err := pub.PublishBatch(ctx, jobs); err != nil {
			return err
		}
	}
	rec.Published()

	if err := rec.Wait(ctx); err != nil {
		return err
	}
	stop := stopPool
	stopPool = nil
	stop()
	if err := <-poolDone; err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	rec.Stop()
	return nil
}
