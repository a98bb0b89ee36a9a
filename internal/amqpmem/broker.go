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

	"github.com/warrenmq/warren/broker"
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

// Advance moves the virtual clock forward by d. It stops at each moment
// within d when a message at the head of a queue expires, and expires
// (dead-letters or drops) it then, as RabbitMQ would at that moment: so a
// message that passes through several queues with TTLs (warren's delay
// cascade) moves on from each at the right time, and its x-death times
// are those RabbitMQ would write.
func (b *Broker) Advance(d time.Duration) {
	if d < 0 {
		d = 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	target := b.now.Add(d)
	for {
		next, ok := b.nextExpiryLocked(nil)
		if !ok || next.After(target) {
			break
		}
		if next.After(b.now) {
			b.now = next
		}
		b.settleLocked()
		if next, ok := b.nextExpiryLocked(nil); ok && !next.After(b.now) {
			break // settling expires every due head; never spin on one it did not
		}
	}
	b.now = target
	b.settleLocked()
}

// NextExpiry is the earliest time at which a message at the head of one
// of the named queues (of any queue, when none is named) expires, and
// false when no such message has a TTL. Only a queue's head expires, as
// in RabbitMQ.
func (b *Broker) NextExpiry(queues ...string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nextExpiryLocked(queues)
}

func (b *Broker) nextExpiryLocked(names []string) (time.Time, bool) {
	var next time.Time
	found := false
	consider := func(q *queue) {
		if len(q.msgs) == 0 || q.msgs[0].expiresAt.IsZero() {
			return
		}
		if at := q.msgs[0].expiresAt; !found || at.Before(next) {
			next, found = at, true
		}
	}
	if len(names) == 0 {
		for _, q := range b.queues {
			consider(q)
		}
	}
	for _, n := range names {
		if q, ok := b.queues[n]; ok {
			consider(q)
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

// Messages returns copies of the messages ready in queue, head first, as
// a consumer would read them (but without consuming them or marking them
// redelivered); an error if there is no such queue.
func (b *Broker) Messages(queue string) ([]broker.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.queues[queue]
	if !ok {
		return nil, fmt.Errorf("amqpmem: no queue %q", queue)
	}
	out := make([]broker.Message, 0, len(q.msgs))
	for _, m := range q.msgs {
		p := m.props
		out = append(out, broker.Message{
			ContentType: p.ContentType, ContentEncoding: p.ContentEncoding, DeliveryMode: p.DeliveryMode,
			Priority: p.Priority, CorrelationID: p.CorrelationId, ReplyTo: p.ReplyTo, Expiration: p.Expiration,
			MessageID: p.MessageId, Timestamp: p.Timestamp, Type: p.Type, UserID: p.UserId, AppID: p.AppId,
			Headers: brokerTable(p.Headers), Body: slices.Clone(m.body),
		})
	}
	return out, nil
}

// brokerTable converts a table read from the wire into broker's types, as
// a warren consumer reads it.
func brokerTable(t amqp.Table) broker.Table {
	if t == nil {
		return nil
	}
	out := make(broker.Table, len(t))
	for k, v := range t {
		out[k] = brokerValue(v)
	}
	return out
}

func brokerValue(v any) any {
	switch v := v.(type) {
	case amqp.Table:
		return brokerTable(v)
	case amqp.Decimal:
		return broker.Decimal{Scale: v.Scale, Value: v.Value}
	case []any:
		if len(v) == 0 {
			return nil
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = brokerValue(e)
		}
		return out
	case []byte:
		return slices.Clone(v)
	}
	return v
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
