package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/internal/logfield"
)

// pending is a publish awaiting its outcome. result receives exactly one
// value: nil (confirmed), ErrUnroutable, ErrNacked or ErrClosed-wrapping.
type pending struct {
	id       string
	exchange string
	key      string
	returned bool
	result   chan error // buffered 1: the confirm loop never blocks on a waiter that gave up
}

// confirmChannel is a channel in confirm mode with the bookkeeping that
// joins confirms and returns into one outcome per publish.
//
// RabbitMQ sends basic.return before the basic.ack of the same message, and
// amqp091-go hands both to their listeners in that order from its reader
// goroutine. The loop below drains every return already delivered before it
// settles a confirm, so a returned job is never reported as confirmed.
type confirmChannel struct {
	ch      *amqp.Channel
	log     zerolog.Logger
	onClose func()

	mu      sync.Mutex
	pending map[uint64]*pending // by delivery tag
	closed  bool
	idle    chan struct{} // set by close: closed when pending becomes empty
	done    chan struct{} // closed when the loop has ended and failed what was pending
}

// newConfirmChannel puts ch in confirm mode and starts its loop, which wg
// tracks. onClose runs when the channel is gone, before the pending
// publishes are failed.
func newConfirmChannel(ch *amqp.Channel, log zerolog.Logger, wg *sync.WaitGroup, onClose func()) (*confirmChannel, error) {
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("broker: enable publisher confirms: %w", err)
	}
	cc := &confirmChannel{ch: ch, log: log, onClose: onClose, pending: make(map[uint64]*pending), done: make(chan struct{})}
	// Buffers: amqp091-go gives up a notification after blocking 5s, so the
	// loop must always be ready; the buffers absorb bursts (a multiple ack
	// is expanded into one Confirmation per tag) while it works.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 256))
	returns := ch.NotifyReturn(make(chan amqp.Return, 64))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	wg.Add(1)
	go func() {
		defer wg.Done()
		cc.loop(confirms, returns, closes)
	}()
	return cc, nil
}

// loop owns the settlement of publishes. It ends when amqp091-go closes the
// channel's notification channels (channel or connection closed): confirms
// closing is the signal, and by then the close error, if any, is buffered.
func (cc *confirmChannel) loop(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return, closes <-chan *amqp.Error) {
	defer close(cc.done)
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			cc.markReturned(r)
		case c, ok := <-confirms:
			if !ok {
				cc.shutdown(closes, returns)
				return
			}
			// Returns delivered before this confirm are already buffered.
			cc.drainReturns(returns)
			cc.settle(c)
		}
	}
}

func (cc *confirmChannel) drainReturns(returns <-chan amqp.Return) {
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				return
			}
			cc.markReturned(r)
		default:
			return
		}
	}
}

// markReturned flags the publish the broker returned. A return carries no
// delivery tag, so it is matched by job id, exchange and routing key: the
// oldest unsettled publish with all three. Returns arrive in publish order,
// and two publishes that agree on all three are routed alike, so the oldest
// is the right one even when one job is published several times at once.
func (cc *confirmChannel) markReturned(r amqp.Return) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	var oldest uint64
	for tag, p := range cc.pending {
		if p.id == r.MessageId && p.exchange == r.Exchange && p.key == r.RoutingKey && !p.returned && (oldest == 0 || tag < oldest) {
			oldest = tag
		}
	}
	if oldest != 0 {
		cc.pending[oldest].returned = true
		return
	}
	cc.log.Warn().Str(logfield.JobID, r.MessageId).Str(logfield.Exchange, r.Exchange).Str(logfield.RoutingKey, r.RoutingKey).Msg("broker: return for no pending publish")
}

func (cc *confirmChannel) settle(c amqp.Confirmation) {
	cc.mu.Lock()
	p, ok := cc.pending[c.DeliveryTag]
	delete(cc.pending, c.DeliveryTag)
	cc.signalIdleLocked()
	cc.mu.Unlock()
	if !ok {
		return // its publish failed on the wire and was removed
	}
	switch {
	case !c.Ack:
		p.result <- ErrNacked
	case p.returned:
		p.result <- ErrUnroutable
	default:
		p.result <- nil
	}
}

// shutdown fails every publish still pending: the channel is gone and their
// outcome is unknown.
func (cc *confirmChannel) shutdown(closes <-chan *amqp.Error, returns <-chan amqp.Return) {
	var reason error = errors.New("channel closed")
	if err, ok := <-closes; ok && err != nil {
		reason = err
		cc.log.Warn().Err(err).Msg("broker: publishing channel closed by the broker")
	}
	if returns != nil {
		for range returns {
			// amqp091-go closes returns with the channel; drain what is left.
		}
	}
	cc.onClose()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.closed = true
	for tag, p := range cc.pending {
		p.result <- fmt.Errorf("%w before the broker confirmed the job (%w); it may or may not be stored, publish it again with the same id", ErrClosed, reason)
		delete(cc.pending, tag)
	}
}

func (cc *confirmChannel) add(tag uint64, p *pending) {
	cc.mu.Lock()
	cc.pending[tag] = p
	cc.mu.Unlock()
}

func (cc *confirmChannel) remove(tag uint64) {
	cc.mu.Lock()
	delete(cc.pending, tag)
	cc.signalIdleLocked()
	cc.mu.Unlock()
}

func (cc *confirmChannel) signalIdleLocked() {
	if cc.idle != nil && len(cc.pending) == 0 {
		close(cc.idle)
		cc.idle = nil
	}
}

func (cc *confirmChannel) isClosed() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.closed || cc.ch.IsClosed()
}

// close waits for the pending publishes to settle (or ctx to end), then
// closes the channel gracefully and waits for the loop. The caller has made
// sure nothing more is published on cc.
func (cc *confirmChannel) close(ctx context.Context) error {
	cc.mu.Lock()
	var idle chan struct{}
	if len(cc.pending) > 0 && !cc.closed {
		idle = make(chan struct{})
		cc.idle = idle
	}
	cc.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-cc.done:
		case <-ctx.Done():
		}
	}
	err := cc.ch.Close()
	<-cc.done
	if err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("broker: close publishing channel: %w", err)
	}
	return ctx.Err()
}
