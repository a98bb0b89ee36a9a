package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/logfield"
)

// Sender passes messages along once they exist: a job retried into the
// delay cascade, parked in a dead-letter queue, moved to a quarantine or
// replayed; a raw message moved as it is; the reply to a request. It is
// what worker pools and the dead-letter tools publish with; producers use
// a Publisher. Each message names its exchange and routing key, and the
// kind of publish it is (reported to the Conn's observers, WithObserver).
//
// Messages are published with publisher confirms and as mandatory, with
// the guarantees of Publisher.Publish; replies to a caller waiting on its
// own channel are written without (see Reply). A Sender is safe for
// concurrent use; its messages share one confirm channel, opened on first
// use and again after the broker closes it.
type Sender struct {
	pipe pipe

	mu        sync.Mutex // serializes publishes on the channel: delivery tags follow publish order
	ch        *confirmChannel
	closed    bool
	sendFlush coalescer // concurrent publishes share their flushes

	directMu     sync.Mutex    // serializes replies to callers' own channels; guards direct and directClosed
	directFlush  coalescer     // concurrent replies share their flushes
	direct       *amqp.Channel // not in confirm mode: see sendDirectReply
	directClosed bool          // closed is guarded by mu: Close sets both

	wg sync.WaitGroup // confirm loops
}

// NewSender returns a Sender on conn. It opens its channel on first use.
// It takes WithAppID and WithPublisherLogger; WithRouter and
// WithBatchWindow are for a Publisher and refused. The Conn's observers
// see its messages.
func NewSender(conn *Conn, opts ...PublisherOption) (*Sender, error) {
	o, err := publisherOptionsOf(conn, opts)
	if err != nil {
		return nil, err
	}
	if o.publisherOnly != "" {
		return nil, fmt.Errorf("broker: NewSender: %s is an option of NewPublisher; a Sender is told where each message goes", o.publisherOnly)
	}
	return newSender(conn, o), nil
}

func newSender(conn *Conn, o publisherOptions) *Sender {
	return &Sender{pipe: pipe{conn: conn, router: o.router, appID: o.appID, log: o.log, observe: chainPublish(conn.opts.observers)}}
}

// Confirmation is a publish on the wire, awaiting the broker's outcome.
type Confirmation struct {
	f *inflight
}

// Wait returns the outcome of the publish, as Sender.Publish would: nil
// once the broker has the job, else a *PublishError. Giving up (ctx ends)
// leaves the outcome unknown. Call it once.
func (c *Confirmation) Wait(ctx context.Context) error { return c.f.wait(ctx) }

// Ready reports whether the outcome has come, so that Wait returns at
// once. Before Wait only.
func (c *Confirmation) Ready() bool { return len(c.f.pending.result) > 0 }

// Send publishes env as it is, to exchange with routingKey, and returns
// once it is on the wire; the Confirmation says when the broker has it.
// Sending many and then waiting for each, in order, pipelines the
// confirms; keep a bounded number outstanding. The observers see it as kind,
// and its outcome when Confirmation.Wait returns.
//
// Nothing in env is changed or generated, so a message that is not a
// well-formed job (no id, no type) can be parked as it came; AppID is set
// to the sender's when empty.
func (s *Sender) Send(ctx context.Context, kind PublishKind, env *Envelope, exchange, routingKey string) (*Confirmation, error) {
	f, err := s.start(ctx, kind, env, publishTarget{exchange: exchange, key: routingKey, explicit: true})
	if err != nil {
		return nil, err
	}
	return &Confirmation{f: f}, nil
}

// Publish is Send waiting for the broker's confirm, with the guarantees
// of Publisher.Publish: when the connection is lost before the confirm,
// env is sent again, with the same id, once reconnected (until ctx ends).
func (s *Sender) Publish(ctx context.Context, kind PublishKind, env *Envelope, exchange, routingKey string) error {
	return s.publishConfirmed(ctx, kind, env, publishTarget{exchange: exchange, key: routingKey, explicit: true})
}

// PublishMessage publishes msg exactly as it is (properties, headers,
// body; the app id is not filled in, nothing is generated) to exchange
// with routingKey, as mandatory, and waits for the broker's confirm: nil
// only once the broker has the message; a return is ErrUnroutable (through
// the default exchange: no queue of that name), a nack ErrNacked, a
// missing exchange ErrNoExchange, a lost channel ErrClosed. The error is a
// *PublishError naming msg's message id and type. It is for tools that
// move messages as they are (dead-letter export and import); the
// observers do not see it. Headers the broker wrote on a delivery (BrokerHeader) are
// left out.
//
// The broker checks what a job publish never sets: a user_id property
// other than the connection's user makes it close the channel
// (PRECONDITION_FAILED), which fails this publish with ErrClosed; the next
// publish opens a new channel.
func (s *Sender) PublishMessage(ctx context.Context, exchange, routingKey string, msg Message) error {
	t := publishTarget{exchange: exchange, key: routingKey, explicit: true}
	f := &inflight{id: msg.MessageID, jobType: msg.Type, target: t}
	if err := ctx.Err(); err != nil {
		return f.fail(err)
	}
	if err := s.pipe.ready(ctx, exchange); err != nil {
		return f.fail(err)
	}
	pub := msg.publishing()
	pub.Headers = withoutBrokerHeaders(pub.Headers)
	pd, err := s.send(ctx, t, pub, msg.MessageID)
	if err != nil {
		return f.fail(err)
	}
	f.pending = pd
	return f.wait(ctx)
}

// publishConfirmed sends env and waits for its confirm. When the
// connection is lost before the confirm, it sends env again, with the same
// id, once reconnected (until ctx ends): the broker may then hold it twice,
// never not at all while this returns nil.
func (s *Sender) publishConfirmed(ctx context.Context, kind PublishKind, env *Envelope, t publishTarget) error {
	for {
		ss, _ := s.pipe.conn.session()
		f, err := s.start(ctx, kind, env, t)
		if err == nil {
			if err = f.wait(ctx); err == nil {
				return nil
			}
		}
		if !s.lostConnection(ctx, ss, err) {
			return err
		}
		s.pipe.log.Warn().Str(logfield.JobID, env.ID).Str(logfield.JobType, env.Type).Err(err).
			Msg("broker: connection lost before the confirm; publishing the job again once reconnected")
	}
}

// lostConnection reports whether err came from losing the connection ss
// (or from having none): worth sending again after reconnection.
func (s *Sender) lostConnection(ctx context.Context, ss *session, err error) bool {
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
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || s.pipe.conn.State() == Closed {
		return false
	}
	if errors.Is(err, ErrDisconnected) || ss == nil {
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
	case <-ss.done:
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

// start routes env (unless t is explicit) and sends it, returning once it
// is on the wire.
func (s *Sender) start(ctx context.Context, kind PublishKind, env *Envelope, t publishTarget) (*inflight, error) {
	return s.startFlushed(ctx, kind, env, t, true)
}

// startUnflushed is start, except that the message is left in the
// connection's write buffer: it goes out with the next flush (flush, any
// other frame sent on the connection, or a full buffer). Call flush before
// waiting for its confirm.
func (s *Sender) startUnflushed(ctx context.Context, kind PublishKind, env *Envelope, t publishTarget) (*inflight, error) {
	return s.startFlushed(ctx, kind, env, t, false)
}

func (s *Sender) startFlushed(ctx context.Context, kind PublishKind, env *Envelope, t publishTarget, flush bool) (*inflight, error) {
	f, err := s.pipe.begin(ctx, kind, env, t, true)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, f.fail(err)
	}
	if err := s.pipe.ready(ctx, f.target.exchange); err != nil {
		return nil, f.fail(err)
	}
	pd, err := s.sendFlushed(ctx, f.target, env.publishing(), env.ID, flush)
	if err != nil {
		return nil, f.fail(err)
	}
	f.pending = pd
	return f, nil
}

// send writes msg on the confirm channel and returns its pending confirm.
func (s *Sender) send(ctx context.Context, t publishTarget, msg amqp.Publishing, id string) (*pending, error) {
	return s.sendFlushed(ctx, t, msg, id, true)
}

func (s *Sender) sendFlushed(ctx context.Context, t publishTarget, msg amqp.Publishing, id string, flush bool) (*pending, error) {
	if err := s.pipe.checkFrame(&msg, id); err != nil {
		return nil, err
	}
	s.sendFlush.enter()
	s.mu.Lock()
	defer func() {
		s.sendFlush.leave()
		s.mu.Unlock()
	}()
	if s.closed {
		return nil, fmt.Errorf("%w: sender closed", ErrClosed)
	}
	cc, err := s.channelLocked()
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
	if err := ctx.Err(); err != nil {
		cc.remove(seq)
		return nil, err
	}
	if flush {
		// Concurrent publishes share their flushes.
		err = s.sendFlush.publish(cc.ch, t.exchange, t.key, mandatory, msg)
	} else {
		_, err = cc.ch.PublishUnflushed(t.exchange, t.key, mandatory, false, msg)
	}
	if err != nil {
		cc.remove(seq)
		return nil, closedOnWrite(err)
	}
	return pd, nil
}

// closedOnWrite returns the error of writing a publish: ErrClosed-wrapping
// when the channel was closed or the socket failed under the write (a
// reset, a broken pipe: the connection is lost, and the job may or may not
// have reached the broker), so that callers branch on one error for a lost
// connection whichever moment it was lost at; else err as it is.
func closedOnWrite(err error) error {
	var ne net.Error
	if errors.Is(err, amqp.ErrClosed) || errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// flush writes out what startUnflushed left in the connection's write
// buffer. A failed write leaves the connection unusable: the messages not
// written fail with the channel, when the connection is found lost.
func (s *Sender) flush() error {
	s.mu.Lock()
	cc := s.ch
	s.mu.Unlock()
	if cc == nil {
		return nil
	}
	if err := cc.ch.Flush(); err != nil {
		return fmt.Errorf("%w: write to the broker: %w", ErrClosed, err)
	}
	return nil
}

// channelLocked returns the current confirm channel, opening a new one when
// there is none or the broker closed the last. s.mu must be held.
func (s *Sender) channelLocked() (*confirmChannel, error) {
	if s.ch != nil && !s.ch.isClosed() {
		return s.ch, nil
	}
	if err := s.pipe.conn.Err(); err != nil {
		return nil, err
	}
	ch, err := s.pipe.conn.channel()
	if err != nil {
		return nil, err
	}
	// When the broker closes the channel, perhaps because an exchange was
	// deleted, exchanges are checked again before their next use.
	cc, err := newConfirmChannel(ch, s.pipe.log, &s.wg, s.pipe.forgetExchanges)
	if err != nil {
		return nil, err
	}
	s.ch = cc
	return cc, nil
}

// Close waits until every message already sent has its outcome (or ctx
// ends), then closes the sender's channels. Sending afterwards fails with
// ErrClosed.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	cc := s.ch
	s.ch = nil
	s.mu.Unlock()
	s.directMu.Lock()
	s.directClosed = true
	direct := s.direct
	s.direct = nil
	s.directMu.Unlock()
	var err error
	if cc != nil {
		err = cc.close(ctx)
	}
	if direct != nil {
		// Replies written on it need no answer: its close is bounded by
		// ctx, and its error is no concern of the sender's outcomes.
		_ = closeChannel(ctx, direct, "reply channel")
	}
	s.wg.Wait()
	return err
}
