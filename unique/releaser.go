package unique

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
	"github.com/warrenmq/warren/worker"
)

// DefaultReleaseTimeout bounds one release of a key in the store.
const DefaultReleaseTimeout = 10 * time.Second

// ReleaserOption configures NewReleaser.
type ReleaserOption func(*Releaser) error

// WithLogger sets the Releaser's logger (default: none). A key that could
// not be released is logged at Warn; it expires after its TTL.
func WithLogger(l zerolog.Logger) ReleaserOption {
	return func(r *Releaser) error {
		r.log = l
		return nil
	}
}

// WithReleaseTimeout bounds one release (default DefaultReleaseTimeout).
func WithReleaseTimeout(d time.Duration) ReleaserOption {
	return func(r *Releaser) error {
		if d <= 0 {
			return fmt.Errorf("unique: WithReleaseTimeout(%s): give a positive duration", d)
		}
		r.timeout = d
		return nil
	}
}

// Releaser releases the unique key of each job a worker pool settles for
// good: succeeded, dead-lettered, rejected or expired (worker.Status). A
// job retried, requeued or quarantined keeps its key. It is a
// worker.Observer: give it to every pool that runs unique jobs, with
// worker.WithObserver.
type Releaser struct {
	store   Store
	log     zerolog.Logger
	timeout time.Duration
}

// NewReleaser returns the Releaser of the keys in store.
func NewReleaser(store Store, opts ...ReleaserOption) (*Releaser, error) {
	if store == nil {
		return nil, errors.New("unique: NewReleaser: nil store")
	}
	r := &Releaser{store: store, log: zerolog.Nop(), timeout: DefaultReleaseTimeout}
	for _, opt := range opts {
		if opt == nil {
			return nil, errors.New("unique: NewReleaser: nil option")
		}
		if err := opt(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Final reports whether a job settled with status is done for good, which
// releases its key.
func Final(status worker.Status) bool {
	switch status {
	case worker.Succeeded, worker.DeadLettered, worker.Rejected, worker.Expired:
		return true
	}
	return false
}

// Job is worker.Observer's: for a job with a unique key, it returns a func
// releasing the key once the job is settled for good. The release runs in
// the goroutine that handled the job, after its settlement.
func (r *Releaser) Job(ctx context.Context, job *worker.Job, _ worker.Source) (context.Context, func(worker.Outcome)) {
	if job.Envelope == nil {
		return ctx, nil
	}
	key, _ := job.Envelope.Headers[broker.HeaderUniqueKey].(string)
	if key == "" {
		return ctx, nil
	}
	id := job.ID
	return ctx, func(o worker.Outcome) {
		if !Final(o.Status) {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
		defer cancel()
		if err := r.store.Release(rctx, key, id); err != nil {
			r.log.Warn().Err(err).Str(logfield.UniqueKey, key).Str(logfield.JobID, id).Str(logfield.Status, o.Status.String()).
				Msg("unique: the key of a finished job was not released; it expires after its TTL")
			return
		}
		r.log.Debug().Str(logfield.UniqueKey, key).Str(logfield.JobID, id).Str(logfield.Status, o.Status.String()).Msg("unique: key released")
	}
}
