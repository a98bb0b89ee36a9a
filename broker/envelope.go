package broker

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Content types. Jobs are published as ContentType; the others are accepted.
const (
	ContentType    = "application/msgpack"
	contentTypeX   = "application/x-msgpack"
	contentTypeVnd = "application/vnd.msgpack"
)

// Header names warren writes and reads. They carry no "x-" prefix: RabbitMQ
// treats x- headers as its own.
const (
	HeaderAttempt          = "warren-attempt"            // long: number of this attempt, 1 for the first
	HeaderError            = "warren-error"              // string: last error text
	HeaderErrorClass       = "warren-error-class"        // string: last error class
	HeaderFirstFailedAt    = "warren-first-failed-at"    // string, RFC 3339 UTC
	HeaderFailedAt         = "warren-failed-at"          // string, RFC 3339 UTC
	HeaderOriginExchange   = "warren-origin-exchange"    // string
	HeaderOriginRoutingKey = "warren-origin-routing-key" // string
	HeaderOriginQueue      = "warren-origin-queue"       // string
	HeaderReplayCount      = "warren-replay-count"       // long
	HeaderWorkerHost       = "warren-worker-host"        // string
	HeaderTraceparent      = "traceparent"               // W3C trace context
	HeaderTracestate       = "tracestate"
)

// Job is what a producer publishes.
type Job struct {
	// ID identifies the job for its whole life: retries and replays keep it,
	// so handlers can de-duplicate on it. Publish generates one (a UUIDv7)
	// when it is empty.
	ID string
	// Type names the job; workers dispatch on it and the topology routes it.
	Type string
	// Payload is encoded with MessagePack. Struct fields use their msgpack
	// tag, else their json tag, else their name.
	Payload any
	// Headers are the producer's own headers. Names starting with "warren-"
	// or "x-" are reserved.
	Headers map[string]any
	// Priority is used when the queue has a maximum priority.
	Priority uint8
	// CorrelationID and ReplyTo are for request-reply.
	CorrelationID string
	ReplyTo       string
}

// Envelope is a job as it travels: its metadata, read from AMQP properties
// and headers, and its MessagePack body, not yet decoded.
type Envelope struct {
	ID            string
	Type          string
	ContentType   string
	AppID         string
	CorrelationID string
	ReplyTo       string
	Timestamp     time.Time
	Priority      uint8
	// Expiration is the AMQP per-message TTL in milliseconds, as text.
	Expiration string
	// Headers are the producer's own headers, without warren's.
	Headers map[string]any
	// Attempt counts deliveries to a handler: 1 for the first.
	Attempt int
	// ReplayCount counts how often an operator replayed the job from a
	// dead-letter queue.
	ReplayCount int
	// Failure is set once the job has failed at least once.
	Failure *Failure
	// Trace context (W3C).
	Traceparent string
	Tracestate  string
	// Body is the MessagePack-encoded payload.
	Body []byte
}

// Failure describes a job's last failure.
type Failure struct {
	Error         string
	Class         string
	FirstFailedAt time.Time
	FailedAt      time.Time
	Origin        Origin
	WorkerHost    string
}

// Origin is where a job was first consumed from.
type Origin struct {
	Exchange   string
	RoutingKey string
	Queue      string
}

var _ = amqp.Publishing{}
