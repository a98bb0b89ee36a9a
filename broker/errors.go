package broker

import (
	"errors"
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
	// ErrNoExchange: the exchange does not exist. Apply the topology first
	// (warren topology apply -f FILE).
	ErrNoExchange = errors.New("broker: exchange does not exist; apply the topology first (warren topology apply -f FILE)")
	// ErrNoRoute: the job type has no route and no exchange was given.
	ErrNoRoute = errors.New("broker: no route for job type; add it to the topology's routes or publish with an explicit exchange")

	// ErrInvalidJob: NewEnvelope refused a job; the error lists every
	// problem and how to fix it.
	ErrInvalidJob = errors.New("broker: invalid job")
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
)
