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

// RunBaseline runs the workload of cfg.Mode with plain amqp091-go code and
// measures it.
func RunBaseline(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Mode == ModeRPC {
		return MeasureCalls(ctx, ImplBaseline, cfg, baselineRPC)
	}
	return Measure(ctx, ImplBaseline, cfg, baseline)
}

// baseline is the workload written with amqp091-go alone. Like warren's
// run, it publishes through a direct exchange bound to the queue, so the
// broker routes both the same way.
func baseline(ctx context.Context, cfg Config, rec *Recorder) (err error) {
	name := uniqueName(ImplBaseline, cfg.QueueType)
	queue, exchange := name, name
	pubConn, err := dial(cfg.URL, "warren-bench-baseline-publisher")
	if err != nil {
		return err
	}
	defer pubConn.Close()
	// Deferred after the close, so it runs before: with the broker
	// reachable, whatever was declared goes.
	defer func() { err = errors.Join(err, deleteEntities(cfg.URL, []string{queue}, []string{exchange})) }()
	conConn, err := dial(cfg.URL, "warren-bench-baseline-consumer")
	if err != nil {
		return err
	}
	defer conConn.Close()

	// Declare, then put the channel in confirm mode.
	ch, err := pubConn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange: %w", err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": cfg.QueueType}); err != nil {
		return fmt.Errorf("declare queue: %w", err)
	}
	if err := ch.QueueBind(queue, JobType, exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
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

	// Consume on the other connection with C goroutines, each acking what
	// it handled.
	cch, err := conConn.Channel()
	if err != nil {
		return fmt.Errorf("open consumer channel: %w", err)
	}
	if err := cch.Qos(cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	const tag = "warren-bench-baseline"
	deliveries, err := cch.Consume(queue, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range deliveries {
				var p Payload
				if err := msgpack.Unmarshal(d.Body, &p); err != nil {
					rec.Fail(fmt.Errorf("decode a delivery: %w", err))
					_ = d.Reject(false)
					continue
				}
				rec.Handled(p.Seq, p.SentAt)
				if err := d.Ack(false); err != nil {
					rec.Fail(fmt.Errorf("ack: %w", err))
				}
			}
		}()
	}
	// On an early return, closing the channel closes deliveries and ends
	// the handlers.
	consuming := true
	defer func() {
		if consuming {
			_ = cch.Close()
			wg.Wait()
		}
	}()

	// Publish with at most PublishWindow messages unconfirmed.
	data := rec.Filler()
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
		err = ch.PublishWithContext(ctx, exchange, JobType, true, false, amqp.Publishing{
			ContentType:  broker.ContentType,
			DeliveryMode: amqp.Persistent,
			Body:         body,
		})
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

	if err := rec.Wait(ctx); err != nil {
		return err
	}
	// Every job was handled. Cancelling closes deliveries once the
	// handlers took what was buffered; their acks are written by the time
	// they return, and the channel's close-ok follows the broker's
	// processing of them.
	consuming = false
	if err := cch.Cancel(tag, false); err != nil {
		_ = cch.Close()
		wg.Wait()
		return fmt.Errorf("cancel consumer: %w", err)
	}
	wg.Wait()
	if err := cch.Close(); err != nil {
		return fmt.Errorf("close consumer channel: %w", err)
	}
	rec.Stop()
	return nil
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
