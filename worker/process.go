package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

// settlePause is how long a worker waits before returning a job to its
// queue when its retry or dead letter could not be published, so a broker
// refusing publishes does not turn into a hot redelivery loop.
const settlePause = time.Second

// correlationID is the correlation id env's reply carries: its own, else,
// for a request, its id.
func correlationID(env *broker.Envelope) string {
	if env.CorrelationID == "" && env.ReplyTo != "" {
		return env.ID
	}
	return env.CorrelationID
}

// process handles one delivery and settles it. ctx is the pool's job
// context: it ends at the shutdown deadline.
func (p *Pool) process(ctx context.Context, q *queueRun, d *broker.Delivery) {
	env := d.Envelope
	out := Outcome{Queue: q.queue.Name, JobID: env.ID, JobType: env.Type, Attempt: max(env.Attempt, 1)}
	var policy topology.RetryPolicy
	if d.Err == nil {
		// Not for a malformed message: its type may be anything.
		policy = q.retryPolicy(env.Type)
	}
	job := &Job{
		ID:            env.ID,
		Type:          env.Type,
		Queue:         q.queue.Name,
		Attempt:       out.Attempt,
		MaxAttempts:   policy.MaxAttempts,
		CorrelationID: correlationID(env),
		ReplyTo:       env.ReplyTo,
		Headers:       env.Headers,
		PublishedAt:   env.Timestamp,
		Redelivered:   d.Redelivered || d.Queue == q.queue.QuarantineQueue,
		Envelope:      env,
		limits:        p.opts.limits,
	}
	if p.opts.jobHook != nil {
		// The hook's ctx (a span's) is the parent of everything the
		// delivery leads to: the handler, and the publishes of its retry,
		// dead letter or reply.
		jctx, done := p.opts.jobHook(ctx, job, Source{Exchange: d.Exchange, RoutingKey: d.RoutingKey})
		if jctx != nil {
			ctx = jctx
		}
		if done != nil {
			defer func() { done(out) }()
		}
	}

	// Messages that cannot be jobs, and bodies over the limit, are parked
	// before any handler or decoder sees them.
	if d.Err != nil {
		p.deadLetter(ctx, q, d, &out, ClassMalformed, d.Err)
		return
	}
	if lim := p.opts.limits; len(env.Body) > maxBytes(lim) {
		err := fmt.Errorf("%w: %d bytes, the limit is %d", broker.ErrBodyTooLarge, len(env.Body), maxBytes(lim))
		p.deadLetter(ctx, q, d, &out, ClassTooLarge, err)
		return
	}

	if !env.Deadline.IsZero() && p.opts.now().After(env.Deadline) {
		// The caller stopped waiting: the result would be thrown away.
		if err := d.Ack(); err != nil {
			out.Status, out.Err = Requeued, err
		} else {
			out.Status = Expired
		}
		jobFields(q.log.Debug(), env, out.Attempt).Time("deadline", env.Deadline).
			Msg("worker: request expired before it started; its caller gave up")
		p.observe(out)
		return
	}

	if d.Redelivered && d.Queue == q.queue.Name {
		// It may be what killed the worker that held it: it runs alone,
		// in quarantine.
		p.moveToQuarantine(ctx, q, d, &out)
		return
	}

	hctx, cancel := context.WithTimeout(ctx, q.cfg.handlerTimeout)
	start := p.opts.now()
	err := p.call(hctx, job)
	out.Duration = p.opts.now().Sub(start)
	timedOut := hctx.Err() == context.DeadlineExceeded
	cancel()

	if err == nil && env.ReplyTo != "" {
		replied, rerr := p.sendReply(ctx, q, env, job.result, nil)
		out.Replied = replied
		switch {
		case errors.Is(rerr, broker.ErrInvalidJob):
			// The handler's result cannot be encoded: a bug that retrying
			// will not fix.
			err = Permanent(rerr)
		case errors.Is(rerr, broker.ErrUnroutable):
			p.deadLetter(ctx, q, d, &out, ClassReply, fmt.Errorf("worker: the result could not be delivered to reply_to %q (no such queue?): %w", env.ReplyTo, rerr))
			return
		case rerr != nil:
			jobFields(q.log.Error().Err(rerr), env, out.Attempt).Msg("worker: could not publish the reply; returning the job to the queue")
			out.Err = rerr
			p.pauseThenRequeue(ctx, q, d, &out)
			return
		}
	}
	if err == nil {
		if aerr := d.Ack(); aerr != nil {
			jobFields(q.log.Warn().Err(aerr), env, out.Attempt).Msg("worker: ack failed; the broker will deliver the job again")
			out.Status, out.Err = Requeued, aerr
			p.observe(out)
			return
		}
		out.Status = Succeeded
		jobFields(q.log.Debug(), env, out.Attempt).Dur("duration", out.Duration).Msg("worker: job done")
		p.observe(out)
		return
	}
	if ctx.Err() != nil {
		// The shutdown deadline passed: the job is not at fault.
		out.Err = err
		p.requeue(q, d, &out)
		return
	}
	class, final := p.classify(err, timedOut)
	if final || out.Attempt >= policy.MaxAttempts {
		p.deadLetter(ctx, q, d, &out, class, err)
		return
	}
	p.retry(ctx, q, d, &out, class, err, retryDelay(policy, out.Attempt, err))
}

func maxBytes(l broker.Limits) int {
	if l.MaxBytes <= 0 {
		return broker.DefaultMaxBytes
	}
	return l.MaxBytes
}

// call runs the handler, turning a panic into a *PanicError.
func (p *Pool) call(ctx context.Context, job *Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return p.handler.HandleJob(ctx, job)
}

// classify returns the class of a handler's error and whether it
// dead-letters the job at once.
func (p *Pool) classify(err error, timedOut bool) (class string, final bool) {
	var pe *PanicError
	switch {
	case errors.As(err, &pe):
		return ClassPanic, p.opts.panics == DeadLetterPanics
	case errors.Is(err, ErrPermanent):
		return ClassPermanent, true
	case errors.Is(err, ErrUnknownType):
		return ClassUnknownType, true
	case errors.Is(err, broker.ErrBodyTooLarge):
		return ClassTooLarge, true
	case errors.Is(err, broker.ErrBadBody):
		return ClassDecode, true
	case timedOut:
		return ClassTimeout, false
	}
	return ClassError, false
}

// failed returns the envelope of d's job after a failure: same id, the
// failure recorded, the first failure time and the origin kept from an
// earlier failure. The attempt is not changed.
func (p *Pool) failed(q *queueRun, d *broker.Delivery, class string, err error) *broker.Envelope {
	now := p.opts.now().UTC()
	e := *d.Envelope
	prev := e.Failure
	origin := broker.Origin{Exchange: d.Exchange, RoutingKey: d.RoutingKey, Queue: d.Queue}
	if d.Queue == q.queue.QuarantineQueue {
		// Moved there from the work queue: a replay sends it back to the
		// work queue itself.
		origin = broker.Origin{RoutingKey: q.queue.Name, Queue: q.queue.Name}
	}
	f := &broker.Failure{
		Error:         errorText(err),
		Class:         class,
		FirstFailedAt: now,
		FailedAt:      now,
		Origin:        origin,
		WorkerHost:    p.opts.host,
	}
	if prev != nil {
		if !prev.FirstFailedAt.IsZero() {
			f.FirstFailedAt = prev.FirstFailedAt
		}
		if prev.Origin.Queue != "" {
			f.Origin = prev.Origin
		}
	}
	e.Failure = f
	e.Attempt = max(e.Attempt, 1)
	// A per-message TTL would cut a delay short. (The broker's own headers,
	// x-death and x-delivery-count among them, are never published again:
	// see broker.BrokerHeader.)
	e.Expiration = ""
	return &e
}

// errorText is the text written to a failed job's headers: a panic gets
// its stack, which is what an operator needs to find the bug.
func errorText(err error) string {
	var pe *PanicError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%v\n\n%s", err, pe.Stack)
	}
	return err.Error()
}

// retry publishes the job into the delay cascade for its next attempt, then
// acks the delivery.
func (p *Pool) retry(ctx context.Context, q *queueRun, d *broker.Delivery, out *Outcome, class string, cause error, delay time.Duration) {
	e := p.failed(q, d, class, cause)
	e.Attempt++
	out.Class, out.Err, out.RetryIn = class, cause, delay
	exchange, key, err := topology.DelayRoute(q.queue.Name, delay)
	if err == nil {
		err = p.pub.Publish(ctx, broker.KindRetry, e, exchange, key)
	}
	if err != nil {
		jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).
			Msg("worker: could not publish the retry; returning the job to the queue")
		out.Err = errors.Join(cause, err)
		p.pauseThenRequeue(ctx, q, d, out)
		return
	}
	if err := d.Ack(); err != nil {
		// The retry is stored; the original comes back too: a duplicate,
		// which handlers tolerate, never a loss.
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: ack after retry failed; the job may run twice")
	}
	out.Status = Retried
	jobFields(q.log.Debug().Err(cause), d.Envelope, out.Attempt).
		Str(fieldClass, class).Dur("retry_in", delay).Msg("worker: job failed; retrying")
	p.observe(*out)
}

// deadLetter publishes the job to its queue's dead-letter target, then acks
// the delivery.
func (p *Pool) deadLetter(ctx context.Context, q *queueRun, d *broker.Delivery, out *Outcome, class string, cause error) {
	out.Class, out.Err = class, cause
	e := p.failed(q, d, class, cause)
	exchange, key := q.queue.DeadLetterExchange, q.queue.DeadLetterRoutingKey
	if exchange == "" {
		// The file turned dead-lettering off: the broker decides (it drops
		// the job, or dead-letters it by a policy).
		jobFields(q.log.Error().Err(cause), d.Envelope, out.Attempt).Str(fieldClass, class).
			Msg("worker: job failed for good and its queue has no dead-letter target; rejecting it")
		p.replyFailure(ctx, q, d, e, out, class)
		if err := d.Reject(); err != nil {
			out.Err = errors.Join(cause, err)
		}
		out.Status = Rejected
		p.observe(*out)
		return
	}
	if key == "" {
		key = d.RoutingKey // RabbitMQ's rule when x-dead-letter-routing-key is not set
	}
	if err := p.pub.Publish(ctx, broker.KindDeadLetter, e, exchange, key); err != nil {
		jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).
			Msg("worker: could not publish to the dead-letter queue; returning the job to the queue")
		out.Err = errors.Join(cause, err)
		p.pauseThenRequeue(ctx, q, d, out)
		return
	}
	// The caller learns of the failure once the job is parked, so what it
	// is told ("in a dead-letter queue") is true.
	p.replyFailure(ctx, q, d, e, out, class)
	if err := d.Ack(); err != nil {
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: ack after dead-lettering failed; the job may be parked twice")
	}
	out.Status = DeadLettered
	jobFields(q.log.Debug().Err(cause), d.Envelope, out.Attempt).
		Str(fieldClass, class).Str("dead_letter_exchange", exchange).Msg("worker: job dead-lettered")
	p.observe(*out)
}

func (p *Pool) pauseThenRequeue(ctx context.Context, q *queueRun, d *broker.Delivery, out *Outcome) {
	t := time.NewTimer(settlePause)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	p.requeue(q, d, out)
}

func (p *Pool) requeue(q *queueRun, d *broker.Delivery, out *Outcome) {
	if d.Queue == q.queue.QuarantineQueue {
		// A redelivered quarantined job counts as a crash: put it back
		// as a new message instead.
		p.returnToQuarantine(context.Background(), q, d, out)
		return
	}
	if err := d.Requeue(); err != nil {
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: requeue failed; the broker returns the job when the channel closes")
	} else {
		jobFields(q.log.Debug(), d.Envelope, out.Attempt).Msg("worker: job returned to its queue")
	}
	out.Status = Requeued
	p.observe(*out)
}

func (p *Pool) observe(o Outcome) {
	for _, fn := range p.opts.observers {
		fn(o)
	}
}

// sendReply publishes the reply to a request and reports whether it was
// sent: confirmed to a durable reply queue; written, without confirm or
// mandatory flag, to a direct reply-to address (see
// broker.Sender.Reply): when its caller is gone, the broker
// drops it, which is no loss, since nobody waits for it. The error
// wraps broker.ErrInvalidJob when the result cannot be encoded,
// broker.ErrUnroutable when a reply queue is missing.
func (p *Pool) sendReply(ctx context.Context, q *queueRun, request *broker.Envelope, result any, failure *broker.Failure) (bool, error) {
	if err := p.pub.Reply(ctx, request, result, failure); err != nil {
		return false, err
	}
	jobFields(q.log.Debug(), request, max(request.Attempt, 1)).Str("reply_to", request.ReplyTo).Msg("worker: reply sent")
	return true, nil
}

// replyFailure tells a request's caller that the job failed for good,
// rather than let it time out. Best effort: the job is parked either way.
func (p *Pool) replyFailure(ctx context.Context, q *queueRun, d *broker.Delivery, e *broker.Envelope, out *Outcome, class string) {
	if d.Envelope.ReplyTo == "" || class == ClassReply {
		return
	}
	replied, err := p.sendReply(ctx, q, d.Envelope, nil, e.Failure)
	if err != nil {
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: could not send the failure to the job's caller")
	}
	out.Replied = replied
}

// Log fields of a job, with those of pool.go (fieldJobID, …).
const (
	fieldCorrelationID = "correlation_id"
	fieldTraceID       = "trace_id"
)

// jobFields adds to e the fields every line about a job carries: job_id,
// job_type, attempt, correlation_id when set, trace_id when the job has a
// trace context (the queue is on the queue's logger already). Nothing is
// done, and nothing allocated, when e's level is disabled.
func jobFields(e *zerolog.Event, env *broker.Envelope, attempt int) *zerolog.Event {
	if !e.Enabled() {
		return e
	}
	e = e.Str(fieldJobID, env.ID).Str(fieldJobType, env.Type).Int(fieldAttempt, attempt)
	if corr := correlationID(env); corr != "" {
		e = e.Str(fieldCorrelationID, corr)
	}
	if id := traceID(env.Traceparent); id != "" {
		e = e.Str(fieldTraceID, id)
	}
	return e
}

// traceID returns the trace id of a W3C traceparent
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"), "" when it
// has none that is valid.
func traceID(traceparent string) string {
	const idEnd = 3 + 32
	if len(traceparent) < 55 || traceparent[2] != '-' || traceparent[idEnd] != '-' || traceparent[:2] == "ff" {
		return ""
	}
	if len(traceparent) > 55 && (traceparent[:2] == "00" || traceparent[55] != '-') {
		return "" // version 00 has exactly four fields; later ones may add more
	}
	id := traceparent[3:idEnd]
	zero := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c == '0':
		case '1' <= c && c <= '9', 'a' <= c && c <= 'f':
			zero = false
		default:
			return ""
		}
	}
	if zero {
		return ""
	}
	return id
}
