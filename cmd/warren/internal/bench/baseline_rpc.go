package bench

// Like baseline.go, this file imports amqp091-go outside broker/: it is the
// rpc workload written without warren.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/broker"
)

// directReplyTo is RabbitMQ's direct reply-to pseudo-queue, spelled out as
// a hand-written client would.
const directReplyTo = "amq.rabbitmq.reply-to"

// baselineRPC returns the rpc workload written with amqp091-go alone, as
// impl, the way a competent user writes request-reply (RabbitMQ's tutorial
// 6, with a map of pending calls so that many goroutines share one
// channel): ImplBaseline receives its replies over direct reply-to,
// ImplBaselineQueue in an exclusive, server-named reply queue of its own.
// Its connections are laid out like warren's: the server consumes on one,
// publishes its replies on another, and the client has the third.
//
// The requests are transient, as hand-written clients send requests whose
// caller awaits the reply (a request lost with the broker is a call that
// times out and is retried); Config.BaselineDurable makes them persistent,
// for a like-for-like comparison with a Caller sending durable requests.
// The server publishes its replies without publisher confirms and acks the
// request right after, as most hand-written servers do. warren's pool waits
// for each reply's confirm before acking: that wait is part of what is
// measured (a reply to direct reply-to is never stored, so its confirm
// proves little; a caller that gets no reply times out either way).
func baselineRPC(impl string) CallRunner {
	return func(ctx context.Context, cfg Config, rec *CallRecorder) error {
		return runBaselineRPC(ctx, impl, cfg, rec)
	}
}

func runBaselineRPC(ctx context.Context, impl string, cfg Config, rec *CallRecorder) (err error) {
	name := uniqueName(impl+".rpc", cfg.QueueType)
	queue, exchange := name, name
	serverConn, err := dial(cfg.URL, "warren-bench-baseline-rpc-server")
	if err != nil {
		return err
	}
	defer serverConn.Close()
	// Deferred after the close, so it runs before.
	defer func() { err = errors.Join(err, deleteEntities(cfg.URL, []string{queue}, []string{exchange})) }()
	replyConn, err := dial(cfg.URL, "warren-bench-baseline-rpc-replies")
	if err != nil {
		return err
	}
	defer replyConn.Close()
	clientConn, err := dial(cfg.URL, "warren-bench-baseline-rpc-client")
	if err != nil {
		return err
	}
	defer clientConn.Close()

	if err := declareRequestQueue(serverConn, queue, exchange, cfg.QueueType); err != nil {
		return err
	}

	// The server: C handlers share the deliveries of one consumer, and
	// reply on one channel of the other connection (amqp091-go serializes
	// publishes on a channel).
	rch, err := replyConn.Channel()
	if err != nil {
		return fmt.Errorf("open reply channel: %w", err)
	}
	defer rch.Close()
	sch, err := serverConn.Channel()
	if err != nil {
		return fmt.Errorf("open server channel: %w", err)
	}
	if err := sch.Qos(cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	const tag = "warren-bench-baseline-rpc"
	deliveries, err := sch.Consume(queue, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	var handlers sync.WaitGroup
	for range cfg.Concurrency {
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			for d := range deliveries {
				serve(ctx, rch, d, rec)
			}
		}()
	}
	// On an early return, closing the channel closes deliveries and ends
	// the handlers.
	serving := true
	defer func() {
		if serving {
			_ = sch.Close()
			handlers.Wait()
		}
	}()

	// The wire is a diagnostic of both baselines: with WireWarren each
	// sends what warren's Caller sends over its reply path.
	c, err := newRPCClient(clientConn, cfg.BaselineWire, impl == ImplBaselineQueue, cfg.BaselineDurable)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.close()) }()
	if err := rec.Calls(ctx, func(ctx context.Context, p Payload) (Answer, error) { return c.call(ctx, exchange, p) }); err != nil {
		return err
	}

	// Every call was answered. Cancelling closes deliveries once the
	// handlers took what was buffered; their acks are written by the time
	// they return.
	serving = false
	if err := sch.Cancel(tag, false); err != nil {
		_ = sch.Close()
		handlers.Wait()
		return fmt.Errorf("cancel consumer: %w", err)
	}
	handlers.Wait()
	if err := sch.Close(); err != nil {
		return fmt.Errorf("close server channel: %w", err)
	}
	return nil
}

// declareRequestQueue declares the durable request queue of type
// queueType and a direct exchange routing CallType to it, on a channel of
// its own.
func declareRequestQueue(conn *amqp.Connection, queue, exchange, queueType string) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange: %w", err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": queueType}); err != nil {
		return fmt.Errorf("declare queue: %w", err)
	}
	if err := ch.QueueBind(queue, CallType, exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue: %w", err)
	}
	return nil
}

// serve answers one request: decode, reply to d.ReplyTo through the
// default exchange with the request's correlation id, then ack.
func serve(ctx context.Context, rch *amqp.Channel, d amqp.Delivery, rec *CallRecorder) {
	var p Payload
	if err := msgpack.Unmarshal(d.Body, &p); err != nil {
		rec.Fail(fmt.Errorf("decode a request: %w", err))
		_ = d.Reject(false)
		return
	}
	body, err := msgpack.Marshal(&Answer{Seq: p.Seq})
	if err != nil {
		rec.Fail(fmt.Errorf("encode an answer: %w", err))
		_ = d.Reject(false)
		return
	}
	err = rch.PublishWithContext(ctx, "", d.ReplyTo, false, false, amqp.Publishing{
		ContentType:   broker.ContentType,
		CorrelationId: cmp.Or(d.CorrelationId, d.MessageId), // as a warren worker answers
		Body:          body,
	})
	if err != nil {
		rec.Fail(fmt.Errorf("publish a reply: %w", err))
		_ = d.Nack(false, true)
		return
	}
	if err := d.Ack(false); err != nil {
		rec.Fail(fmt.Errorf("ack: %w", err))
	}
}

// rpcClient makes calls over direct reply-to, or an exclusive reply queue
// of its own: one channel publishes the requests and consumes the replies,
// and one goroutine hands each reply to the call waiting for its
// correlation id.
type rpcClient struct {
	ch       *amqp.Channel
	replyTo  string        // directReplyTo, or the reply queue
	loopDone chan struct{} // closed when the reply loop ended: no reply will come
	corr     atomic.Uint64 // the last correlation id

	// What requests carry besides the minimal wire (Config.BaselineWire):
	// warren's properties, its deadline header, the mandatory flag.
	props, deadline, mandatory bool
	// mode is the requests' delivery mode: transient, or persistent with
	// Config.BaselineDurable.
	mode uint8

	mu      sync.Mutex
	pending map[string]chan []byte // by correlation id; buffered 1
}

func newRPCClient(conn *amqp.Connection, wire string, replyQueue, durable bool) (*rpcClient, error) {
	level := slices.Index(wires, wire) // each wire adds to the one before
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open client channel: %w", err)
	}
	// Direct reply-to must be consumed with auto-ack, before publishing. A
	// reply queue, as RabbitMQ's tutorial 6 declares it: exclusive and
	// server-named, consumed with auto-ack too.
	replyTo := directReplyTo
	if replyQueue {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			_ = ch.Close()
			return nil, fmt.Errorf("declare a reply queue: %w", err)
		}
		replyTo = q.Name
	}
	replies, err := ch.Consume(replyTo, "", true, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("consume %s: %w", replyTo, err)
	}
	c := &rpcClient{
		ch:        ch,
		replyTo:   replyTo,
		props:     level >= slices.Index(wires, WireProps),
		deadline:  level >= slices.Index(wires, WireDeadline),
		mandatory: level >= slices.Index(wires, WireWarren),
		mode:      amqp.Transient,
		loopDone:  make(chan struct{}),
		pending:   make(map[string]chan []byte),
	}
	if durable {
		c.mode = amqp.Persistent
	}
	// The loop ends when amqp091-go closes replies, on the channel's close.
	go func() {
		defer close(c.loopDone)
		for d := range replies {
			c.mu.Lock()
			reply, ok := c.pending[d.CorrelationId]
			delete(c.pending, d.CorrelationId)
			c.mu.Unlock()
			if ok {
				reply <- d.Body // buffered 1, and each id is answered once
			}
		}
	}()
	return c, nil
}

// call publishes p as a request to exchange and waits for its reply.
func (c *rpcClient) call(ctx context.Context, exchange string, p Payload) (Answer, error) {
	body, err := msgpack.Marshal(&p)
	if err != nil {
		return Answer{}, fmt.Errorf("encode: %w", err)
	}
	corr := strconv.FormatUint(c.corr.Add(1), 10)
	if c.props {
		if corr, err = broker.NewJobID(); err != nil {
			return Answer{}, err
		}
	}
	reply := make(chan []byte, 1)
	c.mu.Lock()
	c.pending[corr] = reply
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, corr)
		c.mu.Unlock()
	}()
	msg := amqp.Publishing{
		ContentType:   broker.ContentType,
		DeliveryMode:  c.mode,
		CorrelationId: corr,
		ReplyTo:       c.replyTo,
		Body:          body,
	}
	if c.props {
		// What warren's Caller sends: its job id instead of a correlation
		// id (the server answers with the message id), and its metadata.
		msg.CorrelationId, msg.MessageId = "", corr
		msg.Type, msg.AppId, msg.Timestamp = CallType, "warren", time.Now()
	}
	if c.deadline {
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(broker.DefaultCallTimeout)
		}
		msg.Headers = amqp.Table{broker.HeaderDeadline: deadline.UnixMilli()}
	}
	err = c.ch.PublishWithContext(ctx, exchange, CallType, c.mandatory, false, msg)
	if err != nil {
		return Answer{}, fmt.Errorf("publish: %w", err)
	}
	select {
	case b := <-reply:
		var a Answer
		if err := msgpack.Unmarshal(b, &a); err != nil {
			return Answer{}, fmt.Errorf("decode the reply: %w", err)
		}
		return a, nil
	case <-c.loopDone:
		return Answer{}, errors.New("the client channel closed before the reply came")
	case <-ctx.Done():
		return Answer{}, fmt.Errorf("no reply: %w", ctx.Err())
	}
}

// close closes the channel and waits for the reply loop.
func (c *rpcClient) close() error {
	err := c.ch.Close()
	<-c.loopDone
	if err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("close client channel: %w", err)
	}
	return nil
}
