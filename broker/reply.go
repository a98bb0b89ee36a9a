package broker

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Request-reply on the wire. A request is a job with reply_to set: the name
// of a queue (a durable reply queue of the topology), or RabbitMQ's direct
// reply-to pseudo-queue for a caller waiting in Call. The worker publishes
// the reply through the default exchange with reply_to as the routing key:
// a job of type "<request type>.reply", id "<request id>.reply",
// correlation_id the request's correlation_id (else its id), and the
// request's warren-version (a v2 request gets a v2 reply). A successful
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
		Version:       request.Version, // a reply follows its request's version of the contract
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

// Reply sends the reply to request (whose ReplyTo must be set): its
// result, encoded with MessagePack, or its failure when failure is not nil
// (see NewReply). To a caller waiting on direct reply-to or its own reply
// queue (IsCallerReplyTo) it is written on a channel without confirms and
// Reply returns once it is written: such a reply exists only while its
// caller's channel does, and if it is lost its caller times out, as it
// would if the worker had died. To a durable reply queue it is published
// with a confirm and as mandatory (Publish). The observers see it as
// KindReply.
// It is what a worker pool does when a request ends.
func (s *Sender) Reply(ctx context.Context, request *Envelope, result any, failure *Failure) error {
	return s.reply(ctx, request, result, failure, time.Now())
}

func (s *Sender) reply(ctx context.Context, request *Envelope, result any, failure *Failure, now time.Time) error {
	if request.ReplyTo == "" {
		return fmt.Errorf("%w: job %s has no reply_to: nobody waits for its reply", ErrInvalidJob, request.ID)
	}
	if !IsCallerReplyTo(request.ReplyTo) || failure != nil || request.Traceparent != "" || s.pipe.observe != nil {
		r, err := newReply(request, result, failure, now)
		if err != nil {
			return err
		}
		if IsCallerReplyTo(request.ReplyTo) {
			return s.sendDirectReply(ctx, r, request.ReplyTo)
		}
		return s.Publish(ctx, KindReply, r, "", request.ReplyTo)
	}
	// The common case, a result for a waiting caller, needs no envelope,
	// and its body can be encoded in a pooled buffer: amqp091-go has
	// written it by the time the publish returns.
	buf := encodeBuffers.Get().(*bytes.Buffer)
	defer putEncodeBuffer(buf)
	if err := encodeInto(buf, result); err != nil {
		return fmt.Errorf("%w: the result of job %s, a %T, cannot be encoded with MessagePack: %v", ErrInvalidJob, request.ID, result, err)
	}
	corr := request.CorrelationID
	if corr == "" {
		corr = request.ID
	}
	return s.sendDirect(ctx, request.ReplyTo, amqp.Publishing{
		ContentType:   ContentType,
		CorrelationId: corr,
		DeliveryMode:  amqp.Transient,
		Body:          buf.Bytes(),
	})
}

// sendDirectReply sends a reply to a caller waiting on RabbitMQ's direct
// reply-to (replyTo is its amq.rabbitmq.reply-to.* address) or on a reply
// queue of its own (amq.gen-*, see IsCallerReplyTo), on a channel without
// confirms, and returns once it is written. Such a reply is transient by
// nature: it exists only while its caller's channel does, the broker
// cannot be asked to keep it, and a confirm would only cost a round of
// work on both sides. Only the correlation id, the content type, the
// headers (on a failure) and the body are sent: Call fills in the reply's
// id and type from its request.
func (s *Sender) sendDirectReply(ctx context.Context, env *Envelope, replyTo string) error {
	var done func(error)
	if s.pipe.observe != nil {
		_, done = s.pipe.observe(ctx, PublishInfo{Kind: KindReply, RoutingKey: replyTo}, env)
	}
	full := env.publishing()
	msg := amqp.Publishing{
		ContentType:   full.ContentType,
		CorrelationId: full.CorrelationId,
		DeliveryMode:  amqp.Transient,
		Body:          full.Body,
	}
	if len(full.Headers) > 0 {
		msg.Headers = full.Headers
	}
	err := s.sendDirect(ctx, replyTo, msg)
	if done != nil {
		done(err)
	}
	return err
}

// sendDirect writes msg to a caller's reply address on the sender's
// channel without confirms.
func (s *Sender) sendDirect(ctx context.Context, replyTo string, msg amqp.Publishing) error {
	if err := s.pipe.checkFrame(&msg, cmp.Or(msg.MessageId, msg.CorrelationId)); err != nil {
		return err
	}
	s.directFlush.enter()
	s.directMu.Lock()
	defer func() {
		s.directFlush.leave()
		s.directMu.Unlock()
	}()
	if s.directClosed {
		return fmt.Errorf("%w: sender closed", ErrClosed)
	}
	if s.direct == nil || s.direct.IsClosed() {
		ch, err := s.pipe.conn.channel()
		if err != nil {
			return err
		}
		s.direct = ch
	}
	err := ctx.Err()
	if err == nil {
		err = s.directFlush.publish(s.direct, "", replyTo, false, msg)
	}
	if err != nil {
		if errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return err
	}
	return nil
}
