package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Getter takes messages from one queue one at a time (basic.get), on a
// channel of its own, with manual acknowledgements sent at once (never
// grouped). Unlike a Consumer it holds no prefetched message: between
// two calls to Get it holds exactly the deliveries not yet settled, which
// is what a worker running a suspect job alone needs (see package worker).
//
// A Getter is safe for use by one goroutine at a time for Get; its
// deliveries may be settled from any goroutine. The channel is opened at
// the first Get and opened again after it is lost; a delivery of a lost
// channel fails to settle with ErrClosed (the broker has returned it).
type Getter struct {
	conn  *Conn
	queue string

	mu   sync.Mutex
	ch   *amqp.Channel
	acks *acker
}

// NewGetter returns a Getter of queue on conn.
func NewGetter(conn *Conn, queue string) *Getter {
	return &Getter{conn: conn, queue: queue}
}

// Get takes the next message of the queue, if any: false when the queue
// is empty. The error wraps ErrNoQueue when the queue does not exist.
func (g *Getter) Get(ctx context.Context) (*Delivery, bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil || g.ch.IsClosed() {
		if g.acks != nil {
			g.acks.markClosed()
		}
		ch, err := g.conn.channelWait(ctx)
		if err != nil {
			return nil, false, err
		}
		g.ch, g.acks = ch, newAcker(ch, 1, 0)
	}
	d, ok, err := g.ch.Get(g.queue, false)
	if err != nil {
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return nil, false, fmt.Errorf("broker: get from queue %q: %w: %w", g.queue, ErrNoQueue, err)
		}
		return nil, false, fmt.Errorf("broker: get from queue %q: %w", g.queue, err)
	}
	if !ok {
		return nil, false, nil
	}
	return newDelivery(&d, g.queue, g.acks), true, nil
}

// Close closes the channel gracefully, waiting for the broker's answer
// until ctx ends; deliveries not settled return to the queue.
func (g *Getter) Close(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		return nil
	}
	g.acks.markClosed()
	ch := g.ch
	g.ch = nil
	return closeChannel(ctx, ch, fmt.Sprintf("channel getting from queue %q", g.queue))
}
