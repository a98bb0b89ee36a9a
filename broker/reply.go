package broker

import (
	"fmt"
	"strings"
	"time"
)

// Request-reply on the wire. A request is a job with reply_to set: the name
// of a queue (a durable reply queue of the topology), or RabbitMQ's direct
// reply-to pseudo-queue for a caller waiting in Call. The worker publishes
// the reply through the default exchange with reply_to as the routing key:
// a job of type "<request type>.reply", id "<request id>.reply",
// correlation_id the request's correlation_id (else its id). A successful
// reply has no header (the body is the handler's result: a reply is as
// cheap as the request); a failed one has warren-reply-status "error", and
// warren-error and warren-error-class say why (the body is nil).

// Reply statuses (HeaderReplyStatus). warren writes only ReplyError: a
// reply without the header succeeded. Readers accept ReplyOK too.
const (
	ReplyOK    = "ok"
	ReplyError = "error"
)

// DirectReplyTo is RabbitMQ's direct reply-to pseudo-queue: a caller
// consuming it receives the replies to the requests it published on the
// same channel, with no queue declared. The broker rewrites reply_to to
// DirectReplyTo + "." + a token naming the caller's channel.
const DirectReplyTo = "amq.rabbitmq.reply-to"

// IsDirectReplyTo reports whether replyTo names a caller's direct reply-to
// channel rather than a queue: a reply to it is lost if the caller is gone,
// which is no loss, since nobody waits for it any more.
func IsDirectReplyTo(replyTo string) bool {
	return replyTo == DirectReplyTo || strings.HasPrefix(replyTo, DirectReplyTo+".")
}

// ServerNamedPrefix begins the name of every queue the broker names itself
// (a queue.declare with an empty name): a Caller's reply queue
// (WithCallReplyQueue), exclusive to its connection.
const ServerNamedPrefix = "amq.gen-"

// IsCallerReplyTo reports whether replyTo names a caller waiting for its
// reply on a channel or connection of its own: RabbitMQ's direct reply-to,
// or a server-named queue (ServerNamedPrefix), which lives only as long as
// the connection that declared it. A reply to such an address is written
// without a confirm (see Sender.Reply), and dropped by the broker if the caller is
// gone: nobody waits for it any more. Any other reply_to is a durable
// reply queue.
func IsCallerReplyTo(replyTo string) bool {
	return IsDirectReplyTo(replyTo) || strings.HasPrefix(replyTo, ServerNamedPrefix)
}

// ReplyTypeSuffix ends the job type of a reply.
const ReplyTypeSuffix = ".reply"

// NewReply returns the reply to request: its result, encoded with
// MessagePack, when failure is nil; else an error reply carrying the
// failure's text and class. It keeps the request's trace context. Publish
// it to the default exchange ("") with request.ReplyTo as the routing key,
// or send it with Sender.Reply, which builds it.
func NewReply(request *Envelope, result any, failure *Failure) (*Envelope, error) {
	return newReply(request, result, failure, time.Now())
}

// newReply is NewReply at now.
func newReply(request *Envelope, result any, failure *Failure, now time.Time) (*Envelope, error) {
	corr := request.CorrelationID
	if corr == "" {
		corr = request.ID
	}
	r := &Envelope{
		ID:            fitShort(request.ID+ReplyTypeSuffix, request.ID),
		Type:          fitShort(request.Type+ReplyTypeSuffix, request.Type),
		ContentType:   ContentType,
		CorrelationID: corr,
		Timestamp:     now.UTC().Truncate(time.Second),
		Attempt:       1,
		Traceparent:   request.Traceparent,
		Tracestate:    request.Tracestate,
	}
	if failure != nil {
		r.ReplyStatus = ReplyError
		r.Failure = &Failure{Error: failure.Error, Class: failure.Class, FirstFailedAt: failure.FirstFailedAt,
			FailedAt: failure.FailedAt, Origin: failure.Origin, WorkerHost: failure.WorkerHost}
		result = nil
	}
	body, err := encodePayload(result)
	if err != nil {
		return nil, fmt.Errorf("%w: the result of job %s, a %T, cannot be encoded with MessagePack: %v", ErrInvalidJob, request.ID, result, err)
	}
	r.Body = body
	return r, nil
}

// fitShort returns s, or fallback when s is too long for an AMQP short
// string.
func fitShort(s, fallback string) string {
	if len(s) > maxShortString {
		return fallback
	}
	return s
}

// RemoteErr returns the failure an error reply carries, nil for any other
// envelope.
func (e *Envelope) RemoteErr() *RemoteError {
	if e.ReplyStatus != ReplyError {
		return nil
	}
	re := &RemoteError{RequestID: e.CorrelationID, JobType: strings.TrimSuffix(e.Type, ReplyTypeSuffix)}
	if e.Failure != nil {
		re.Message, re.Class = e.Failure.Error, e.Failure.Class
	}
	return re
}
