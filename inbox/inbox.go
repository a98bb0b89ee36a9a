package inbox

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/rs/zerolog"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
	"github.com/warrenmq/warren/worker"
)

// Store records the jobs a consumer processed. Implementations: package
// pginbox (PostgreSQL, the record in the handler's transaction), package
// redisinbox (Redis, with a lease), and Memory.
type Store interface {
	// Claim claims jobID for consumer before its handler runs. It returns
	// ErrProcessed when the job was processed before, ErrBusy when another
	// worker holds it now, or the ctx the handler runs with (a store may
	// put its transaction in it) and a Claim to settle once the handler
	// returns.
	Claim(ctx context.Context, consumer, jobID string) (context.Context, Claim, error)
}

// Claim is a job claimed from a Store, settled once: Commit after the
// handler succeeded, Rollback after it failed. Rollback after Commit does
// nothing, so it can be deferred. A Claim that is also a ResultClaim
// keeps the handler's result.
type Claim interface {
	// Commit records the job as processed (with the handler's own writes,
	// where the store shares its transaction). An error means the record
	// may not have been written: the job is retried, and skipped then if
	// it was.
	Commit(ctx context.Context) error
	// Rollback gives the claim up (and the handler's writes, where the
	// store shares its transaction), so that a retry runs the job again.
	Rollback(ctx context.Context) error
}

// ResultClaim is a Claim that keeps the handler's result with the job's
// record, so that a later delivery of the job, skipped, gets it too: a
// request's duplicate is answered with the same reply, and a chain's step
// goes on with the same result (package workflow). Claim then returns a
// *ProcessedError holding it. Every store of warren's is one.
type ResultClaim interface {
	Claim
	// CommitResult is Commit, keeping result (MessagePack) with the
	// record.
	CommitResult(ctx context.Context, result []byte) error
}

// Option configures New.
type Option func(*options) error

type options struct {
	log zerolog.Logger
}

// WithLogger sets the logger (default: none). A skipped duplicate is
// logged at Debug.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// Inbox is the idempotent-consumer middleware of one consumer: install
// Middleware on a worker.Mux (Use) or around one handler.
type Inbox struct {
	store    Store
	consumer string
	log      zerolog.Logger
	skipped  atomic.Int64
}

// MaxConsumerLen is the longest consumer name, in bytes.
const MaxConsumerLen = 200

// New returns the inbox of consumer in store. The consumer name scopes the
// records: a service with several consumers of the same job (say, billing
// and notifications) gives each its own name, so each runs the job once.
// It is 1 to MaxConsumerLen bytes of letters, digits, '.', '_', '-' and
// '/'.
func New(store Store, consumer string, opts ...Option) (*Inbox, error) {
	if store == nil {
		return nil, errors.New("inbox: New: nil store")
	}
	if err := checkConsumer(consumer); err != nil {
		return nil, err
	}
	o := options{log: zerolog.Nop()}
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("inbox: New: nil option")
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return &Inbox{store: store, consumer: consumer, log: o.log}, nil
}

func checkConsumer(name string) error {
	if name == "" || len(name) > MaxConsumerLen {
		return fmt.Errorf("inbox: consumer name %q: give 1 to %d bytes, e.g. the service and handler, \"billing.charge\"", name, MaxConsumerLen)
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-', r == '/':
		default:
			return fmt.Errorf("inbox: consumer name %q: %q is not allowed; use letters, digits, '.', '_', '-' and '/'", name, r)
		}
	}
	return nil
}

// Consumer returns the consumer name.
func (ib *Inbox) Consumer() string { return ib.consumer }

// Skipped returns how many deliveries the inbox skipped as duplicates of a
// job processed before.
func (ib *Inbox) Skipped() int64 { return ib.skipped.Load() }

// Middleware wraps next: a job the consumer processed before is skipped
// (acked without running next); any other is claimed, run by next, and
// recorded as processed when next returns nil. When next fails (or
// panics), the claim is rolled back, with the handler's writes where the
// store shares its transaction, and the job's retry runs it again.
//
// It is a worker.Middleware: mux.Use(ib.Middleware).
func (ib *Inbox) Middleware(next worker.Handler) worker.Handler {
	return worker.HandlerFunc(func(ctx context.Context, job *worker.Job) (err error) {
		hctx, claim, err := ib.store.Claim(ctx, ib.consumer, job.ID)
		switch {
		case errors.Is(err, ErrProcessed):
			ib.skipped.Add(1)
			var pe *ProcessedError
			if errors.As(err, &pe) && pe.Result != nil {
				job.SetResult(msgpack.RawMessage(pe.Result)) // the first run's, for the reply or the chain
			}
			ib.log.Debug().Str(logfield.JobID, job.ID).Str(logfield.JobType, job.Type).Str(logfield.Queue, job.Queue).
				Str(logfield.Consumer, ib.consumer).Msg("inbox: skipped a job processed before")
			return nil
		case err != nil:
			return fmt.Errorf("inbox: consumer %q, job %s: %w", ib.consumer, job.ID, err)
		}
		committed := false
		defer func() {
			if committed {
				return
			}
			// Also after a panic, which goes on to the pool.
			if rerr := claim.Rollback(context.WithoutCancel(ctx)); rerr != nil && err != nil {
				err = fmt.Errorf("%w (and the inbox claim was not rolled back: %v)", err, rerr)
			}
		}()
		if err := next.HandleJob(hctx, job); err != nil {
			return err
		}
		if err := commit(hctx, claim, job); err != nil {
			return fmt.Errorf("inbox: consumer %q, job %s: record the job as processed: %w", ib.consumer, job.ID, err)
		}
		committed = true
		return nil
	})
}

// commit commits claim, with the handler's result when it set one and
// the store keeps results.
func commit(ctx context.Context, claim Claim, job *worker.Job) error {
	rc, ok := claim.(ResultClaim)
	result, set := job.Result()
	if !ok || !set || result == nil {
		return claim.Commit(ctx)
	}
	b, err := broker.EncodePayload(result)
	if err != nil {
		// The pool fails the same way when it sends the result on: the
		// job is recorded, without it.
		return claim.Commit(ctx)
	}
	return rc.CommitResult(ctx, b)
}
