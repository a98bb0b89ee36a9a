package outbox

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of a Relay.
const (
	DefaultBatchSize    = 100
	DefaultPollInterval = time.Second
	DefaultBatchTimeout = 30 * time.Second
)

// Option configures NewRelay. Options can fail: a bad value is an error
// from NewRelay.
type Option func(*options) error

type options struct {
	log          zerolog.Logger
	batch        int
	poll         time.Duration
	listen       bool
	retention    time.Duration
	cleanup      time.Duration
	statsEvery   time.Duration
	batchTimeout time.Duration
	retryMin     time.Duration
	retryMax     time.Duration
	observer     Observer
	appID        string

	// hook is called at points of a batch (tests only: see export_test.go).
	hook func(stage string, n int)
}

func defaultOptions() options {
	return options{
		log:          zerolog.Nop(),
		batch:        DefaultBatchSize,
		poll:         DefaultPollInterval,
		listen:       true,
		retention:    DefaultRetention,
		cleanup:      time.Minute,
		statsEvery:   10 * time.Second,
		batchTimeout: DefaultBatchTimeout,
		retryMin:     time.Second,
		retryMax:     5 * time.Minute,
		appID:        "warren",
	}
}

// WithLogger sets the relay's logger (default: none). Each job sent is
// logged at Debug, failures at Warn, start and stop at Info.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// WithBatchSize sets how many rows a relay claims in one transaction and
// publishes with their confirms outstanding at once (default 100, at most
// 10000).
func WithBatchSize(n int) Option {
	return func(o *options) error {
		if n < 1 || n > 10_000 {
			return fmt.Errorf("outbox: batch size %d must be 1 to 10000", n)
		}
		o.batch = n
		return nil
	}
}

// WithPollInterval sets how often an idle relay looks for rows (default
// 1s). With LISTEN (the default) a commit wakes it at once; the poll is
// the backstop and what brings back rows waiting for a retry.
func WithPollInterval(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("outbox: poll interval %s must be above 0", d)
		}
		o.poll = d
		return nil
	}
}

// WithoutListen makes the relay poll only, without LISTEN: for a
// connection pooler in transaction mode (PgBouncer), which cannot LISTEN.
func WithoutListen() Option {
	return func(o *options) error {
		o.listen = false
		return nil
	}
}

// WithRetention sets how long sent rows are kept, for audit, before the
// relay deletes them (default DefaultRetention, 7 days); 0 keeps them for
// ever. The relay deletes once a minute.
func WithRetention(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("outbox: retention %s must not be negative (0: keep for ever)", d)
		}
		o.retention = d
		return nil
	}
}

// WithStatsInterval sets how often the relay reads the backlog and lag
// for its observer (default 10s).
func WithStatsInterval(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("outbox: stats interval %s must be above 0", d)
		}
		o.statsEvery = d
		return nil
	}
}

// WithBatchTimeout bounds one batch: claiming, publishing, waiting for the
// confirms and marking (default 30s). A batch that runs out is rolled
// back and its rows claimed again later; those the broker already had are
// then sent twice, with the same ids. Run lets the batch in progress
// finish within this time when its context ends.
func WithBatchTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("outbox: batch timeout %s must be above 0", d)
		}
		o.batchTimeout = d
		return nil
	}
}

// WithRetryBackoff sets the wait before a row that failed to publish is
// tried again: min after the first failure, doubling with each failure, up
// to max (default 1s to 5m), with ±20% jitter.
func WithRetryBackoff(min, max time.Duration) Option {
	return func(o *options) error {
		if min <= 0 || max < min {
			return fmt.Errorf("outbox: retry backoff %s to %s: give 0 < min <= max", min, max)
		}
		o.retryMin, o.retryMax = min, max
		return nil
	}
}

// WithObserver tells obs what the relay does; *metrics.Metrics is one.
func WithObserver(obs Observer) Option {
	return func(o *options) error {
		if obs == nil {
			return errors.New("outbox: WithObserver: nil observer")
		}
		o.observer = obs
		return nil
	}
}

// WithAppID sets the app_id property of the jobs the relay sends (default
// "warren"): name the producing service.
func WithAppID(id string) Option {
	return func(o *options) error {
		if len(id) > 255 {
			return errors.New("outbox: WithAppID: at most 255 bytes")
		}
		o.appID = id
		return nil
	}
}

// Observer hears what a relay does. Its methods are called from the
// relay's goroutine and must not block.
type Observer interface {
	// OutboxBatch reports a batch the relay published and committed:
	// rows sent, rows that failed (to be tried again after a backoff),
	// and for each sent row its delay from being written to being marked
	// sent.
	OutboxBatch(sent, failed int, delays []time.Duration)
	// OutboxStats reports the outbox's backlog and lag, read every stats
	// interval.
	OutboxStats(s Stats)
	// OutboxDeleted reports sent rows deleted past the retention.
	OutboxDeleted(n int64)
}
