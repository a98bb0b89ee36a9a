package bench

// This file and baseline_rpc.go are the one place outside broker/ that
// imports amqp091-go (STYLE.md: broker/ is the only package that does). The
// benchmark needs a baseline written without warren, as a competent
// amqp091-go user would write it, to measure what warren's layers cost; and
// the cleanup of a warren run deletes entities, which broker/ has no API for.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

// JobType is the type of the benchmark's jobs and, in both
// implementations, the routing key they are published with.
const JobType = "bench.job"

// baselineJobs returns the ModeJobs workload written with amqp091-go
// alone, as impl: ImplBaseline acks each delivery as it is handled,
// ImplBaselineBatched acks in batches (batchAcker). Like warren's run, it
// publishes through a direct exchange bound to the queues, so the broker
// routes both the same way.
func baselineJobs(impl string) Runner {
	return func(ctx context.Context, cfg Config, rec *Recorder) (err error) {
		name := uniqueName(impl, cfg.QueueType)
		exchange, queues, keys := name, queueNames(name, cfg.Queues), routingKeys(cfg.Queues)
		pubConn, err := dial(cfg.URL, "warren-bench-baseline-publisher")
		if err != nil {
			return err
		}
		defer pubConn.Close()
		// Deferred after the close, so it runs before: with the broker
		// reachable, whatever was declared goes.
		defer func() { err = errors.Join(err, deleteEntities(cfg.URL, queues, []string{exchange})) }()
		if err := declareJobQueues(pubConn, exchange, queues, keys, cfg.QueueType); err != nil {
			return err
		}
		var cons consumerSide
		if cfg.Workers > 0 {
			ws, err := startWorkers(ctx, cfg, workerSpec{Impl: impl, Name: name}, rec)
			if err != nil {
				return err
			}
			cons = ws
		} else {
			conConn, err := dial(cfg.URL, "warren-bench-baseline-consumer")
			if err != nil {
				return err
			}
			defer conConn.Close()
			ac, err := startAMQPConsumer(conConn, cfg, queues, impl == ImplBaselineBatched, rec)
			if err != nil {
				return err
			}
			cons = localConsumer{ac, rec}
		}
		// On an early return, closing the channels (or ending the worker
		// processes) ends the handlers.
		defer cons.abort()

		if err := publishAMQP(ctx, pubConn, cfg, exchange, keys, rec); err != nil {
			return err
		}
		if err := cons.wait(ctx); err != nil {
			return err
		}
		if err := cons.stop(); err != nil {
			return err
		}
		rec.Stop()
		return nil
	}
}

// declareJobQueues declares the durable direct exchange and the durable
// queues of type queueType, queue i bound with routing key keys[i], on a
// channel of its own.
func declareJobQueues(conn *amqp.Connection, exchange string, queues, keys []string, queueType string) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange: %w", err)
	}
	for i, q := range queues {
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": queueType}); err != nil {
			return fmt.Errorf("declare queue: %w", err)
		}
		if err := ch.QueueBind(q, keys[i], exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue: %w", err)
		}
	}
	return nil
}

// publishAMQP publishes the run's jobs to exchange on a channel of conn in
// confirm mode, round-robin over the routing keys, with at most
// PublishWindow awaiting their confirms; with cfg.BaselineWire WireProps
// each carries warren's job properties too. It calls rec.Start before the
// first publish and rec.Published once every job is confirmed.
func publishAMQP(ctx context.Context, conn *amqp.Connection, cfg Config, exchange string, keys []string, rec *Recorder) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return fmt.Errorf("confirm mode: %w", err)
	}
	// Buffers of one window: at most PublishWindow messages await their
	// confirm, so neither buffer can hold more than that many events, and
	// amqp091-go's reader never waits on the confirm loop.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, PublishWindow))
	returns := ch.NotifyReturn(make(chan amqp.Return, PublishWindow))

	// The confirm loop frees a window slot per confirm, and reports once
	// every message is confirmed, or the channel closes first. It ends when
	// the channel closes at the latest: closing it is deferred below.
	slots := make(chan struct{}, PublishWindow)
	confirmed := make(chan error, 1)
	confirmLoopDone := make(chan struct{})
	go func() {
		defer close(confirmLoopDone)
		var nacked, returned int
		for n := 0; n < cfg.Jobs; {
			select {
			case _, ok := <-returns:
				if !ok {
					returns = nil
					continue
				}
				returned++
			case c, ok := <-confirms:
				if !ok {
					confirmed <- fmt.Errorf("the publishing channel closed with %d of %d messages confirmed", n, cfg.Jobs)
					return
				}
				if !c.Ack {
					nacked++
				}
				n++
				<-slots
			}
		}
		// The broker sends a message's basic.return before its ack, and
		// amqp091-go hands them over in that order: every return is buffered.
	drain:
		for returns != nil {
			select {
			case _, ok := <-returns:
				if !ok {
					break drain
				}
				returned++
			default:
				break drain
			}
		}
		if nacked > 0 || returned > 0 {
			confirmed <- fmt.Errorf("%d message(s) nacked and %d returned unroutable", nacked, returned)
			return
		}
		confirmed <- nil
	}()
	defer func() {
		_ = ch.Close()
		<-confirmLoopDone
	}()

	data := rec.Filler()
	props := cfg.BaselineWire == WireProps
	rec.Start()
	for seq := range cfg.Jobs {
		select {
		case slots <- struct{}{}:
		case err := <-confirmed:
			if err == nil {
				err = errors.New("confirms ended early")
			}
			return err
		case <-rec.failed:
			return rec.err
		case <-ctx.Done():
			return fmt.Errorf("gave up with %d of %d jobs published: %w", seq, cfg.Jobs, ctx.Err())
		}
		body, err := msgpack.Marshal(&Payload{Seq: seq, SentAt: time.Now().UnixNano(), Data: data})
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		key := keys[seq%len(keys)]
		msg := amqp.Publishing{
			ContentType:  broker.ContentType,
			DeliveryMode: amqp.Persistent,
			Body:         body,
		}
		if props {
			// What warren's Publisher sends with every job: its id, its
			// type (a run's job type is its routing key), its app id
			// (warren's default) and when it was published.
			if msg.MessageId, err = broker.NewJobID(); err != nil {
				return err
			}
			msg.Type, msg.AppId, msg.Timestamp = key, "warren", time.Now()
		}
		err = ch.PublishWithContext(ctx, exchange, key, true, false, msg)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	select {
	case err := <-confirmed:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return fmt.Errorf("waiting for confirms: %w", ctx.Err())
	}
	rec.Published()
	return nil
}

// sink is where a consumer side reports the jobs it handled: the run's
// Recorder, or the tally of a worker process.
type sink interface {
	Handled(seq int, sentAt int64)
	Fail(err error)
}

// amqpConsumer is the baseline's consumer side: one channel per queue,
// each with cfg.Concurrency handler goroutines sharing the deliveries of
// one consumer.
type amqpConsumer struct {
	queues []*amqpQueue
	done   bool
}

// amqpQueue consumes one queue.
type amqpQueue struct {
	ch       *amqp.Channel
	tag      string
	handlers sync.WaitGroup
	// acks takes each finished delivery tag to the batchAcker (batched
	// consumers only); ackerDone is closed when the acker returned.
	acks      chan uint64
	ackerDone chan struct{}
}

// startAMQPConsumer starts consuming queues on conn, with manual acks and
// prefetch cfg.Prefetch per channel. Each handler decodes a delivery's
// Payload and reports it to s, then acks it alone or, if batched, hands
// its tag to the channel's batchAcker.
func startAMQPConsumer(conn *amqp.Connection, cfg Config, queues []string, batched bool, s sink) (*amqpConsumer, error) {
	c := &amqpConsumer{}
	for i, queue := range queues {
		q, err := consumeAMQPQueue(conn, cfg, queue, fmt.Sprintf("warren-bench-baseline-%d", i), batched, s)
		if err != nil {
			c.abort()
			return nil, err
		}
		c.queues = append(c.queues, q)
	}
	return c, nil
}

func consumeAMQPQueue(conn *amqp.Connection, cfg Config, queue, tag string, batched bool, s sink) (*amqpQueue, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open consumer channel: %w", err)
	}
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("qos: %w", err)
	}
	deliveries, err := ch.Consume(queue, tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("consume: %w", err)
	}
	q := &amqpQueue{ch: ch, tag: tag}
	if batched {
		// Each handler holds at most one finished tag it hands over: a
		// buffer of one per handler, so that none waits for the acker.
		q.acks = make(chan uint64, cfg.Concurrency)
		q.ackerDone = make(chan struct{})
		go func() {
			defer close(q.ackerDone)
			if err := newBatchAcker(ch, ackBatch(cfg.Prefetch)).run(q.acks); err != nil {
				s.Fail(fmt.Errorf("ack: %w", err))
			}
		}()
	}
	for range cfg.Concurrency {
		q.handlers.Add(1)
		go func() {
			defer q.handlers.Done()
			for d := range deliveries {
				var p Payload
				if err := msgpack.Unmarshal(d.Body, &p); err != nil {
					s.Fail(fmt.Errorf("decode a delivery: %w", err))
					if !batched {
						_ = d.Reject(false)
					}
					// Batched, the tag is never finished: the acker stops
					// below it, and the failed run closes the channel.
					continue
				}
				s.Handled(p.Seq, p.SentAt)
				if batched {
					q.acks <- d.DeliveryTag
				} else if err := d.Ack(false); err != nil {
					s.Fail(fmt.Errorf("ack: %w", err))
				}
			}
		}()
	}
	return q, nil
}

// stop ends consuming once every job was handled. Cancelling closes
// deliveries once the handlers took what was buffered; their acks (the
// batched acker's last flush too) are written by the time they return, and
// each channel's close-ok follows the broker's processing of them.
func (c *amqpConsumer) stop() error {
	if c.done {
		return nil
	}
	c.done = true
	var errs []error
	for _, q := range c.queues {
		if err := q.ch.Cancel(q.tag, false); err != nil {
			errs = append(errs, fmt.Errorf("cancel consumer: %w", err))
			_ = q.ch.Close()
		}
	}
	for _, q := range c.queues {
		q.wait()
	}
	for _, q := range c.queues {
		if err := q.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			errs = append(errs, fmt.Errorf("close consumer channel: %w", err))
		}
	}
	return errors.Join(errs...)
}

// abort ends consuming at once, on a failed run: closing the channels
// closes the deliveries and ends the handlers. It does nothing after stop.
func (c *amqpConsumer) abort() {
	if c.done {
		return
	}
	c.done = true
	for _, q := range c.queues {
		_ = q.ch.Close()
	}
	for _, q := range c.queues {
		q.wait()
	}
}

// wait waits for the handlers, then for the acker, once no handler can
// hand it a tag.
func (q *amqpQueue) wait() {
	q.handlers.Wait()
	if q.acks != nil {
		close(q.acks)
		<-q.ackerDone
	}
}

// dial opens an amqp091-go connection named name.
func dial(url, name string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	c, err := amqp.DialConfig(url, amqp.Config{
		Heartbeat:  10 * time.Second,
		Properties: props,
		Locale:     "en_US",
		Dial:       amqp.DefaultDial(15 * time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %s", broker.RedactURL(url), redact(err.Error(), url))
	}
	return c, nil
}

// redact removes url's password from s, in case an error quotes the URL.
func redact(s, url string) string {
	if p := broker.RedactURL(url); p != url {
		s = strings.ReplaceAll(s, url, p)
	}
	return s
}

// uniqueName returns a fresh name for one run's queue and exchange, e.g.
// "bench.warren.quorum.3f9a1c2b".
func uniqueName(impl, queueType string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("bench.%s.%s.%s", impl, queueType, hex.EncodeToString(b[:]))
}

// deleteEntities deletes queues and exchanges that a run declared, on a
// connection of its own (a run's channels may be closed by an error). What
// does not exist is skipped. It refuses the shared entities warren derives.
// AMQP deletes cannot be cancelled; the dial is bounded by its timeout.
func deleteEntities(url string, queues, exchanges []string) error {
	for _, n := range slices.Concat(queues, exchanges) {
		if strings.HasPrefix(n, topology.ReservedPrefix) || strings.HasPrefix(n, "amq.") || n == "" {
			return fmt.Errorf("cleanup: refusing to delete the shared entity %q", n)
		}
	}
	conn, err := dial(url, "warren-bench-cleanup")
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	defer conn.Close()
	var errs []error
	do := func(what, name string, fn func(ch *amqp.Channel) error) {
		// A failed delete closes its channel: one channel per delete.
		ch, err := conn.Channel()
		if err != nil {
			errs = append(errs, fmt.Errorf("cleanup: delete %s %s: %w", what, name, err))
			return
		}
		defer ch.Close()
		var ae *amqp.Error
		if err := fn(ch); err != nil && !(errors.As(err, &ae) && ae.Code == amqp.NotFound) {
			errs = append(errs, fmt.Errorf("cleanup: delete %s %s: %w", what, name, err))
		}
	}
	for _, q := range queues {
		do("queue", q, func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err })
	}
	for _, x := range exchanges {
		do("exchange", x, func(ch *amqp.Channel) error { return ch.ExchangeDelete(x, false, false) })
	}
	return errors.Join(errs...)
}
