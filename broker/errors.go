package broker

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers match them with errors.Is; the errors returned
// wrap them with detail (the job, the exchange, the broker's reason).
var (
	// ErrUnroutable: the broker accepted the job but no queue was bound to
	// receive it (a mandatory publish was returned). The job is not stored.
	ErrUnroutable = errors.New("broker: job is unroutable: no queue is bound for its exchange and routing key; check the topology's bindings and routes")
	// ErrNacked: the broker refused responsibility for the job (basic.nack),
	// e.g. a queue in reject-publish overflow. The job is not stored.
	ErrNacked = errors.New("broker: the broker nacked the job; it was not stored (queue full in reject-publish mode?)")
	// ErrClosed: the publisher or connection is closed, or was closed while
	// the job was awaiting its confirm; the job may or may not have been
	// stored, so publish it again with the same id.
	ErrClosed = errors.New("broker: connection or channel closed")
	// ErrDisconnected: the connection was lost and is being re-established
	// (see Conn); retry once it is back, or give up when ctx ends.
	ErrDisconnected = errors.New("broker: disconnected from the broker, reconnecting")
	// ErrNoExchange: the exchange does not exist. Apply the topology
	// first (see package topology).
	ErrNoExchange = errors.New("broker: exchange does not exist; apply the topology first")
	// ErrNoQueue: the queue does not exist (to consume or get from, to
	// inspect, or to schedule a job to with ToQueue). Apply the topology
	// first, or check the name.
	ErrNoQueue = errors.New("broker: queue does not exist; apply the topology first, or check the queue's name")
	// ErrQueueNotEmpty: a queue deleted only when empty (DeleteQueue with
	// ifEmpty) holds messages; it is left as it was.
	ErrQueueNotEmpty = errors.New("broker: queue is not empty; it was not deleted")
	// ErrNoRoute: the job type has no route and no exchange was given.
	ErrNoRoute = errors.New("broker: no route for job type; add it to the topology's routes or publish with an explicit exchange")

	// ErrInvalidJob: NewEnvelope refused a job; the error lists every
	// problem and how to fix it.
	ErrInvalidJob = errors.New("broker: invalid job")
	// ErrInvalidOption: an option given to Publish, PublishBatch or Call
	// is wrong (the error says which and why). Nothing was published.
	ErrInvalidOption = errors.New("broker: invalid publish option")
	// ErrUnsupportedContentType: a message is not MessagePack (or is
	// compressed); producers must publish application/msgpack bodies as
	// described in docs/wire-format.md.
	ErrUnsupportedContentType = errors.New("broker: unsupported content type; publish jobs as application/msgpack (see docs/wire-format.md)")
	// ErrMissingType: a message has no type property, so no handler can be
	// chosen; producers must set the AMQP type property to the job type.
	ErrMissingType = errors.New("broker: message has no type property; the producer must set it to the job type")
	// ErrMalformedEnvelope: a message's properties or warren-* headers are
	// wrong (the error names the header); it cannot be handled as a job.
	ErrMalformedEnvelope = errors.New("broker: malformed envelope")
	// ErrBodyTooLarge: a body exceeds Limits.MaxBytes. Raise the limit, or
	// keep large data elsewhere and send a reference to it.
	ErrBodyTooLarge = errors.New("broker: message body too large (raise Limits.MaxBytes, or store large data elsewhere and send a reference)")
	// ErrHeadersTooLarge: a job's properties and headers do not fit in one
	// AMQP frame of the connection (frame_max, 128 KiB by default), or one
	// cannot be encoded; RabbitMQ would close the whole connection. The
	// error also wraps ErrInvalidJob. Keep large data in the body.
	ErrHeadersTooLarge = errors.New("broker: properties and headers too large for one AMQP frame")
	// ErrBadBody: a body is not one well-formed MessagePack value within
	// the limits, or does not decode into the target; the error says where.
	ErrBadBody = errors.New("broker: bad message body")

	// ErrReplyTimeout: no reply came before the call's deadline. Either no
	// worker consumes the job's queue, or the job took longer. The request
	// carries the deadline, so a worker does not start it afterwards; a job
	// already running finishes, and its late reply is discarded.
	ErrReplyTimeout = errors.New("broker: no reply before the call's deadline; check that a worker consumes the job's queue, or allow more time")

	// Consuming.

	// ErrConsumerCancelled: the broker cancelled the consumer, because its
	// queue was deleted or (quorum queues) its leader moved away. Nothing
	// more will arrive on it; deliveries not yet settled return to the
	// queue if it still exists.
	ErrConsumerCancelled = errors.New("broker: the broker cancelled the consumer (was the queue deleted? apply the topology again and restart)")
	// ErrAlreadySettled: a delivery was acked, requeued or rejected before.
	// Each delivery is settled exactly once.
	ErrAlreadySettled = errors.New("broker: delivery already settled")
)

// The errors of a failed publish, PublishError and BatchError, are in
// publisher.go.

// RemoteError is the failure of a request, as its worker replied: the job
// failed for good (it was dead-lettered) and Message and Class are its last
// error's text and class.
type RemoteError struct {
	RequestID string // the correlation id of the reply: the request's id unless it set its own
	JobType   string // the request's job type
	Message   string
	Class     string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("broker: job %s (type %q) failed in its worker (class %q): %s", e.RequestID, e.JobType, e.Class, e.Message)
}

// noRouteError is an ErrNoRoute with its own message: ErrNoRoute's advice to
// name an exchange does not apply to delayed jobs.
type noRouteError struct {
	msg   string
	cause error // the router's error, if any
}

func (e *noRouteError) Error() string { return e.msg }

func (e *noRouteError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrNoRoute}
	}
	return []error{ErrNoRoute, e.cause}
}

// HeadersError is the error for a message whose header table could not be
// read at all (a field type no client should write, tables nested or
// sized beyond what the AMQP client reads): the message came without its
// headers. The errors that carry it wrap ErrMalformedEnvelope too.
// errors.As reaches the AMQP client's error through it.
type HeadersError struct {
	err error
}

func (e *HeadersError) Error() string { return e.err.Error() }

// Unwrap returns the AMQP client's error.
func (e *HeadersError) Unwrap() error { return e.err }
