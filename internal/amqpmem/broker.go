package amqpmem

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrClosed is returned by Dial once the Broker is closed.
var ErrClosed = errors.New("amqpmem: broker closed")

// Epoch is where a Broker's virtual clock starts.
var Epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Broker is an emulated broker with one virtual host. Its zero value is
// not usable: call New. It is safe for concurrent use.
type Broker struct {
	mu        sync.Mutex
	now       time.Time
	exchanges map[string]*exchange
	queues    map[string]*queue
	conns     map[*conn]struct{}
	closed    bool
	seq       uint64 // messages ever enqueued; orders a queue's messages
	names     uint64 // server-named queues, consumer tags, reply-to keys
	changed   chan struct{}
	wg        sync.WaitGroup
}

// New returns a running Broker with the exchanges every RabbitMQ has
// (the default exchange and amq.direct, amq.fanout, amq.topic,
// amq.headers, amq.match). Close it when done.
func New() *Broker {
	b := &Broker{
		now:       Epoch,
		exchanges: map[string]*exchange{},
		queues:    map[string]*queue{},
		conns:     map[*conn]struct{}{},
		changed:   make(chan struct{}),
	}
	for name, kind := range map[string]string{"": "direct", "amq.direct": "direct", "amq.fanout": "fanout",
		"amq.topic": "topic", "amq.headers": "headers", "amq.match": "headers"} {
		b.exchanges[name] = &exchange{name: name, kind: kind, durable: true}
	}
	return b
}

// Dial connects a client to the broker: a function of the shape of
// net.Dialer.DialContext, for broker.WithDialer. network and addr are
// ignored.
func (b *Broker) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	client, server := net.Pipe()
	c := newConn(b, server)
	b.conns[c] = struct{}{}
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		c.readLoop()
	}()
	go func() {
		defer b.wg.Done()
		c.writeLoop()
	}()
	return client, nil
}

// Close drops every connection (their unacked messages go back to their
// queues, as when a client's network fails) and waits for the broker's
// goroutines to end. Dial fails from then on.
func (b *Broker) Close() error {
	b.mu.Lock()
	b.closed = true
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, c := range conns {
		c.nc.Close()
	}
	b.wg.Wait()
	return nil
}

// DropConnections closes every client connection abruptly, as a network
// failure would.
func (b *Broker) DropConnections() {
	b.mu.Lock()
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, c := range conns {
		c.nc.Close()
	}
}

// Now is the broker's virtual time.
func (b *Broker) Now() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.now
}

// Advance moves the virtual clock forward by d and expires (dead-letters
// or drops) the messages whose TTL runs out meanwhile, as RabbitMQ does: a
// queue expires messages from its head. The clock stops at each expiry on
// the way, so a message dead-lettered into another queue with a TTL (a
// delay cascade) starts that TTL when it expired, not at the end of d.
func (b *Broker) Advance(d time.Duration) {
	if d < 0 {
		d = 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	target := b.now.Add(d)
	for {
		next, ok := b.nextExpiryLocked()
		if !ok || next.After(target) {
			break
		}
		if !next.After(b.now) {
			// settleLocked leaves no due message at a queue's head; this
			// is a safety stop, not a path taken.
			break
		}
		b.now = next
		b.settleLocked()
	}
	b.now = target
	b.settleLocked()
}

// NextExpiry is the earliest time at which a message at the head of a
// queue expires, and false when no message has a TTL.
func (b *Broker) NextExpiry() (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nextExpiryLocked()
}

// nextExpiryLocked is the earliest expiry of a message at a queue's head.
func (b *Broker) nextExpiryLocked() (time.Time, bool) {
	var next time.Time
	found := false
	for _, q := range b.queues {
		if len(q.msgs) == 0 {
			continue
		}
		if m := q.msgs[0]; !m.expiresAt.IsZero() && (!found || m.expiresAt.Before(next)) {
			next, found = m.expiresAt, true
		}
	}
	return next, found
}

// Changed returns a channel closed at the next change of the broker's
// queues (a message enqueued, delivered, settled or expired).
func (b *Broker) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// QueueState is a queue's contents at one moment.
type QueueState struct {
	Name      string
	Ready     int // waiting for a consumer
	Unacked   int // delivered, not yet settled
	Consumers int
}

// Queues lists every queue, by name.
func (b *Broker) Queues() []QueueState {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]QueueState, 0, len(b.queues))
	for _, q := range b.queues {
		out = append(out, QueueState{Name: q.name, Ready: len(q.msgs), Unacked: q.unacked, Consumers: len(q.consumers)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Message is a copy of a message held by a queue.
type Message struct {
	Exchange    string
	RoutingKey  string
	Redelivered bool
	Properties  amqp.WireProperties
	Body        []byte
}

// Messages returns copies of the messages ready in queue, head first,
// without consuming them; an error if there is no such queue.
func (b *Broker) Messages(queue string) ([]Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.queues[queue]
	if !ok {
		return nil, fmt.Errorf("amqpmem: no queue %q", queue)
	}
	out := make([]Message, 0, len(q.msgs))
	for _, m := range q.msgs {
		p := m.props
		p.Headers = copyTable(p.Headers)
		out = append(out, Message{Exchange: m.exchange, RoutingKey: m.routingKey, Redelivered: m.redelivered,
			Properties: p, Body: slices.Clone(m.body)})
	}
	return out, nil
}

// changedLocked wakes the waiters of Changed.
func (b *Broker) changedLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// settleLocked brings the broker to rest after a change: expires what is
// due and delivers what consumers can take, until neither moves a
// message.
func (b *Broker) settleLocked() {
	for {
		moved := false
		for _, q := range b.sortedQueuesLocked() {
			if b.expireLocked(q) {
				moved = true
			}
			if b.deliverLocked(q) {
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	b.changedLocked()
}

func (b *Broker) sortedQueuesLocked() []*queue {
	qs := make([]*queue, 0, len(b.queues))
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].name < qs[j].name })
	return qs
}

func (b *Broker) nameLocked(prefix string) string {
	b.names++
	return fmt.Sprintf("%s%d", prefix, b.names)
}

func copyTable(t amqp.Table) amqp.Table {
	if t == nil {
		return nil
	}
	out := make(amqp.Table, len(t))
	for k, v := range t {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch v := v.(type) {
	case amqp.Table:
		return copyTable(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = copyValue(e)
		}
		return out
	case []byte:
		return slices.Clone(v)
	}
	return v
}
