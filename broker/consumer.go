package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/internal/logfield"
)

// ConsumeOption configures Consume.
type ConsumeOption func(*consumeOptions) error

type consumeOptions struct {
	prefetch int
	tag      string
	ackBatch int
	ackDelay time.Duration
	log      zerolog.Logger
}

// DefaultPrefetch is the prefetch of a consumer when WithPrefetch is not
// given.
const DefaultPrefetch = 32

// WithPrefetch sets how many deliveries the broker sends before any is
// settled (basic.qos prefetch-count, per consumer); from 1 to 65535,
// default DefaultPrefetch. It bounds the jobs a worker holds: the ones in
// its handlers plus the ones waiting for a free handler.
func WithPrefetch(n int) ConsumeOption {
	return func(o *consumeOptions) error {
		if n < 1 || n > 65535 {
			return fmt.Errorf("broker: prefetch %d must be from 1 to 65535", n)
		}
		o.prefetch = n
		return nil
	}
}

// WithConsumerTag sets the consumer tag, which RabbitMQ shows in its
// management UI (default: generated).
func WithConsumerTag(tag string) ConsumeOption {
	return func(o *consumeOptions) error {
		if len(tag) > maxShortString {
			return fmt.Errorf("broker: consumer tag is %d bytes; AMQP allows at most %d", len(tag), maxShortString)
		}
		o.tag = tag
		return nil
	}
}

// WithAckBatch sets how acks are grouped: one basic.ack with the multiple
// flag settles every finished delivery up to the oldest unfinished one,
// which cuts the broker's work per job. An ack is sent once size
// deliveries are finished, or delay after the first finished one (default:
// up to 32, at most a quarter of the prefetch so the broker never waits
// for an ack batch to fill, and 2ms). Deliveries finished behind a slow
// one are acked one by one after at most two delays, so a slow job never
// holds the others' prefetch slots. Size 1 acks each delivery at once.
func WithAckBatch(size int, delay time.Duration) ConsumeOption {
	return func(o *consumeOptions) error {
		if size < 1 {
			return fmt.Errorf("broker: ack batch size %d must be at least 1", size)
		}
		if delay <= 0 || delay > time.Second {
			return fmt.Errorf("broker: ack batch delay %s must be above 0 and at most 1s", delay)
		}
		o.ackBatch, o.ackDelay = size, delay
		return nil
	}
}

// WithConsumerLogger sets the consumer's logger (default: the
// connection's).
func WithConsumerLogger(l zerolog.Logger) ConsumeOption {
	return func(o *consumeOptions) error {
		o.log = l
		return nil
	}
}

// Consumer receives deliveries from one queue on a channel of its own,
// with manual acknowledgements and a prefetch limit. Any number of
// goroutines may call Next at once; each Delivery must be settled exactly
// once, with Ack, Requeue or Reject.
//
// Acks are grouped (see WithAckBatch). A delivery settled after its
// consumer's channel is gone returns an error wrapping ErrClosed: the
// broker has returned it to the queue already. An ack is never sent on any
// other channel than the one the delivery came on.
type Consumer struct {
	queue string
	tag   string
	ch    *amqp.Channel
	in    <-chan amqp.Delivery
	// cancels receives the broker's basic.cancel of this consumer before
	// amqp091-go closes in; Next reads it when in closes.
	cancels <-chan string
	acks    *acker
	log     zerolog.Logger

	lastTag atomic.Uint64 // the highest delivery tag received

	cancelOnce sync.Once
	cancelErr  error

	done     chan struct{} // closed when the channel is gone
	mu       sync.Mutex
	closeErr error // why the channel is gone; set before done is closed

	wg sync.WaitGroup
}

// Consume starts consuming queue with manual acknowledgements. The queue
// must exist. Close the consumer when done with it.
func Consume(ctx context.Context, conn *Conn, queue string, opts ...ConsumeOption) (*Consumer, error) {
	o := consumeOptions{prefetch: DefaultPrefetch, ackBatch: 32, ackDelay: 2 * time.Millisecond, log: conn.opts.log}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch, err := conn.channelWait(ctx)
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*Consumer, error) {
		ch.Close()
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil, fmt.Errorf("broker: consume queue %q: %w: %w", queue, ErrNoQueue, err)
		}
		return nil, fmt.Errorf("broker: consume queue %q: %s: %w", queue, what, err)
	}
	if err := ch.Qos(o.prefetch, 0, false); err != nil {
		return fail("set prefetch", err)
	}
	c := &Consumer{
		queue: queue,
		tag:   o.tag,
		ch:    ch,
		log:   o.log,
		done:  make(chan struct{}),
	}
	if c.tag == "" {
		c.tag = "warren-" + queue + "-" + strconv.FormatUint(consumerSeq.Add(1), 10)
		if len(c.tag) > maxShortString {
			c.tag = "warren-" + strconv.FormatUint(consumerSeq.Add(1), 10)
		}
	}
	// Listeners first, so no close or cancel is missed. Buffers: amqp091-go
	// sends one close error, and one cancel for the one consumer of this
	// channel, at most; a buffer of one never blocks its reader.
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	cancels := ch.NotifyCancel(make(chan string, 1))
	// Not ConsumeWithContext: it cancels the consumer by itself when ctx
	// ends, racing Cancel, and the second basic.cancel-ok then arrives as
	// the answer to a later call (the channel's close fails with 503
	// "unexpected command received"). The consumer's life is Cancel's and
	// Close's to end.
	in, err := ch.Consume(queue, c.tag, false, false, false, false, nil)
	if err != nil {
		return fail("start consumer", err)
	}
	c.in, c.cancels = in, cancels
	batch := min(o.ackBatch, max(1, o.prefetch/4))
	c.acks = newAcker(ch, batch, o.ackDelay)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.watch(closes)
	}()
	return c, nil
}

var consumerSeq atomic.Uint64

// watch records why the channel ended. It returns when amqp091-go closes
// the close notifications, which it does when the channel shuts down.
func (c *Consumer) watch(closes <-chan *amqp.Error) {
	err, ok := <-closes
	if ok && err != nil {
		c.setErr(fmt.Errorf("%w: channel consuming queue %q: %w", ErrClosed, c.queue, err))
		c.log.Warn().Str(logfield.Queue, c.queue).Err(err).Msg("broker: consumer channel closed by the broker")
	}
	c.setErr(fmt.Errorf("%w: channel consuming queue %q", ErrClosed, c.queue))
	c.acks.markClosed()
	close(c.done)
}

// ended records why no more deliveries come, once in has closed.
func (c *Consumer) ended() {
	select {
	case tag, ok := <-c.cancels:
		if ok && tag == c.tag {
			c.setErr(fmt.Errorf("%w (queue %q)", ErrConsumerCancelled, c.queue))
			c.log.Warn().Str(logfield.Queue, c.queue).Msg("broker: the broker cancelled the consumer")
		}
	default:
	}
}

// setErr keeps the first reason the consumer ended.
func (c *Consumer) setErr(err error) {
	c.mu.Lock()
	if c.closeErr == nil {
		c.closeErr = err
	}
	c.mu.Unlock()
}

// Queue is the name of the queue consumed.
func (c *Consumer) Queue() string { return c.queue }

// Next returns the next delivery. It returns false when no delivery will
// come any more (the consumer was cancelled, by Cancel or by the broker, or
// its channel closed; Err says why) or ctx ended. Deliveries already
// received when Cancel is called are still returned: settle them.
func (c *Consumer) Next(ctx context.Context) (*Delivery, bool) {
	// A delivery waiting already is taken without the select on ctx,
	// which costs more than the receive: under load, one always waits.
	if ctx.Err() == nil {
		select {
		case d, ok := <-c.in:
			return c.received(&d, ok)
		default:
		}
	}
	select {
	case d, ok := <-c.in:
		return c.received(&d, ok)
	case <-ctx.Done():
		return nil, false
	}
}

// received is Next's result for what it received from in.
func (c *Consumer) received(d *amqp.Delivery, ok bool) (*Delivery, bool) {
	if !ok {
		c.ended()
		return nil, false
	}
	return c.wrap(d), true
}

// wrap makes a Delivery of an amqp091-go delivery.
func (c *Consumer) wrap(d *amqp.Delivery) *Delivery {
	for last := c.lastTag.Load(); d.DeliveryTag > last; last = c.lastTag.Load() {
		// Next's callers race: keep the highest tag, whoever stores last.
		if c.lastTag.CompareAndSwap(last, d.DeliveryTag) {
			break
		}
	}
	return newDelivery(d, c.queue, c.acks)
}

// newDelivery makes a Delivery of an amqp091-go delivery from queue,
// settled through acks.
func newDelivery(d *amqp.Delivery, queue string, acks *acker) *Delivery {
	// The delivery and its envelope in one allocation: they live as long
	// as each other.
	both := new(struct {
		d Delivery
		e Envelope
	})
	m := messageOf(d)
	out := &both.d
	out.Envelope, out.Err = &both.e, readMessageInto(&m, &both.e)
	out.Queue, out.Exchange, out.RoutingKey = queue, d.Exchange, d.RoutingKey
	out.Redelivered = d.Redelivered
	out.tag, out.acks = d.DeliveryTag, acks
	if n, ok := d.Headers["x-delivery-count"]; ok {
		out.DeliveryCount, _ = headerInt("x-delivery-count", n, 0, 1<<31-1)
	}
	return out
}

// Cancel stops the broker from sending more deliveries (basic.cancel) and
// waits for its answer. Deliveries already received are still returned by
// Next until it returns false. Calling it again does nothing.
func (c *Consumer) Cancel(ctx context.Context) error {
	c.cancelOnce.Do(func() {
		errc := make(chan error, 1) // buffered: the call below cannot be abandoned mid-frame, so it may outlive ctx
		go func() { errc <- c.ch.Cancel(c.tag, false) }()
		select {
		case err := <-errc:
			if err != nil && !errors.Is(err, amqp.ErrClosed) {
				c.cancelErr = fmt.Errorf("broker: cancel consumer of queue %q: %w", c.queue, err)
			}
		case <-ctx.Done():
			c.cancelErr = fmt.Errorf("broker: cancel consumer of queue %q: %w", c.queue, ctx.Err())
		case <-c.done:
		}
	})
	return c.cancelErr
}

// ReturnAll puts back in the queue every delivery received and not
// settled, with one basic.nack (multiple, requeue), and returns once the
// queue has them back, so that a reader that comes next sees them. It is
// for consumers that browse a queue: Cancel first (or the broker delivers
// them again at once), and after it, settling a delivery fails. Acks still
// grouped are sent first.
func (c *Consumer) ReturnAll(ctx context.Context) error {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	if c.acks.closed {
		return c.acks.closedErr()
	}
	// Acks still grouped go first: those jobs are done with.
	if err := c.acks.flushAllLocked(); err != nil {
		return err
	}
	c.acks.closed = true // nothing may be settled after this
	// The highest tag not settled: a multiple nack must name a tag the
	// broker still holds, and covers the unsettled ones below it.
	last := c.lastTag.Load()
	for last > c.acks.base {
		if _, settled := c.acks.finished[last]; !settled {
			break
		}
		last--
	}
	if last <= c.acks.base {
		return nil // everything received was settled
	}
	if err := c.ch.Nack(last, true, true); err != nil {
		return fmt.Errorf("%w: return deliveries to queue %q: %w", ErrClosed, c.queue, err)
	}
	// A call on the same channel is answered after the queue has handled
	// the nack: the broker keeps the order of one channel's messages.
	errc := make(chan error, 1) // buffered: the call may outlive ctx
	go func() {
		_, err := c.ch.QueueDeclarePassive(c.queue, false, false, false, false, nil)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("broker: return deliveries to queue %q: %w", c.queue, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("broker: return deliveries to queue %q: %w", c.queue, ctx.Err())
	}
}

// Done is closed when the consumer's channel is gone.
func (c *Consumer) Done() <-chan struct{} { return c.done }

// Err says why the consumer stopped: ErrConsumerCancelled when the broker
// cancelled it, ErrClosed (wrapping the broker's reason, if any) when its
// channel closed; nil while it runs or after it was only cancelled by
// Cancel.
func (c *Consumer) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// Close sends the acks still grouped, then closes the channel gracefully
// (channel.close, waiting for the broker's close-ok, so the acks are not
// lost in an abrupt disconnect). Deliveries not settled by then are
// returned to the queue by the broker. Cancel first, and settle what was
// received, for a clean stop.
func (c *Consumer) Close(ctx context.Context) error {
	var err error
	select {
	case <-c.done:
	default:
		err = c.acks.flushAll()
		errc := make(chan error, 1) // buffered: the close may outlive ctx
		go func() { errc <- c.ch.Close() }()
		select {
		case cerr := <-errc:
			if cerr != nil && !errors.Is(cerr, amqp.ErrClosed) && err == nil {
				err = fmt.Errorf("broker: close consumer channel of queue %q: %w", c.queue, cerr)
			}
		case <-ctx.Done():
			err = fmt.Errorf("broker: close consumer channel of queue %q: %w", c.queue, ctx.Err())
		}
	}
	c.acks.markClosed()
	// The watcher ends when the channel is gone; if the close above timed
	// out, the connection's own close ends it.
	c.wg.Wait()
	return err
}

// Delivery is one message received by a Consumer.
type Delivery struct {
	// Envelope is the job as read from the message. It is never nil: when
	// Err is set it holds what could be read, every header kept as it came,
	// so the message can be dead-lettered without losing anything.
	Envelope *Envelope
	// Err is set when the message is not a well-formed job; it wraps
	// ErrUnsupportedContentType, ErrMissingType or ErrMalformedEnvelope.
	Err error
	// Queue is the queue it was consumed from; Exchange and RoutingKey are
	// what it was last published with.
	Queue      string
	Exchange   string
	RoutingKey string
	// Redelivered is set when the broker delivered the message before
	// (to a consumer that did not settle it: a crash, a requeue, a closed
	// channel).
	Redelivered bool
	// DeliveryCount is the broker's count of earlier unsettled deliveries
	// of the message (quorum queues' x-delivery-count), 0 elsewhere.
	DeliveryCount int

	tag     uint64
	acks    *acker
	settled atomic.Bool
}

// Ack tells the broker the delivery is done with; the broker deletes it.
// Acks are grouped (see WithAckBatch): the ack is on the wire within the
// batch delay, and the consumer's Close sends what is still grouped. A
// request's ack too: its reply is sent before it, so its caller never
// waits for it.
func (d *Delivery) Ack() error {
	if !d.settled.CompareAndSwap(false, true) {
		return ErrAlreadySettled
	}
	return d.acks.ack(d.tag)
}

// Requeue returns the delivery to its queue (basic.nack with requeue), to
// be delivered again, to this consumer or another.
func (d *Delivery) Requeue() error {
	if !d.settled.CompareAndSwap(false, true) {
		return ErrAlreadySettled
	}
	return d.acks.nack(d.tag, true)
}

// Reject refuses the delivery without requeueing it (basic.nack): the
// broker dead-letters it through the queue's x-dead-letter-exchange, or
// drops it when the queue has none. warren's workers park failed jobs
// themselves, with reasons, and reject nothing; Reject is for tools.
func (d *Delivery) Reject() error {
	if !d.settled.CompareAndSwap(false, true) {
		return ErrAlreadySettled
	}
	return d.acks.nack(d.tag, false)
}

// Settled reports whether the delivery was acked, requeued or rejected.
func (d *Delivery) Settled() bool { return d.settled.Load() }
