package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

// A delivery's life in a pool is split in two: decide computes its
// verdict from what is known of it (this file, no broker call), settle
// carries the verdict out (settle.go). docs/retries.md, "How the worker
// decides and settles", has the whole picture.

// verdictKind is what becomes of a delivery.
type verdictKind int

const (
	// verdictRun: no verdict yet; the handler runs, then decide is asked
	// again. Only given before the handler ran.
	verdictRun verdictKind = iota
	// verdictAck: the job is done; ack.
	verdictAck
	// verdictReply: the job, a request, is done; publish its result to its
	// reply_to, then ack. When the reply cannot be published, decide is
	// asked again with the reply's error (verdict.afterReply).
	verdictReply
	// verdictRetry: publish env into the delay cascade (exchange, key),
	// then ack.
	verdictRetry
	// verdictDeadLetter: publish env to the queue's dead-letter target,
	// send a request's caller the failure, then ack.
	verdictDeadLetter
	// verdictReject: the job failed for good and its queue has no
	// dead-letter target: send a request's caller the failure, then reject
	// (the broker drops the job, or dead-letters it by a policy).
	verdictReject
	// verdictExpired: a request whose caller stopped waiting before it
	// started: ack unhandled.
	verdictExpired
	// verdictQuarantine: a suspect (delivered again after a worker held it
	// unsettled): publish it unchanged to the quarantine, then ack.
	verdictQuarantine
	// verdictCrash: a quarantined job delivered again, its worker having
	// died running it alone, below the crash limit: publish it back to the
	// quarantine as a new message with the crash counted, then ack.
	verdictCrash
	// verdictRequeue: the job goes back to its queue untouched (after
	// settlePause when pause is set), or, taken from the quarantine, back
	// to the quarantine as a new message.
	verdictRequeue
	// verdictReturn: the handler tripped its queue's circuit breaker
	// (TripBreaker): publish env, the job unchanged, back to the queue it
	// came from (key), as a new message, then ack. Its attempt is not
	// used, and it does not come back marked redelivered (a suspect).
	verdictReturn
)

func (k verdictKind) String() string {
	switch k {
	case verdictRun:
		return "run"
	case verdictAck:
		return "ack"
	case verdictReply:
		return "reply"
	case verdictRetry:
		return "retry"
	case verdictDeadLetter:
		return "dead-letter"
	case verdictReject:
		return "reject"
	case verdictExpired:
		return "expired"
	case verdictQuarantine:
		return "quarantine"
	case verdictCrash:
		return "crash"
	case verdictRequeue:
		return "requeue"
	case verdictReturn:
		return "return"
	}
	return fmt.Sprintf("verdictKind(%d)", int(k))
}

// verdict is what decide makes of a delivery: everything settle needs to
// carry it out, computed before any of it is done.
type verdict struct {
	kind verdictKind
	// class and cause are the failure, if any (cause is also a requeue's
	// reason: the shutdown, a reply that could not be published).
	class string
	cause error
	// env is what is published before the ack (retry, dead letter,
	// quarantine, crash), to exchange with key. routeErr is set when no
	// route could be computed: settle treats it as a failed publish.
	env           *broker.Envelope
	exchange, key string
	routeErr      error
	// delay is a retry's delay.
	delay time.Duration
	// crashes is the job's crash count, counted now (quarantine
	// redeliveries only).
	crashes int
	// pause asks a requeue to wait settlePause first: the publish that
	// failed may fail again at once.
	pause bool
	// result is a reply's body; f the facts it was decided from, to decide
	// again when the reply cannot be published.
	result any
	f      facts
}

// facts are what decide knows of a delivery: the delivery itself, the
// pool's and the queue's configuration, the clock, and, once the handler
// ran (ran), what it returned.
type facts struct {
	d *broker.Delivery
	// work is the work queue the delivery belongs to (d.Queue is it or
	// its quarantine); policy the retry policy of the job's type.
	work       topology.Queue
	policy     topology.RetryPolicy
	maxBytes   int
	panics     PanicPolicy
	crashLimit int
	host       string
	now        time.Time
	// random, in [0, 1), picks a retry's delay within the policy's
	// jitter: drawn by the caller, so that the same facts give the same
	// verdict.
	random float64

	// ran is set once the handler returned: err is its error (a panic is a
	// *PanicError), timedOut whether its timeout had passed, result what
	// it set with Job.SetResult.
	ran      bool
	err      error
	timedOut bool
	result   any
	// replyErr is the error of the reply publish of a request the handler
	// did (decided again after it).
	replyErr error
	// shutdown is set when the pool's job context ended: the shutdown
	// deadline passed, and a failure is not the job's fault.
	shutdown bool
	// breaker is set when the queue has a circuit breaker: a handler's
	// TripBreaker then returns the job to its queue.
	breaker bool
}

// attempt is the delivery's attempt, 1 for the first.
func (f facts) attempt() int { return max(f.d.Envelope.Attempt, 1) }

// decide returns the verdict on a delivery. It calls no broker, reads no
// clock but f.now and draws no random number but f.random: the same facts
// give the same verdict.
//
// In order: a message that is not a job is dead-lettered as it came; a
// quarantined job delivered again counts a crash; then, before the
// handler, a body over the limit is dead-lettered, an expired request
// acked unhandled, a suspect quarantined, and anything else runs. After
// the handler: success is acked (a request's result replied first); a
// failure at shutdown is requeued; a TripBreaker on a queue with a
// breaker returns the job to its queue unchanged; a final failure, or one on the last
// attempt, is dead-lettered; any other is retried.
func decide(f facts) verdict {
	d, env := f.d, f.d.Envelope
	if d.Err != nil {
		return f.deadLetter(ClassMalformed, d.Err)
	}
	if d.Queue == f.work.QuarantineQueue && d.Redelivered {
		return f.crash()
	}
	if !f.ran {
		switch {
		case len(env.Body) > f.maxBytes:
			err := fmt.Errorf("%w: %d bytes, the limit is %d", broker.ErrBodyTooLarge, len(env.Body), f.maxBytes)
			return f.deadLetter(ClassTooLarge, err)
		case !env.Deadline.IsZero() && f.now.After(env.Deadline):
			// The caller stopped waiting: the result would be thrown away.
			return verdict{kind: verdictExpired}
		case d.Redelivered && d.Queue == f.work.Name:
			// It may be what killed the worker that held it: it runs
			// alone, in quarantine.
			e := *env
			return verdict{kind: verdictQuarantine, env: &e, key: f.work.QuarantineQueue}
		}
		return verdict{kind: verdictRun}
	}

	err := f.err
	if err == nil && env.ReplyTo != "" {
		switch rerr := f.replyErr; {
		case rerr == nil:
			return verdict{kind: verdictReply, result: f.result, f: f}
		case errors.Is(rerr, broker.ErrInvalidJob):
			// The handler's result cannot be encoded: a bug that retrying
			// will not fix.
			err = Permanent(rerr)
		case errors.Is(rerr, broker.ErrUnroutable):
			return f.deadLetter(ClassReply, fmt.Errorf("worker: the result could not be delivered to reply_to %q (no such queue?): %w", env.ReplyTo, rerr))
		default:
			return verdict{kind: verdictRequeue, cause: rerr, pause: true}
		}
	}
	if err == nil {
		return verdict{kind: verdictAck, result: f.result} // the result for the finishers
	}
	if f.shutdown {
		// The shutdown deadline passed: the job is not at fault.
		return verdict{kind: verdictRequeue, cause: err}
	}
	if f.breaker && errors.Is(err, ErrBreakerTripped) {
		// A dependency is down, not the job at fault: it waits in its
		// queue, as it came, while the breaker is open.
		e := *env
		return verdict{kind: verdictReturn, cause: err, env: &e, key: d.Queue}
	}
	class, final := classify(err, f.timedOut, f.panics)
	if final || f.attempt() >= f.policy.MaxAttempts {
		return f.deadLetter(class, err)
	}
	return f.retry(class, err, retryDelay(f.policy, f.attempt(), err, f.random))
}

// afterReply decides again on a request whose reply (verdictReply) could
// not be published: err is the reply's error, shutdown and now as when
// it failed.
func (v verdict) afterReply(err error, shutdown bool, now time.Time) verdict {
	f := v.f
	f.replyErr, f.shutdown, f.now = err, shutdown, now
	return decide(f)
}

// classify returns the class of a handler's error and whether it
// dead-letters the job at once.
func classify(err error, timedOut bool, panics PanicPolicy) (class string, final bool) {
	var pe *PanicError
	switch {
	case errors.As(err, &pe):
		return ClassPanic, panics == DeadLetterPanics
	case errors.As(err, new(*schemaError)):
		// Before ErrPermanent, which it wraps. Only the pool's own
		// validation and Upcast make one: a handler's publish that a
		// validator refused is the handler's failure, not its job's.
		return ClassSchema, true
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

// retry is the verdict of a failure to retry after delay: the job's next
// attempt, published into the queue's delay cascade.
func (f facts) retry(class string, cause error, delay time.Duration) verdict {
	e := f.failed(class, cause)
	e.Attempt++
	exchange, key, err := topology.DelayRoute(f.work.Name, delay)
	return verdict{kind: verdictRetry, class: class, cause: cause, env: e, exchange: exchange, key: key, routeErr: err, delay: delay}
}

// deadLetter is the verdict of a failure for good: the job parked in its
// queue's dead-letter target, or rejected when the queue has none.
func (f facts) deadLetter(class string, cause error) verdict {
	e := f.failed(class, cause)
	exchange, key := f.work.DeadLetterExchange, f.work.DeadLetterRoutingKey
	if exchange == "" {
		// The file turned dead-lettering off: the broker decides (it drops
		// the job, or dead-letters it by a policy).
		return verdict{kind: verdictReject, class: class, cause: cause, env: e}
	}
	if key == "" {
		key = f.d.RoutingKey // RabbitMQ's rule when x-dead-letter-routing-key is not set
	}
	return verdict{kind: verdictDeadLetter, class: class, cause: cause, env: e, exchange: exchange, key: key}
}

// errCrashLimit is the error a job parked for crashing its workers carries.
var errCrashLimit = errors.New("the worker process running the job alone died")

// crash is the verdict on a quarantined job its worker died running: a
// crash counted, and the job back in the quarantine, or dead-lettered at
// the crash limit.
func (f facts) crash() verdict {
	crashes := min(f.d.Envelope.Crashes+1, broker.MaxAttempt)
	if crashes >= f.crashLimit {
		err := fmt.Errorf("worker: %w %d times (the crash limit): the job kills its workers", errCrashLimit, crashes)
		v := f.deadLetter(ClassCrash, err)
		v.env.Crashes, v.crashes = crashes, crashes
		return v
	}
	e := *f.d.Envelope
	e.Crashes = crashes
	return verdict{kind: verdictCrash, env: &e, key: f.work.QuarantineQueue, crashes: crashes}
}

// failed returns the envelope of the job after a failure: same id, the
// failure recorded, the first failure time and the origin kept from an
// earlier failure. The attempt is not changed.
func (f facts) failed(class string, err error) *broker.Envelope {
	d := f.d
	now := f.now.UTC()
	e := *d.Envelope
	prev := e.Failure
	origin := broker.Origin{Exchange: d.Exchange, RoutingKey: d.RoutingKey, Queue: d.Queue}
	if d.Queue == f.work.QuarantineQueue {
		// Moved there from the work queue: a replay sends it back to the
		// work queue itself.
		origin = broker.Origin{RoutingKey: f.work.Name, Queue: f.work.Name}
	}
	fl := &broker.Failure{
		Error:         errorText(err),
		Class:         class,
		FirstFailedAt: now,
		FailedAt:      now,
		Origin:        origin,
		WorkerHost:    f.host,
	}
	if prev != nil {
		if !prev.FirstFailedAt.IsZero() {
			fl.FirstFailedAt = prev.FirstFailedAt
		}
		if prev.Origin.Queue != "" {
			fl.Origin = prev.Origin
		}
	}
	e.Failure = fl
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
