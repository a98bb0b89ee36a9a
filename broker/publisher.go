package broker

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"
)

// Router maps a job type to the exchange and routing key it is published
// with. *topology.Topology is one.
type Router interface {
	Route(jobType string) (exchange, routingKey string, ok bool)
}

// PublisherOption configures NewPublisher.
type PublisherOption func(*publisherOptions) error

type publisherOptions struct {
	router Router
	appID  string
	log    zerolog.Logger
	window int
	now    func() time.Time
	hooks  []PublishHook
}

// WithRouter routes jobs by type, so callers need not name an exchange.
func WithRouter(r Router) PublisherOption {
	return func(o *publisherOptions) error {
		if r == nil {
			return errors.New("broker: WithRouter: nil router")
		}
		o.router = r
		return nil
	}
}

// WithAppID sets the app_id property of every job (default "warren"); name
// the producing service so operators can tell where a job came from.
func WithAppID(id string) PublisherOption {
	return func(o *publisherOptions) error {
		o.appID = id
		return nil
	}
}

// WithPublisherLogger sets the publisher's logger (default: the connection's).
func WithPublisherLogger(l zerolog.Logger) PublisherOption {
	return func(o *publisherOptions) error {
		o.log = l
		return nil
	}
}

// WithBatchWindow sets how many jobs of one PublishBatch may await their
// confirms at once (default 512). Larger windows use more memory and gain
// little once the broker is the bottleneck.
func WithBatchWindow(n int) PublisherOption {
	return func(o *publisherOptions) error {
		if n < 1 {
			return fmt.Errorf("broker: batch window %d must be at least 1", n)
		}
		o.window = n
		return nil
	}
}

// PublishOption adjusts one Publish call.
type PublishOption func(*publishTarget)

type publishTarget struct {
	exchange, key string
	explicit      bool
}

// To publishes to exchange with routing key, instead of the job type's route.
// The empty exchange is RabbitMQ's default exchange, which routes by queue
// name.
func To(exchange, routingKey string) PublishOption {
	return func(t *publishTarget) {
		t.exchange, t.key, t.explicit = exchange, routingKey, true
	}
}

// Publisher publishes jobs with publisher confirms: Publish returns nil only
// after the broker has taken responsibility for the job. Publishes are
// mandatory: a job no queue receives is returned by the broker and reported
// as ErrUnroutable. Confirms are pipelined: any number of goroutines may
// publish at once on one Publisher, and their jobs share one channel without
// waiting for each other's confirms.
//
// A Publisher is safe for concurrent use. When the broker closes its channel
// (for instance after a publish to an exchange deleted at run time), the jobs
// awaiting confirms fail with ErrClosed and the next Publish opens a new
// channel.
type Publisher struct {
	conn *Conn
	opts publisherOptions
	hook PublishHook // opts.hooks chained; nil when there are none

	mu     sync.Mutex // serializes publishes on the channel: delivery tags follow publish order
	ch     *confirmChannel
	closed bool

	known sync.Map // exchange name -> struct{}: exchanges seen to exist

	directMu sync.Mutex    // serializes replies to direct reply-to
	direct   *amqp.Channel // not in confirm mode: see SendDirectReply

	wg sync.WaitGroup // confirm loops
}

// SendDirectReply sends a reply to a caller waiting on RabbitMQ's direct
// reply-to (replyTo is its amq.rabbitmq.reply-to.* address) or on a reply
// queue of its own (amq.gen-*, see IsCallerReplyTo), on a channel without
// confirms, and returns once it is written. Such a reply is
// transient by nature: it exists only while its caller's channel does, the
// broker cannot be asked to keep it, and a confirm would only cost a round
// of work on both sides. If it is lost, its caller times out, as it would
// if the worker had died. Only the correlation id, the content type, the
// headers (on a failure) and the body are sent: Call fills in the reply's
// id and type from its request.
func (p *Publisher) SendDirectReply(ctx context.Context, env *Envelope, replyTo string) error {
	if !IsCallerReplyTo(replyTo) {
		return fmt.Errorf("%w: %q is neither a direct reply-to address nor a caller's own reply queue; publish the reply with PublishEnvelope", ErrInvalidJob, replyTo)
	}
	// Only what the caller reads: it knows the rest (id, type) from its
	// request, and a reply nobody can store need not be persistent.
	var done func(error)
	if p.hook != nil {
		done = p.startHook(ctx, KindReply, publishTarget{key: replyTo}, false, env)
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
	err := p.sendDirect(ctx, replyTo, msg)
	if done != nil {
		done(err)
	}
	return err
}

// Reply sends the reply to request (whose ReplyTo must be set): its
// result, encoded with MessagePack, or its failure when failure is not nil
// (see NewReply). To a caller waiting on direct reply-to or its own reply
// queue (IsCallerReplyTo) it is written as SendDirectReply writes it; to a
// durable reply queue it is published with a confirm and as mandatory
// (PublishEnvelope). It is what a worker pool does
// when a request ends.
func (p *Publisher) Reply(ctx context.Context, request *Envelope, result any, failure *Failure, now time.Time) error {
	if request.ReplyTo == "" {
		return fmt.Errorf("%w: job %s has no reply_to: nobody waits for its reply", ErrInvalidJob, request.ID)
	}
	if !IsCallerReplyTo(request.ReplyTo) || failure != nil || request.Traceparent != "" || p.hook != nil {
		r, err := NewReply(request, result, failure, now)
		if err != nil {
			return err
		}
		if p.hook != nil {
			ctx = ContextWithKind(ctx, KindReply)
		}
		if IsCallerReplyTo(request.ReplyTo) {
			return p.SendDirectReply(ctx, r, request.ReplyTo)
		}
		return p.PublishEnvelope(ctx, r, "", request.ReplyTo)
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
	return p.sendDirect(ctx, request.ReplyTo, amqp.Publishing{
		ContentType:   ContentType,
		CorrelationId: corr,
		DeliveryMode:  amqp.Transient,
		Body:          buf.Bytes(),
	})
}

// sendDirect writes msg to a direct reply-to address on the publisher's
// channel without confirms.
func (p *Publisher) sendDirect(ctx context.Context, replyTo string, msg amqp.Publishing) error {
	if err := checkFrame(&msg, int(p.conn.frameMax.Load()), cmp.Or(msg.MessageId, msg.CorrelationId)); err != nil {
		return err
	}
	p.directMu.Lock()
	defer p.directMu.Unlock()
	if p.closed {
		return fmt.Errorf("%w: publisher closed", ErrClosed)
	}
	if p.direct == nil || p.direct.IsClosed() {
		ch, err := p.conn.channel()
		if err != nil {
			return err
		}
		p.direct = ch
	}
	if err := p.direct.PublishWithContext(ctx, "", replyTo, false, false, msg); err != nil {
		if errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return err
	}
	return nil
}

// NewPublisher returns a Publisher on conn. It opens its channel on first
// use.
func NewPublisher(conn *Conn, opts ...PublisherOption) (*Publisher, error) {
	o := publisherOptions{appID: "warren", log: conn.opts.log, window: 512, now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return &Publisher{conn: conn, opts: o, hook: chainHooks(o.hooks)}, nil
}

// PublishError says which job failed to publish and why. It wraps one of
// ErrUnroutable, ErrNacked, ErrClosed, ErrNoExchange, ErrNoRoute, ErrInvalidJob
// or the broker's *amqp.Error.
type PublishError struct {
	JobID      string
	JobType    string
	Exchange   string
	RoutingKey string
	Err        error
}

func (e *PublishError) Error() string {
	if errors.Is(e.Err, ErrNoRoute) || errors.Is(e.Err, ErrInvalidJob) {
		return fmt.Sprintf("broker: publish job %s (type %q): %v", e.JobID, e.JobType, e.Err)
	}
	return fmt.Sprintf("broker: publish job %s (type %q) to exchange %q with key %q: %v", e.JobID, e.JobType, e.Exchange, e.RoutingKey, e.Err)
}

func (e *PublishError) Unwrap() error { return e.Err }

// Publish sends job and waits for the broker's confirm. It returns nil only
// when the broker confirmed the job; a nack, a return (ErrUnroutable), a lost
// channel or connection (ErrClosed) or the end of ctx is an error. After an
// ErrClosed or a ctx error the job may or may not have been stored: publish
// it again with the same ID (handlers de-duplicate on it).
//
// The job's ID is generated when empty; read it back from the job with
// PublishJob if the caller needs it.
func (p *Publisher) Publish(ctx context.Context, job Job, opts ...PublishOption) error {
	_, err := p.PublishJob(ctx, job, opts...)
	return err
}

// PublishJob is Publish returning the job's ID, generated when job.ID is
// empty.
func (p *Publisher) PublishJob(ctx context.Context, job Job, opts ...PublishOption) (string, error) {
	env, err := NewEnvelope(job, p.opts.now())
	if err != nil {
		return job.ID, err
	}
	return env.ID, p.publishConfirmed(ctx, env, targetOf(opts))
}

// publishConfirmed sends env and waits for its confirm. When the
// connection is lost before the confirm, it sends env again, with the same
// id, once reconnected (until ctx ends): the broker may then hold it twice,
// never not at all while this returns nil.
func (p *Publisher) publishConfirmed(ctx context.Context, env *Envelope, t publishTarget) error {
	for {
		s, _ := p.conn.session()
		f, err := p.startEnvelope(ctx, env, t)
		if err == nil {
			if err = f.wait(ctx); err == nil {
				return nil
			}
		}
		if !p.lostConnection(ctx, s, err) {
			return err
		}
		p.opts.log.Warn().Str("job_id", env.ID).Str("job_type", env.Type).Err(err).
			Msg("broker: connection lost before the confirm; publishing the job again once reconnected")
	}
}

// lostConnection reports whether err came from losing the connection s
// (or from having none): worth sending again after reconnection.
func (p *Publisher) lostConnection(ctx context.Context, s *session, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	for _, final := range []error{ErrNacked, ErrUnroutable, ErrNoExchange, ErrNoRoute, ErrInvalidJob, ErrBodyTooLarge} {
		if errors.Is(err, final) {
			return false // the broker answered, or the job cannot be sent
		}
	}
	// Else ErrClosed, ErrDisconnected, or the socket's own error (a reset
	// while writing): worth sending again if the connection went.
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed || p.conn.State() == Closed {
		return false
	}
	if errors.Is(err, ErrDisconnected) || s == nil {
		return true
	}
	var ae *amqp.Error
	if errors.As(err, &ae) && channelLevel(ae.Code) {
		return false // the broker closed the channel for this publish
	}
	// The channel's confirms fail as soon as its close arrives; the
	// connection's end is noticed a moment later.
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-s.done:
		return true // the connection went, not just the channel
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// channelLevel tells the AMQP reply codes that close a channel, not a
// connection: the broker refused something on it.
func channelLevel(code int) bool {
	switch code {
	case amqp.ContentTooLarge, amqp.NoRoute, amqp.NoConsumers, amqp.AccessRefused,
		amqp.NotFound, amqp.ResourceLocked, amqp.PreconditionFailed:
		return true
	}
	return false
}

// BatchError reports the jobs of a PublishBatch that were not confirmed.
// Every job not listed was confirmed.
type BatchError struct {
	Failed []BatchFailure
}

// BatchFailure is one job of a batch that failed.
type BatchFailure struct {
	Index int // position in the slice given to PublishBatch
	JobID string
	Err   error
}

func (e *BatchError) Error() string {
	if len(e.Failed) == 0 {
		return "broker: batch failed"
	}
	return fmt.Sprintf("broker: %d job(s) of the batch were not confirmed; first: %v", len(e.Failed), e.Failed[0].Err)
}

// Unwrap lets errors.Is find the sentinels of the failures.
func (e *BatchError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// PublishBatch publishes jobs with their confirms pipelined (up to the batch
// window outstanding) and waits for all of them. It returns nil when every
// job was confirmed, else a *BatchError listing exactly the jobs that were
// not: republish those. Jobs without an ID get one; the slice is updated in
// place so the caller can read the IDs.
func (p *Publisher) PublishBatch(ctx context.Context, jobs []Job, opts ...PublishOption) error {
	var failed []BatchFailure
	type sent struct {
		f     *inflight
		index int
	}
	window := make([]sent, 0, min(len(jobs), p.opts.window))
	settle := func(s sent) {
		if err := s.f.wait(ctx); err != nil {
			failed = append(failed, BatchFailure{Index: s.index, JobID: jobs[s.index].ID, Err: err})
		}
	}
	for i := range jobs {
		if len(window) == p.opts.window {
			settle(window[0])
			window = window[1:]
		}
		f, err := p.start(ctx, jobs[i], opts)
		if err != nil {
			failed = append(failed, BatchFailure{Index: i, JobID: jobs[i].ID, Err: err})
			continue
		}
		jobs[i].ID = f.env.ID
		window = append(window, sent{f, i})
	}
	for _, s := range window {
		settle(s)
	}
	if len(failed) > 0 {
		sort.Slice(failed, func(i, j int) bool { return failed[i].Index < failed[j].Index })
		return &BatchError{Failed: failed}
	}
	return nil
}

// Close waits until every job already sent has its outcome (or ctx ends),
// then closes the publisher's channel. Publishing afterwards fails with
// ErrClosed.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	cc := p.ch
	p.ch = nil
	p.mu.Unlock()
	p.directMu.Lock()
	direct := p.direct
	p.direct = nil
	p.directMu.Unlock()
	var err error
	if cc != nil {
		err = cc.close(ctx)
	}
	if direct != nil {
		direct.Close()
	}
	p.wg.Wait()
	return err
}

// inflight is a job sent and awaiting its outcome.
type inflight struct {
	env     *Envelope
	target  publishTarget
	pending *pending
	done    func(error) // the hooks', called once with the outcome
}

func (f *inflight) wait(ctx context.Context) error {
	select {
	case err := <-f.pending.result:
		if err != nil {
			return f.fail(err)
		}
		return f.end(nil)
	case <-ctx.Done():
		return f.fail(fmt.Errorf("gave up waiting for the broker's confirm; the job may or may not be stored, publish it again with the same id: %w", ctx.Err()))
	}
}

func (f *inflight) fail(err error) error {
	return f.end(&PublishError{JobID: f.env.ID, JobType: f.env.Type, Exchange: f.target.exchange, RoutingKey: f.target.key, Err: err})
}

// start validates and sends a job, returning once it is on the wire.
func (p *Publisher) start(ctx context.Context, job Job, opts []PublishOption) (*inflight, error) {
	env, err := NewEnvelope(job, p.opts.now())
	if err != nil {
		return nil, err
	}
	var t publishTarget
	for _, opt := range opts {
		opt(&t)
	}
	return p.startEnvelope(ctx, env, t)
}

// PublishEnvelope publishes env as it is, to exchange with routingKey, and
// waits for the broker's confirm, with the guarantees of Publish. It is how
// a job is passed on once it exists: retried into the delay path, parked in
// a dead-letter queue, replayed. Nothing in env is changed or generated, so
// a message that is not a well-formed job (no id, no type) can be parked
// as it came; AppID is set to the publisher's when empty.
func (p *Publisher) PublishEnvelope(ctx context.Context, env *Envelope, exchange, routingKey string) error {
	return p.publishConfirmed(ctx, env, publishTarget{exchange: exchange, key: routingKey, explicit: true})
}

// Confirmation is a publish on the wire, awaiting the broker's outcome.
type Confirmation struct {
	f *inflight
}

// Wait returns the outcome of the publish, as PublishEnvelope would: nil
// once the broker has the job, else a *PublishError. Giving up (ctx ends)
// leaves the outcome unknown. Call it once.
func (c *Confirmation) Wait(ctx context.Context) error { return c.f.wait(ctx) }

// Ready reports whether the outcome has come, so that Wait returns at
// once. Before Wait only.
func (c *Confirmation) Ready() bool { return len(c.f.pending.result) > 0 }

// SendEnvelope is PublishEnvelope without the wait: it returns once env is
// on the wire, and the Confirmation says when the broker has it. Sending
// many and then waiting for each, in order, pipelines the confirms (as
// PublishBatch does); keep a bounded number outstanding.
func (p *Publisher) SendEnvelope(ctx context.Context, env *Envelope, exchange, routingKey string) (*Confirmation, error) {
	f, err := p.startEnvelope(ctx, env, publishTarget{exchange: exchange, key: routingKey, explicit: true})
	if err != nil {
		return nil, err
	}
	return &Confirmation{f: f}, nil
}

// startEnvelope routes env (unless t is explicit) and sends it.
func (p *Publisher) startEnvelope(ctx context.Context, env *Envelope, t publishTarget) (*inflight, error) {
	f := &inflight{env: env, target: t}
	if env.AppID == "" {
		env.AppID = p.opts.appID
	}
	if !t.explicit {
		if p.opts.router == nil {
			return nil, f.fail(ErrNoRoute)
		}
		ex, key, ok := p.opts.router.Route(env.Type)
		if !ok {
			return nil, f.fail(ErrNoRoute)
		}
		f.target = publishTarget{exchange: ex, key: key, explicit: true}
	}
	if p.hook != nil {
		f.done = p.startHook(ctx, KindFromContext(ctx), f.target, true, env)
	}
	if err := ctx.Err(); err != nil {
		return nil, f.fail(err)
	}
	// Connected and not blocked first: the exchange check needs a channel.
	if err := p.conn.waitUnblocked(ctx); err != nil {
		return nil, f.fail(err)
	}
	if err := p.checkExchange(ctx, f.target.exchange); err != nil {
		return nil, f.fail(err)
	}
	pd, err := p.send(ctx, f.target, env.publishing(), env.ID)
	if err != nil {
		return nil, f.fail(err)
	}
	f.pending = pd
	return f, nil
}

// checkExchange makes sure exchange exists before the first publish to it,
// with a passive declare on a separate channel: a publish to a missing
// exchange would make the broker close the publishing channel and fail every
// other job awaiting a confirm on it.
func (p *Publisher) checkExchange(ctx context.Context, exchange string) error {
	return checkExchange(ctx, p.conn, &p.known, exchange)
}

// checkExchange checks that exchange exists, unless known (exchange name ->
// struct{}) says it was seen before, and records it there.
func checkExchange(ctx context.Context, conn *Conn, known *sync.Map, exchange string) error {
	if _, ok := known.Load(exchange); ok {
		return nil
	}
	d := NewDeclarer(conn)
	defer d.Close()
	ok, err := d.ExchangeExists(ctx, exchange)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: no exchange %q", ErrNoExchange, exchange)
	}
	known.Store(exchange, struct{}{})
	return nil
}

func (p *Publisher) send(ctx context.Context, t publishTarget, msg amqp.Publishing, id string) (*pending, error) {
	if err := checkFrame(&msg, int(p.conn.frameMax.Load()), id); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("%w: publisher closed", ErrClosed)
	}
	cc, err := p.channelLocked()
	if err != nil {
		return nil, err
	}
	pd := &pending{id: id, exchange: t.exchange, key: t.key, result: make(chan error, 1)}
	seq := cc.ch.GetNextPublishSeqNo()
	cc.add(seq, pd)
	// Mandatory, except to a caller's reply address: RabbitMQ 3.x returns
	// every mandatory publish to direct reply-to as unroutable even when it
	// delivers it, and a caller's own reply queue that is gone means only
	// that nobody waits any more.
	mandatory := !(t.exchange == "" && IsCallerReplyTo(t.key))
	if _, err := cc.ch.PublishWithDeferredConfirmWithContext(ctx, t.exchange, t.key, mandatory, false, msg); err != nil {
		cc.remove(seq)
		if errors.Is(err, amqp.ErrClosed) {
			return nil, fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return nil, err
	}
	return pd, nil
}

// channelLocked returns the current confirm channel, opening a new one when
// there is none or the broker closed the last. p.mu must be held.
func (p *Publisher) channelLocked() (*confirmChannel, error) {
	if p.ch != nil && !p.ch.isClosed() {
		return p.ch, nil
	}
	if err := p.conn.Err(); err != nil {
		return nil, err
	}
	ch, err := p.conn.channel()
	if err != nil {
		return nil, err
	}
	// When the broker closes the channel, perhaps because an exchange was
	// deleted, exchanges are checked again before their next use.
	cc, err := newConfirmChannel(ch, p.opts.log, &p.wg, p.known.Clear)
	if err != nil {
		return nil, err
	}
	p.ch = cc
	return cc, nil
}
