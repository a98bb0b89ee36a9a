package topology

import (
	"context"
	"time"
)

// This file is the contract between the topology package and the code that
// talks to a broker. A Topology is resolved: every entity in it, including the
// ones warren derives for retries and dead letters, carries the exact AMQP
// arguments it will be declared with.

// Exchange kinds RabbitMQ knows without plugins.
const (
	KindDirect  = "direct"
	KindFanout  = "fanout"
	KindTopic   = "topic"
	KindHeaders = "headers"
)

// Queue types.
const (
	Classic = "classic"
	Quorum  = "quorum"
)

// Table holds AMQP arguments. Values are only string, bool, int64 or float64
// (never a plain int: amqp091-go writes int as a 32-bit field), or nested
// []any / map[string]any of those.
type Table map[string]any

// Pos locates an entity in the file it came from. Zero for derived entities.
type Pos struct {
	File   string
	Line   int
	Column int
}

// Exchange is an exchange to declare.
type Exchange struct {
	Name       string
	Kind       string
	Durable    bool
	AutoDelete bool
	Internal   bool
	Args       Table // e.g. "alternate-exchange"
	Derived    bool  // created by warren, not written in the file
	Pos        Pos
}

// Queue is a queue to declare.
type Queue struct {
	Name       string
	Type       string // Classic or Quorum
	Durable    bool
	AutoDelete bool
	Exclusive  bool
	Args       Table // includes "x-queue-type"
	Derived    bool
	// DeadLetterExchange and DeadLetterRoutingKey are where failed jobs of
	// this queue are parked, by warren's workers and by the broker alike
	// (x-dead-letter-exchange / x-dead-letter-routing-key). Empty exchange:
	// the queue has no dead-letter target.
	DeadLetterExchange   string
	DeadLetterRoutingKey string
	// DeadLetterQueue is the queue warren derived to hold this queue's dead
	// letters ("<name>.dlq"); empty when the file names its own target or
	// turns dead-lettering off.
	DeadLetterQueue string
	// QuarantineQueue is the queue warren derived to hold this queue's
	// suspect jobs ("<name>.quarantine"): jobs the broker delivered again
	// after a worker died holding them, which workers run one at a time,
	// alone, until the one that kills them is known (see package worker).
	// Empty for derived queues.
	QuarantineQueue string
	// Retry is the queue's retry policy; nil for derived queues.
	Retry *RetryPolicy
	Pos   Pos
}

// Binding routes messages from an exchange to a queue or another exchange.
type Binding struct {
	Exchange   string // source
	Queue      string // destination queue; empty when ToExchange is set
	ToExchange string // destination exchange; empty when Queue is set
	RoutingKey string
	Args       Table // header-match arguments ("x-match", ...)
	Derived    bool
	Pos        Pos
}

// Declarer is what Declare needs from a broker connection; broker.Conn
// provides one. Implementations report an entity that exists with different
// attributes (RabbitMQ's 406 PRECONDITION_FAILED) as a *ConflictError.
type Declarer interface {
	// ExchangeExists and QueueExists check by passive declaration.
	ExchangeExists(ctx context.Context, name string) (bool, error)
	QueueExists(ctx context.Context, name string) (bool, error)
	DeclareExchange(ctx context.Context, x Exchange) error
	DeclareQueue(ctx context.Context, q Queue) error
	Bind(ctx context.Context, b Binding) error
}

// ConflictError reports an entity that already exists on the broker with
// attributes that differ from the file's. RabbitMQ never changes an existing
// queue's or exchange's identity attributes in place.
type ConflictError struct {
	Kind     string // "exchange" or "queue"
	Name     string
	Argument string // the differing argument as RabbitMQ names it, e.g. "x-queue-type"; may be empty
	Reason   string // the broker's text
}

func (e *ConflictError) Error() string {
	msg := "topology: " + e.Kind + " " + quote(e.Name) + " already exists with different attributes"
	if e.Argument != "" {
		msg += " (argument " + quote(e.Argument) + ")"
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg + "; delete it (losing its messages) or change the file to match, then apply again"
}

func quote(s string) string { return "\"" + s + "\"" }

// RetryPolicy says how often and how late a failed job runs again. The
// delays grow exponentially with jitter and are held by the broker.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included; 1 means no retry.
	MaxAttempts     int
	InitialInterval time.Duration
	MaxInterval     time.Duration
	Multiplier      float64
	// Jitter is the randomization factor, from 0 (none) to 1.
	Jitter float64
}
