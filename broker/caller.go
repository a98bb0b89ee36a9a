package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/internal/logfield"
)

// CallerOption configures NewCaller.
type CallerOption func(*callerOptions) error

type callerOptions struct {
	direct  bool // WithCallDirectReplyTo
	durable bool
	router  Router
	appID   string
	log     zerolog.Logger
	timeout time.Duration
	// checkPeriod: WithConsumerCheck; 0 for no check (the default).
	checkPeriod time.Duration
	// validator checks requests' payloads (WithCallValidator).
	validator PayloadValidator
}

// WithCallRouter routes requests by job type, as WithRouter does for a
// Publisher.
func WithCallRouter(r Router) CallerOption {
	return func(o *callerOptions) error {
		if r == nil {
			return errors.New("broker: WithCallRouter: nil router")
		}
		o.router = r
		return nil
	}
}

// WithCallAppID sets the app_id of requests (default "warren").
func WithCallAppID(id string) CallerOption {
	return func(o *callerOptions) error {
		o.appID = id
		return nil
	}
}

// WithCallLogger sets the caller's logger (default: the connection's).
func WithCallLogger(l zerolog.Logger) CallerOption {
	return func(o *callerOptions) error {
		o.log = l
		return nil
	}
}

// WithCallReplyQueue makes the Caller receive its replies in a queue of
// its own: an exclusive, server-named queue (amq.gen-…) that its channel
// declares and consumes without acks, declared again on each new channel,
// and deleted by the broker with it. It is the default; the option says
// so where the choice matters to the reader. WithCallDirectReplyTo is the
// other way.
func WithCallReplyQueue() CallerOption {
	return func(o *callerOptions) error {
		o.direct = false
		return nil
	}
}

// WithCallDirectReplyTo makes the Caller receive its replies through
// RabbitMQ's direct reply-to (amq.rabbitmq.reply-to) instead of a reply
// queue of its own: no queue is declared, and the replies come straight to
// the Caller's channel. It saves a queue per Caller on the broker (one
// declare per channel opened) and measured 5-10% fewer calls per second
// than a reply queue (docs/benchmarks.md). Workers answer both alike:
// unconfirmed, and dropped by the broker once the Caller is gone (see
// IsCallerReplyTo).
func WithCallDirectReplyTo() CallerOption {
	return func(o *callerOptions) error {
		o.direct = true
		return nil
	}
}

// WithDurableRequests makes the Caller send its requests persistent
// (delivery mode 2), as a Publisher sends jobs, instead of transient. A
// request is awaited: once its caller's deadline passes, nobody wants it,
// and a worker that receives it later acks it unrun (warren-deadline). So
// by default a request is transient: the broker keeps it in memory only,
// which on a classic queue saves a disk write per call (quorum queues
// store every message alike, whatever its delivery mode). Ask for durable
// requests when a request must survive a restart of the broker's node
// within its caller's deadline: long deadlines, or callers that retry the
// same job id after a timeout.
func WithDurableRequests() CallerOption {
	return func(o *callerOptions) error {
		o.durable = true
		return nil
	}
}

// DefaultCallTimeout bounds a Call whose ctx has no deadline.
const DefaultCallTimeout = 30 * time.Second

// WithCallTimeout sets how long a Call whose ctx has no deadline waits
// (default DefaultCallTimeout).
func WithCallTimeout(d time.Duration) CallerOption {
	return func(o *callerOptions) error {
		if d <= 0 {
			return fmt.Errorf("broker: call timeout %s must be positive", d)
		}
		o.timeout = d
		return nil
	}
}

// Caller sends requests and awaits their replies in a reply queue of its
// own: an exclusive, server-named queue its channel declares and consumes,
// where the replies come back, matched to their callers by correlation id.
// Any number of goroutines may call at once on one Caller.
// WithCallDirectReplyTo uses RabbitMQ's direct reply-to instead.
//
// Requests are transient (WithDurableRequests makes them persistent), and
// published mandatory, not confirmed: the reply is the proof that the
// broker had the request, and a request no queue receives fails
// at once with ErrUnroutable. A reply that comes after its caller gave up,
// or that matches no call, is discarded and counted (Discarded).
type Caller struct {
	pipe pipe // requests go out as every publish does; only their channel is the Caller's own
	opts callerOptions

	mu     sync.Mutex // serializes publishes and guards ch and closed
	ch     *callChannel
	closed bool
	flush  coalescer // concurrent calls share their flushes

	discarded atomic.Uint64
	wg        sync.WaitGroup // reply loops

	check   *consumerCheck // nil when WithConsumerCheck(0)
	payload *payloadCheck  // nil without WithCallValidator
}

// NewCaller returns a Caller on conn. It opens its channel on first use.
func NewCaller(conn *Conn, opts ...CallerOption) (*Caller, error) {
	o := callerOptions{appID: "warren", log: conn.opts.log, timeout: DefaultCallTimeout}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	c := &Caller{
		pipe: pipe{conn: conn, router: o.router, appID: o.appID, log: o.log, observe: chainPublish(conn.opts.observers)},
		opts: o,
	}
	if o.checkPeriod > 0 {
		c.check = newConsumerCheck(conn, o.checkPeriod)
	}
	if o.validator != nil {
		c.payload = &payloadCheck{v: o.validator, log: o.log}
	}
	return c, nil
}

// callResult is what a call waits for: a reply, or why none will come.
type callResult struct {
	env *Envelope
	err error
}

// callChannel is a channel consuming the Caller's replies (DirectReplyTo,
// or its reply queue), with the calls awaiting their replies on it.
type callChannel struct {
	ch      *amqp.Channel
	replyTo string // the requests' reply_to: DirectReplyTo, or the reply queue

	mu      sync.Mutex
	pending map[string]chan callResult // by correlation id; buffered 1
	closed  bool
}

// Call publishes job as a request and waits for its reply, until ctx ends
// (or DefaultCallTimeout, when ctx has no deadline). The request carries
// the deadline (warren-deadline), so no worker starts it after the caller
// gave up.
//
// It returns the reply, whose body is the handler's result (decode it with
// Decode); a *RemoteError when the job failed for good in its worker (it is
// in a dead-letter queue); an *UnavailableError (ErrNoConsumer,
// ErrQueuePaused, ErrBreakerOpen) at once, without publishing, when no
// worker consumes the request's queue, with WithConsumerCheck; an error
// wrapping ErrReplyTimeout (and
// context.DeadlineExceeded) when no reply came in time; a *PublishError
// (ErrUnroutable, ErrNoRoute, ErrClosed, …) when the request could not be
// sent or its channel was lost while waiting, or wrapping
// ErrInvalidPayload, without publishing, when WithCallValidator refuses
// its payload.
//
// The job is routed by its type (WithCallRouter) unless To or ToQueue
// names the target; a request cannot be scheduled (At or In is an error
// wrapping ErrInvalidOption). Its reply_to is set to the Caller's reply
// queue (or the direct reply-to, WithCallDirectReplyTo). A job without a
// correlation id is sent without one, and its reply matched by its id (the
// reply's correlation id is the request's, else its id).
func (c *Caller) Call(ctx context.Context, job Job, opts ...PublishOption) (reply *Envelope, err error) {
	start := time.Now()
	deadline, ok := ctx.Deadline()
	var expired <-chan time.Time // the default timeout's, when ctx has no deadline
	if !ok {
		// A timer, not context.WithTimeout: the wait is the only thing
		// to bound, and a timer is a third of the cost; a pooled one
		// costs no allocation.
		deadline = start.Add(c.opts.timeout)
		t := getTimer(c.opts.timeout)
		defer putTimer(t)
		expired = t.C
	}
	o, err := applyPublishOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.delayed {
		return nil, fmt.Errorf("%w: a request cannot be scheduled (At, In): its caller waits for the reply now", ErrInvalidOption)
	}
	if o.uniqueKey != "" {
		return nil, fmt.Errorf("%w: a request cannot hold a UniqueKey: its caller waits for it, and two callers are two requests", ErrInvalidOption)
	}
	if o.slip != nil {
		return nil, fmt.Errorf("%w: a request cannot start a chain (RoutingSlip): the chain's steps are not awaited; publish it, and have its last step reply", ErrInvalidOption)
	}
	if o.expire > 0 {
		return nil, fmt.Errorf("%w: a request cannot Expire: its deadline (the caller's timeout) says when it is no longer wanted", ErrInvalidOption)
	}
	job.ReplyTo = DirectReplyTo // once sent: the reply queue's name, or the direct reply-to (WithCallDirectReplyTo)
	env, err := newEnvelope(job, start)
	if err != nil {
		return nil, err
	}
	if err := c.payload.check(env); err != nil {
		return nil, &PublishError{JobID: env.ID, JobType: env.Type, Err: err}
	}
	// A worker replies with the request's correlation id, else its id: a
	// request needs none of its own (36 bytes less for the broker to
	// parse and store, for each call).
	corr := env.CorrelationID
	if corr == "" {
		corr = env.ID
	}
	env.Deadline = deadline
	// The observers see how the call ends, not just the publish.
	f, err := c.pipe.begin(ctx, KindRequest, env, o.target, false)
	if err != nil {
		return nil, err
	}
	defer func() { f.end(err) }()
	fail := f.fail
	if err := c.pipe.ready(ctx, f.target.exchange); err != nil {
		return nil, fail(err)
	}
	if c.check != nil {
		var buf [1]string
		if qs := requestQueues(buf[:0], f.target, !o.target.explicit, c.pipe.router, env.Type); len(qs) > 0 {
			if err := c.check.check(ctx, qs); err != nil {
				return nil, f.end(err) // nothing published: no *PublishError
			}
		}
	}

	msg := env.publishing()
	if !c.opts.durable {
		msg.DeliveryMode = amqp.Transient
	}
	result := resultChans.Get().(chan callResult)
	cc, err := c.send(ctx, corr, msg, f.target, result)
	if err != nil {
		resultChans.Put(result)
		return nil, fail(err)
	}
	defer func() {
		// Once forgotten, nothing sends to result any more (deliver and
		// shutdown send under cc.mu): empty, it can serve another call.
		cc.forget(corr)
		select {
		case <-result:
		default:
		}
		resultChans.Put(result)
	}()

	timedOut := func() (*Envelope, error) {
		return nil, fmt.Errorf("%w (job %s, type %q, after %s): %w", ErrReplyTimeout, env.ID, env.Type,
			time.Since(start).Round(time.Millisecond), context.DeadlineExceeded)
	}
	select {
	case <-expired:
		return timedOut()
	case r := <-result:
		if r.err != nil {
			return nil, fail(r.err)
		}
		if r.env.ID == "" { // a direct reply carries only what Call cannot know
			r.env.ID = fitShort(env.ID+ReplyTypeSuffix, env.ID)
		}
		if r.env.Type == "" {
			r.env.Type = fitShort(env.Type+ReplyTypeSuffix, env.Type)
		}
		if re := r.env.RemoteErr(); re != nil {
			return r.env, re
		}
		return r.env, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return timedOut()
		}
		return nil, fmt.Errorf("broker: call of job %s (type %q) given up: %w", env.ID, env.Type, ctx.Err())
	}
}

// timers holds the timers of calls whose ctx has no deadline. Since Go
// 1.23 a timer's channel holds no stale tick after Stop or Reset, so a
// stopped timer can serve another call.
var timers sync.Pool

func getTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	timers.Put(t)
}

// resultChans holds the channels calls wait on, buffered 1 so the reply
// loop never waits for a caller.
var resultChans = sync.Pool{New: func() any { return make(chan callResult, 1) }}

// send registers the call and publishes its request.
func (c *Caller) send(ctx context.Context, corr string, msg amqp.Publishing, t publishTarget, result chan callResult) (*callChannel, error) {
	if err := c.pipe.checkFrame(&msg, msg.MessageId); err != nil {
		return nil, err
	}
	c.flush.enter()
	c.mu.Lock()
	defer func() {
		c.flush.leave()
		c.mu.Unlock()
	}()
	if c.closed {
		return nil, fmt.Errorf("%w: caller closed", ErrClosed)
	}
	cc, err := c.channelLocked()
	if err != nil {
		return nil, err
	}
	if err := cc.await(corr, result); err != nil {
		return nil, err
	}
	msg.ReplyTo = cc.replyTo
	err = ctx.Err()
	if err == nil {
		err = c.flush.publish(cc.ch, t.exchange, t.key, true, msg)
	}
	if err != nil {
		cc.forget(corr)
		if errors.Is(err, amqp.ErrClosed) {
			return nil, fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return nil, err
	}
	return cc, nil
}

// channelLocked returns the current reply channel, opening one when there
// is none or the last was closed. c.mu must be held.
func (c *Caller) channelLocked() (*callChannel, error) {
	if c.ch != nil && !c.ch.isClosed() {
		return c.ch, nil
	}
	if err := c.pipe.conn.Err(); err != nil {
		return nil, err
	}
	ch, err := c.pipe.conn.channel()
	if err != nil {
		return nil, err
	}
	// Buffers: amqp091-go abandons a notification after blocking 5s; the
	// loop is always ready, and the buffers absorb bursts of returns (one
	// per request no queue took) while it works. One close error at most.
	returns := ch.NotifyReturn(make(chan amqp.Return, 64))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	// Direct reply-to is consumed without acks (RabbitMQ requires it):
	// the replies are not stored anywhere to be acked. A reply queue is
	// too: its replies are for this channel's calls alone, and a reply
	// lost with the connection times its call out either way.
	replyTo := DirectReplyTo
	if !c.opts.direct {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		var ae *amqp.Error
		switch {
		case errors.As(err, &ae) && ae.Code == amqp.AccessRefused:
			// A user without configure and read permissions on amq.gen-.*
			// cannot have a reply queue; direct reply-to needs none. The
			// refusal closed the channel: take another.
			c.opts.direct = true
			c.opts.log.Warn().Err(err).Msg("broker: the caller may not declare its reply queue (it needs configure and read permissions on '^amq\\.gen-.*'); its replies come through direct reply-to")
			ch.Close()
			return c.channelLocked()
		case err != nil:
			ch.Close()
			return nil, fmt.Errorf("broker: declare the caller's reply queue (if the broker limits queues, raise the limit or use WithCallDirectReplyTo): %w", err)
		}
		replyTo = q.Name
	}
	replies, err := ch.Consume(replyTo, "", true, false, false, false, nil)
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("broker: consume replies from %s: %w", replyTo, err)
	}
	cc := &callChannel{ch: ch, replyTo: replyTo, pending: make(map[string]chan callResult)}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.loop(cc, replies, returns, closes)
	}()
	c.ch = cc
	return cc, nil
}

// loop hands each reply to its caller. It ends when amqp091-go closes the
// replies, which it does when the channel closes; then every call still
// waiting fails with ErrClosed.
func (c *Caller) loop(cc *callChannel, replies <-chan amqp.Delivery, returns <-chan amqp.Return, closes <-chan *amqp.Error) {
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			// A request without a correlation id of its own awaits its id.
			cc.deliver(cmp.Or(r.CorrelationId, r.MessageId), callResult{err: fmt.Errorf("%w (%s)", ErrUnroutable, r.ReplyText)})
		case d, ok := <-replies:
			if !ok {
				var reason error = ErrClosed
				if err, ok := <-closes; ok && err != nil {
					reason = fmt.Errorf("%w: %w", ErrClosed, &redactedError{msg: "broker: reply channel closed", err: err, secret: c.pipe.conn.secretOf()})
				}
				cc.shutdown(reason)
				if returns != nil { // nil once closed: ranging over it would block for ever
					for range returns {
					}
				}
				return
			}
			// A direct reply has no type (see Sender.Reply): Call
			// fills it in.
			m := messageOf(&d)
			m.typeOptional = true
			env, err := readMessage(&m)
			if err != nil {
				c.discarded.Add(1)
				c.opts.log.Warn().Err(err).Str(logfield.CorrelationID, d.CorrelationId).Msg("broker: discarded a malformed reply")
				continue
			}
			if !cc.deliver(d.CorrelationId, callResult{env: env}) {
				c.discarded.Add(1)
				c.opts.log.Debug().Str(logfield.CorrelationID, d.CorrelationId).Msg("broker: discarded a reply nobody waits for (late, or unknown)")
			}
		}
	}
}

// await registers a call.
func (cc *callChannel) await(corr string, result chan callResult) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed {
		return fmt.Errorf("%w: reply channel closed", ErrClosed)
	}
	if _, dup := cc.pending[corr]; dup {
		return fmt.Errorf("%w: a call with correlation id %q is already waiting; give each call its own", ErrInvalidJob, corr)
	}
	cc.pending[corr] = result
	return nil
}

// forget drops a call, answered or given up.
func (cc *callChannel) forget(corr string) {
	cc.mu.Lock()
	delete(cc.pending, corr)
	cc.mu.Unlock()
}

// deliver hands r to the call waiting for corr, and reports whether there
// was one.
func (cc *callChannel) deliver(corr string, r callResult) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	ch, ok := cc.pending[corr]
	if ok {
		delete(cc.pending, corr)
		ch <- r // buffered 1, and each call is delivered once; under cc.mu, so never after forget
	}
	return ok
}

func (cc *callChannel) shutdown(reason error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.closed = true
	for corr, ch := range cc.pending {
		ch <- callResult{err: reason}
		delete(cc.pending, corr)
	}
}

func (cc *callChannel) isClosed() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.closed
}

// Discarded is the number of replies that came after their caller gave up
// or matched no call.
func (c *Caller) Discarded() uint64 { return c.discarded.Load() }

// Close closes the caller's channel, waiting for the broker's answer until
// ctx ends; calls still waiting fail with ErrClosed.
func (c *Caller) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	cc := c.ch
	c.ch = nil
	c.mu.Unlock()
	var err error
	if cc != nil {
		err = closeChannel(ctx, cc.ch, "caller channel")
	}
	if c.check != nil {
		err = errors.Join(err, c.check.close(ctx))
	}
	// The reply loop ends when the channel is gone; if the close above
	// timed out, the connection's own close ends it.
	c.wg.Wait()
	return err
}
