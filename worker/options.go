package worker

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
)

// Defaults of a Pool.
const (
	// DefaultConcurrency is the number of handlers a queue runs at once
	// when Concurrency is not given.
	DefaultConcurrency = 8
	// DefaultCrashLimit is the number of times a job may kill the worker
	// process running it alone before it is dead-lettered, when
	// WithCrashLimit is not given.
	DefaultCrashLimit = 3
	// DefaultHandlerTimeout bounds one handler call when no timeout is
	// given. It must stay below RabbitMQ's consumer_timeout (30 minutes by
	// default), after which the broker closes the channel of a consumer
	// holding an unacked delivery.
	DefaultHandlerTimeout = 15 * time.Minute
	// DefaultShutdownTimeout is how long Run lets jobs in flight finish
	// after its ctx ends.
	DefaultShutdownTimeout = 30 * time.Second
)

// Option configures NewPool.
type Option func(*options) error

type options struct {
	queues          []queueOptions
	sender          *broker.Sender
	log             zerolog.Logger
	handlerTimeout  time.Duration
	shutdownTimeout time.Duration
	limits          broker.Limits
	host            string
	panics          PanicPolicy
	crashLimit      int
	observers       []Observer
	finishers       []Finisher
	typeLimits      map[string]limit // TypeRateLimit, by job type
	validator       PayloadValidator // WithValidator; nil for none
	// now is the pool's clock, time.Now but in tests. A handler's
	// deadline is read from it too: a test that runs handlers keeps its
	// readings close to the real clock's (a watchdog's timer is real).
	now func() time.Time
}

type queueOptions struct {
	name           string
	concurrency    int
	prefetch       int
	handlerTimeout time.Duration
	limit          limit          // RateLimit; zero for none
	global         limit          // GlobalRateLimit; zero for none
	breaker        *BreakerPolicy // Breaker, defaulted; nil for none
}

// QueueOption configures one queue of a pool.
type QueueOption func(*queueOptions) error

// WithQueue consumes the named work queue of the topology. Without any
// WithQueue, a pool consumes every work queue of its topology with the
// defaults.
func WithQueue(name string, opts ...QueueOption) Option {
	return func(o *options) error {
		q := queueOptions{name: name}
		for _, opt := range opts {
			if err := opt(&q); err != nil {
				return fmt.Errorf("worker: queue %q: %w", name, err)
			}
		}
		for _, prev := range o.queues {
			if prev.name == name {
				return fmt.Errorf("worker: queue %q is given twice", name)
			}
		}
		o.queues = append(o.queues, q)
		return nil
	}
}

// Concurrency sets how many handlers run at once for the queue (default
// DefaultConcurrency). Never more run.
func Concurrency(n int) QueueOption {
	return func(q *queueOptions) error {
		if n < 1 || n > 10000 {
			return fmt.Errorf("concurrency %d must be from 1 to 10000", n)
		}
		q.concurrency = n
		return nil
	}
}

// Prefetch sets how many deliveries the broker sends the queue's consumer
// ahead of the handlers (default twice the concurrency; at least the
// concurrency, or handlers would wait for work the broker holds back).
func Prefetch(n int) QueueOption {
	return func(q *queueOptions) error {
		if n < 1 || n > 65535 {
			return fmt.Errorf("prefetch %d must be from 1 to 65535", n)
		}
		q.prefetch = n
		return nil
	}
}

// HandlerTimeout bounds each handler call for the queue, overriding the
// pool's WithHandlerTimeout.
func HandlerTimeout(d time.Duration) QueueOption {
	return func(q *queueOptions) error {
		if d <= 0 {
			return fmt.Errorf("handler timeout %s must be positive", d)
		}
		q.handlerTimeout = d
		return nil
	}
}

// WithSender sets the sender retries, dead letters, quarantined jobs and
// replies go through; the observers of its connection (broker.WithObserver)
// see them. Give it a connection of its own: a broker under a
// resource alarm blocks publishing connections, and the consumers' acks
// must not wait for it. Default: a sender on the pool's connection, closed
// with the pool.
func WithSender(s *broker.Sender) Option {
	return func(o *options) error {
		if s == nil {
			return errors.New("worker: WithSender: nil sender")
		}
		o.sender = s
		return nil
	}
}

// WithLogger sets the pool's logger (default: none). Jobs are logged at
// debug level, failures at warn and error, the lifecycle at info.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// WithHandlerTimeout bounds each handler call (default
// DefaultHandlerTimeout): the handler's ctx ends then, and an error it
// returns counts as a timeout (retried). Keep it below RabbitMQ's
// consumer_timeout.
func WithHandlerTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("worker: handler timeout %s must be positive", d)
		}
		o.handlerTimeout = d
		return nil
	}
}

// WithShutdownTimeout sets how long Run lets jobs in flight finish once
// its ctx ends (default DefaultShutdownTimeout). Then their ctx is
// cancelled; a job whose handler returns an error then goes back to its
// queue, untouched, for another worker.
func WithShutdownTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("worker: shutdown timeout %s must not be negative", d)
		}
		o.shutdownTimeout = d
		return nil
	}
}

// WithLimits bounds the bodies the pool accepts (default: broker.Limits{},
// 1 MiB and 64 levels of nesting). A larger body is dead-lettered before
// any decoding (class "too-large").
func WithLimits(l broker.Limits) Option {
	return func(o *options) error {
		o.limits = l
		return nil
	}
}

// WithHostname sets the worker host written to the headers of failed jobs
// (default: os.Hostname).
func WithHostname(h string) Option {
	return func(o *options) error {
		o.host = h
		return nil
	}
}

// PanicPolicy says what a handler's panic does to its job.
type PanicPolicy int

const (
	// RetryPanics retries a job whose handler panicked, like any failure
	// (the default).
	RetryPanics PanicPolicy = iota
	// DeadLetterPanics dead-letters it at once.
	DeadLetterPanics
)

// WithPanicPolicy sets what a handler's panic does to its job.
func WithPanicPolicy(p PanicPolicy) Option {
	return func(o *options) error {
		if p != RetryPanics && p != DeadLetterPanics {
			return fmt.Errorf("worker: unknown panic policy %d", p)
		}
		o.panics = p
		return nil
	}
}

// WithCrashLimit sets how many times a job may kill the worker process
// running it alone, in its queue's quarantine, before it is dead-lettered
// with class crash (default DefaultCrashLimit, at least 1). A kill from
// outside, or a lost connection, while a quarantined job runs counts too:
// a limit of 1 parks a job at the first such accident. See quarantine.go.
func WithCrashLimit(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("worker: crash limit %d must be at least 1", n)
		}
		o.crashLimit = n
		return nil
	}
}

func defaultOptions() options {
	host, _ := os.Hostname()
	return options{
		log:             zerolog.Nop(),
		handlerTimeout:  DefaultHandlerTimeout,
		shutdownTimeout: DefaultShutdownTimeout,
		host:            host,
		crashLimit:      DefaultCrashLimit,
		now:             time.Now,
	}
}

// Status is what became of a delivery.
type Status int

const (
	// Succeeded: the handler returned nil; the job was acked.
	Succeeded Status = iota + 1
	// Retried: the job was republished into the delay cascade, then acked.
	Retried
	// DeadLettered: the job was published to the dead-letter queue, then
	// acked.
	DeadLettered
	// Requeued: the job went back to its queue untouched (shutdown, or its
	// retry or dead letter could not be published).
	Requeued
	// Rejected: the job failed for good and its queue has no dead-letter
	// target; the broker dropped it, or dead-lettered it by policy.
	Rejected
	// Expired: the job is a request whose caller stopped waiting
	// (warren-deadline passed) before it started; it was acked unhandled.
	Expired
	// Quarantined: the job was moved to its queue's quarantine, to run
	// alone, then acked: the broker delivered it again after a worker
	// stopped holding it unsettled (a crash, a lost connection), or its
	// worker died while running it alone (a crash was counted).
	Quarantined
)

func (s Status) String() string {
	switch s {
	case Succeeded:
		return "succeeded"
	case Retried:
		return "retried"
	case DeadLettered:
		return "dead-lettered"
	case Requeued:
		return "requeued"
	case Rejected:
		return "rejected"
	case Expired:
		return "expired"
	case Quarantined:
		return "quarantined"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Outcome describes what became of one delivery.
type Outcome struct {
	Queue   string
	JobID   string
	JobType string
	Attempt int
	Status  Status
	// Class and Err are the failure, if any.
	Class string
	Err   error
	// Duration is the handler's run time (zero when no handler ran).
	Duration time.Duration
	// RateWait is how long the delivery waited for its rate limits
	// (RateLimit, TypeRateLimit, GlobalRateLimit) before it started; zero
	// when it did not wait. A job of a limited type counts from when it
	// was set aside to wait until it started, its wait for a free handler
	// included.
	RateWait time.Duration
	// RetryIn is the delay before the next attempt, when Retried.
	RetryIn time.Duration
	// Replied is set when a reply was sent to the job's reply_to.
	Replied bool
}
