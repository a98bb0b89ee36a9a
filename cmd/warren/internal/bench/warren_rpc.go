package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/worker"
)

// warrenRPC is the rpc workload through warren's API, as production code
// would set it up: the topology applied, a worker.Pool answering with
// worker.TypedResult on its own connection, replying through a Publisher on
// a second one (worker.WithSender), and a broker.Caller on a third.
func warrenRPC(ctx context.Context, cfg Config, rec *CallRecorder) (err error) {
	replyConn, err := broker.Dial(ctx, []string{cfg.URL}, broker.WithName("warren-bench-rpc-replies"))
	if err != nil {
		return err
	}
	defer replyConn.Close()
	bq, err := applyBenchQueue(ctx, cfg, replyConn, ImplWarren+".rpc", []string{CallType})
	if bq != nil {
		// Deferred after the close, so it runs before.
		defer func() { err = errors.Join(err, bq.delete(cfg.URL)) }()
	}
	if err != nil {
		return err
	}
	queue, topo := bq.queues[0], bq.topo
	serverConn, err := broker.Dial(ctx, []string{cfg.URL}, broker.WithName("warren-bench-rpc-server"))
	if err != nil {
		return err
	}
	defer serverConn.Close()
	callConn, err := broker.Dial(ctx, []string{cfg.URL}, broker.WithName("warren-bench-rpc-caller"))
	if err != nil {
		return err
	}
	defer callConn.Close()

	pub, err := broker.NewSender(replyConn)
	if err != nil {
		return err
	}
	defer func() {
		// Every reply is confirmed by now, unless the run failed: then give
		// the stragglers a moment, not forever.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, pub.Close(cctx))
	}()

	handler := worker.TypedResult(func(_ context.Context, _ *worker.Job, p Payload) (Answer, error) {
		return Answer{Seq: p.Seq}, nil
	})
	pool, err := worker.NewPool(serverConn, topo, handler,
		worker.WithQueue(queue, worker.Concurrency(cfg.Concurrency), worker.Prefetch(cfg.Prefetch)),
		worker.WithSender(pub))
	if err != nil {
		return err
	}
	// Shutdown order: the caller closes, then the pool stops (it drains
	// and acks what it handled), then the publisher and the connections
	// close (deferred above). A pool that stops on its own fails the run.
	poolCtx, stopPool := context.WithCancel(ctx)
	poolDone := make(chan error, 1)
	go func() {
		err := pool.Run(poolCtx)
		if poolCtx.Err() == nil {
			rec.Fail(fmt.Errorf("the pool stopped before every call was answered: %w", cmp.Or(err, errors.New("Run returned nil"))))
		}
		poolDone <- err
	}()
	defer func() {
		if stopPool != nil {
			stopPool()
			<-poolDone
		}
	}()
	if err := awaitReady(ctx, pool, poolDone); err != nil {
		return err
	}

	caller, err := broker.NewCaller(callConn, callerOptions(cfg, topo)...)
	if err != nil {
		return err
	}
	callerOpen := true
	defer func() {
		if callerOpen {
			_ = caller.Close(context.WithoutCancel(ctx))
		}
	}()
	err = rec.Calls(ctx, func(ctx context.Context, p Payload) (Answer, error) {
		reply, err := caller.Call(ctx, broker.Job{Type: CallType, Payload: p})
		if err != nil {
			return Answer{}, err
		}
		var a Answer
		if err := reply.Decode(&a); err != nil {
			return Answer{}, fmt.Errorf("decode the reply: %w", err)
		}
		return a, nil
	})
	if err != nil {
		return err
	}

	callerOpen = false
	if err := caller.Close(ctx); err != nil {
		return err
	}
	if d := caller.Discarded(); d != 0 {
		return fmt.Errorf("the caller discarded %d replies, though every call was answered", d)
	}
	stop := stopPool
	stopPool = nil
	stop()
	if err := <-poolDone; err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	return nil
}

// callerOptions configures warren's Caller as the run's Config says:
// replies through direct reply-to with DirectReplyTo (else in its reply
// queue, the default), persistent requests with DurableRequests.
func callerOptions(cfg Config, r broker.Router) []broker.CallerOption {
	opts := []broker.CallerOption{broker.WithCallRouter(r)}
	if cfg.DirectReplyTo {
		opts = append(opts, broker.WithCallDirectReplyTo())
	}
	if cfg.DurableRequests {
		opts = append(opts, broker.WithDurableRequests())
	}
	return opts
}
