package worker

import (
	"context"
	"errors"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
)

// settlePause is how long a worker waits before returning a job to its
// queue when its retry or dead letter could not be published, so a broker
// refusing publishes does not turn into a hot redelivery loop.
const settlePause = time.Second

// acknowledger settles one delivery, as amqp091-go's Acknowledger does
// one channel's: *broker.Delivery is one. Each method may be called once
// per delivery; a second call returns broker.ErrAlreadySettled.
type acknowledger interface {
	Ack() error     // basic.ack: done with
	Requeue() error // basic.nack with requeue: back to its queue
	Reject() error  // basic.nack without requeue: dead-lettered by the broker, or dropped
}

// settled reports whether ack's delivery was settled already, when it can
// tell.
func settled(ack acknowledger) bool {
	s, ok := ack.(interface{ Settled() bool })
	return ok && s.Settled()
}

// settle carries out v, the verdict on d (see decide), whose acknowledger
// is ack, and completes out. It is the one place a delivery is settled,
// always in this order:
//
//  1. publish what the verdict stores elsewhere, with a publisher
//     confirm: the retry, the dead letter, the quarantine copy;
//  2. reply to a request: its result, or the failure of a dead-lettered
//     (or rejected) job, best effort; then, for a job that ended, tell the
//     finishers (WithFinisher);
//  3. settle the delivery: exactly one of ack, requeue (basic.nack with
//     requeue) or reject;
//  4. complete out, the Outcome its caller gives the pool's observers
//     (process, observed).
//
// Nothing is acked before what must outlive the delivery is confirmed:
// when a publish fails (1), or a request's result cannot be replied
// (2), the delivery is not acked but, after settlePause, requeued, or
// decided again (a reply queue that does not exist dead-letters the job).
// A crash in between leaves two copies, never none. A delivery settled
// already is left alone: settle is idempotent.
func (p *Pool) settle(ctx context.Context, q *queueRun, d *broker.Delivery, ack acknowledger, v verdict, out *Outcome) {
	if settled(ack) {
		jobFields(q.log.Debug(), d.Envelope, out.Attempt).Stringer(logfield.Verdict, v.kind).Msg("worker: delivery settled already; nothing more to do")
		return
	}
	if v.crashes > 0 {
		// The count travels with the job from now on, also when it goes
		// back to the quarantine because the verdict could not be carried
		// out.
		d.Envelope.Crashes = v.crashes
	}
	switch v.kind {
	case verdictAck:
		if p.finish(ctx, q, d, ack, v, out, Succeeded) {
			p.ack(q, d, ack, out)
		}
	case verdictReply:
		p.reply(ctx, q, d, ack, v, out)
	case verdictRetry:
		p.retry(ctx, q, d, ack, v, out)
	case verdictDeadLetter:
		p.deadLetter(ctx, q, d, ack, v, out)
	case verdictReject:
		p.reject(ctx, q, d, ack, v, out)
	case verdictExpired:
		p.expire(q, d, ack, out)
	case verdictQuarantine:
		p.quarantine(ctx, q, d, ack, v, out)
	case verdictCrash:
		jobFields(q.log.Warn(), d.Envelope, out.Attempt).Int(logfield.Crashes, v.crashes).Int(logfield.CrashLimit, p.opts.crashLimit).
			Msg("worker: the job's worker died while running it alone; counted a crash")
		p.returnToQuarantine(ctx, q, d, ack, out)
	case verdictReturn:
		p.returnJob(ctx, q, d, ack, v, out)
	case verdictRequeue:
		if v.cause != nil {
			out.Err = v.cause
		}
		if v.pause {
			p.pauseThenRequeue(ctx, q, d, ack, out)
			return
		}
		p.requeue(q, d, ack, out)
	default:
		// verdictRun is not a settlement: a bug in the caller. The broker
		// gets the job back rather than lose it.
		jobFields(q.log.Error(), d.Envelope, out.Attempt).Stringer(logfield.Verdict, v.kind).Msg("worker: no verdict to settle; returning the job to the queue")
		p.requeue(q, d, ack, out)
	}
}

// ack acks a job done.
func (p *Pool) ack(q *queueRun, d *broker.Delivery, ack acknowledger, out *Outcome) {
	if err := ack.Ack(); err != nil {
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: ack failed; the broker will deliver the job again")
		out.Status, out.Err = Requeued, err
		return
	}
	out.Status = Succeeded
	jobFields(q.log.Debug(), d.Envelope, out.Attempt).Dur(logfield.Duration, out.Duration).Msg("worker: job done")
}

// reply publishes a request's result, then acks it; when the reply cannot
// be published, the job is decided again with the reply's error.
func (p *Pool) reply(ctx context.Context, q *queueRun, d *broker.Delivery, ack acknowledger, v verdict, out *Outcome) {
	replied, err := p.sendReply(ctx, q, d.Envelope, v.result, nil)
	out.Replied = replied
	if err != nil {
		next := v.afterReply(err, ctx.Err() != nil, p.opts.now())
		if next.kind == verdictRequeue && next.pause {
			jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).Msg("worker: could not publish the reply; returning the job to the queue")
		}
		p.settle(ctx, q, d, ack, next, out)
		return
	}
	if p.finish(ctx, q, d, ack, v, out, Succeeded) {
		p.ack(q, d, ack, out)
	}
}

// retry publishes the job into the delay cascade for its next attempt, then
// acks the delivery.
func (p *Pool) retry(ctx context.Context, q *queueRun, d *broker.Delivery, ack acknowledger, v verdict, out *Outcome) {
	out.Class, out.Err, out.RetryIn = v.class, v.cause, v.delay
	err := v.routeErr
	if err == nil {
		err = p.send.publish(ctx, broker.KindRetry, v.env, v.exchange, v.key)
	}
	if err != nil {
		jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).
			Msg("worker: could not publish the retry; returning the job to the queue")
		out.Err = errors.Join(v.cause, err)
		p.pauseThenRequeue(ctx, q, d, ack, out)
		return
	}
	if err := ack.Ack(); err != nil {
		// The retry is stored; the original comes back too: a duplicate,
		// which handlers tolerate, never a loss.
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: ack after retry failed; the job may run twice")
	}
	out.Status = Retried
	jobFields(q.log.Debug().Err(v.cause), d.Envelope, out.Attempt).
		Str(logfield.ErrorClass, v.class).Dur(logfield.RetryIn, v.delay).Msg("worker: job failed; retrying")
}

// deadLetter publishes the job to its queue's dead-letter target, tells a
// request's caller, then acks the delivery.
func (p *Pool) deadLetter(ctx context.Context, q *queueRun, d *broker.Delivery, ack acknowledger, v verdict, out *Outcome) {
	out.Class, out.Err = v.class, v.cause
	if v.class == ClassCrash {
		jobFields(q.log.Error(), d.Envelope, out.Attempt).Int(logfield.Crashes, v.crashes).
			Msg("worker: the job's worker died while running it alone, again; dead-lettering it")
	}
	if err := p.send.publish(ctx, broker.KindDeadLetter, v.env, v.exchange, v.key); err != nil {
		jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).
			Msg("worker: could not publish to the dead-letter queue; returning the job to the queue")
		out.Err = errors.Join(v.cause, err)
		p.pauseThenRequeue(ctx, q, d, ack, out)
		return
	}
	// The caller learns of the failure once the job is parked, so what it
	// is told ("in a dead-letter queue") is true.
	p.replyFailure(ctx, q, d, v, out)
	if !p.finish(ctx, q, d, ack, v, out, DeadLettered) {
		return // parked; it runs again, and may be parked twice
	}
	if err := ack.Ack(); err != nil {
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: ack after dead-lettering failed; the job may be parked twice")
	}
	out.Status = DeadLettered
	jobFields(q.log.Debug().Err(v.cause), d.Envelope, out.Attempt).
		Str(logfield.ErrorClass, v.class).Str(logfield.DeadLetterExchange, v.exchange).Msg("worker: job dead-lettered")
}

// reject tells a request's caller that the job failed for good, then
// rejects it: its queue has no dead-letter target.
func (p *Pool) reject(ctx context.Context, q *queueRun, d *broker.Delivery, ack acknowledger, v verdict, out *Outcome) {
	out.Class, out.Err = v.class, v.cause
	if v.class == ClassCrash {
		jobFields(q.log.Error(), d.Envelope, out.Attempt).Int(logfield.Crashes, v.crashes).
			Msg("worker: the job's worker died while running it alone, again; dead-lettering it")
	}
	jobFields(q.log.Error().Err(v.cause), d.Envelope, out.Attempt).Str(logfield.ErrorClass, v.class).
		Msg("worker: job failed for good and its queue has no dead-letter target; rejecting it")
	p.replyFailure(ctx, q, d, v, out)
	if !p.finish(ctx, q, d, ack, v, out, Rejected) {
		return
	}
	if err := ack.Reject(); err != nil {
		out.Err = errors.Join(v.cause, err)
	}
	out.Status = Rejected
}

// expire acks a request whose caller stopped waiting, unhandled.
func (p *Pool) expire(q *queueRun, d *broker.Delivery, ack acknowledger, out *Outcome) {
	if err := ack.Ack(); err != nil {
		out.Status, out.Err = Requeued, err
	} else {
		out.Status = Expired
	}
	jobFields(q.log.Debug(), d.Envelope, out.Attempt).Time(logfield.Deadline, d.Envelope.Deadline).
		Msg("worker: request expired before it started; its caller gave up")
}

// quarantine moves a suspect delivery of a work queue to the queue's
// quarantine, then acks it, and wakes the queue's quarantine runner.
func (p *Pool) quarantine(ctx context.Context, q *queueRun, d *broker.Delivery, ack acknowledger, v verdict, out *Outcome) {
	if err := p.send.publish(ctx, broker.KindQuarantine, v.env, v.exchange, v.key); err != nil {
		jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).
			Msg("worker: could not move a redelivered job to the quarantine; returning it to the queue")
		out.Err = err
		p.pauseThenRequeue(ctx, q, d, ack, out)
		return
	}
	if err := ack.Ack(); err != nil {
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: ack after moving a job to the quarantine failed; it may run twice")
	}
	out.Status = Quarantined
	jobFields(q.log.Warn(), d.Envelope, out.Attempt).Int(logfield.DeliveryCount, d.DeliveryCount).
		Msg("worker: job delivered again after a worker stopped without settling it (a crash? a lost connection?); moved to the quarantine to run alone")
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// returnToQuarantine puts a quarantined delivery back in the quarantine as
// a new message carrying its crash count (a plain requeue would mark it
// redelivered, which counts a crash), then acks it. When the copy cannot
// be published it is requeued after all.
func (p *Pool) returnToQuarantine(ctx context.Context, q *queueRun, d *broker.Delivery, ack acknowledger, out *Outcome) {
	e := *d.Envelope
	// ctx may have ended (shutdown): the move is quick and must not be
	// cut short, or the job is counted a crash it did not cause.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.send.publish(pctx, broker.KindQuarantine, &e, "", q.queue.QuarantineQueue); err != nil {
		jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).Msg("worker: could not put a job back in the quarantine; returning it there as redelivered")
		out.Err = errors.Join(out.Err, err)
		if rerr := ack.Requeue(); rerr != nil {
			jobFields(q.log.Warn().Err(rerr), d.Envelope, out.Attempt).Msg("worker: requeue failed; the broker returns the job when the channel closes")
		}
		out.Status = Requeued
		return
	}
	if err := ack.Ack(); err != nil {
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: ack after returning a job to the quarantine failed; it may run twice")
	}
	out.Status = Quarantined
}

// ackCopied acks a delivery returned to its queue at shutdown as a new
// message, once the broker confirmed the copy (see Pool.requeueRest): to
// its observers, it was requeued.
func (p *Pool) ackCopied(q *queueRun, d *broker.Delivery, ack acknowledger, out *Outcome) {
	if settled(ack) {
		return
	}
	if err := ack.Ack(); err != nil {
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: ack of a job returned at shutdown failed; it may run twice")
	}
	out.Status = Requeued
}

// returnJob publishes the job back to the queue it came from, unchanged,
// as a new message (confirmed), then acks the delivery: its handler
// tripped the queue's circuit breaker. When the copy cannot be published,
// the delivery is requeued as it is (after the settle pause).
func (p *Pool) returnJob(ctx context.Context, q *queueRun, d *broker.Delivery, ack acknowledger, v verdict, out *Outcome) {
	out.Err = v.cause
	conf, err := p.send.send(ctx, v.env, v.exchange, v.key)
	if err == nil {
		err = conf.Wait(ctx)
	}
	if err != nil {
		jobFields(q.log.Error().Err(err), d.Envelope, out.Attempt).
			Msg("worker: could not return the job to its queue after its handler tripped the circuit breaker; requeueing it")
		out.Err = errors.Join(v.cause, err)
		p.pauseThenRequeue(ctx, q, d, ack, out)
		return
	}
	if err := ack.Ack(); err != nil {
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: ack after returning a job to its queue failed; it may run twice")
	}
	out.Status = Requeued
	jobFields(q.log.Debug().Err(v.cause), d.Envelope, out.Attempt).Msg("worker: handler tripped the circuit breaker; job returned to its queue")
}

// pauseThenRequeue requeues d after the pool's settle pause, cut short
// when ctx ends.
func (p *Pool) pauseThenRequeue(ctx context.Context, q *queueRun, d *broker.Delivery, ack acknowledger, out *Outcome) {
	t := time.NewTimer(p.pause)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	p.requeue(q, d, ack, out)
}

// requeue returns d to its queue untouched.
func (p *Pool) requeue(q *queueRun, d *broker.Delivery, ack acknowledger, out *Outcome) {
	if d.Queue == q.queue.QuarantineQueue {
		// A redelivered quarantined job counts as a crash: put it back
		// as a new message instead.
		p.returnToQuarantine(context.Background(), q, d, ack, out)
		return
	}
	if err := ack.Requeue(); err != nil {
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: requeue failed; the broker returns the job when the channel closes")
	} else {
		jobFields(q.log.Debug(), d.Envelope, out.Attempt).Msg("worker: job returned to its queue")
	}
	out.Status = Requeued
}

// sendReply publishes the reply to a request and reports whether it was
// sent: confirmed to a durable reply queue; written, without confirm or
// mandatory flag, to a direct reply-to address (see
// broker.Sender.Reply): when its caller is gone, the broker
// drops it, which is no loss, since nobody waits for it. The error
// wraps broker.ErrInvalidJob when the result cannot be encoded,
// broker.ErrUnroutable when a reply queue is missing.
func (p *Pool) sendReply(ctx context.Context, q *queueRun, request *broker.Envelope, result any, failure *broker.Failure) (bool, error) {
	if err := p.send.reply(ctx, request, result, failure); err != nil {
		return false, err
	}
	jobFields(q.log.Debug(), request, max(request.Attempt, 1)).Str(logfield.ReplyTo, request.ReplyTo).Msg("worker: reply sent")
	return true, nil
}

// replyFailure tells a request's caller that the job failed for good,
// rather than let it time out. Best effort: the job is parked either way.
func (p *Pool) replyFailure(ctx context.Context, q *queueRun, d *broker.Delivery, v verdict, out *Outcome) {
	if d.Envelope.ReplyTo == "" || v.class == ClassReply {
		return
	}
	replied, err := p.sendReply(ctx, q, d.Envelope, nil, v.env.Failure)
	if err != nil {
		jobFields(q.log.Warn().Err(err), d.Envelope, out.Attempt).Msg("worker: could not send the failure to the job's caller")
	}
	out.Replied = replied
}
