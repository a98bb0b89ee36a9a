package amqpmem

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

type exchange struct {
	name       string
	kind       string // direct, fanout, topic, headers
	durable    bool
	autoDelete bool
	internal   bool
	args       amqp.Table
	bindings   []binding
}

type binding struct {
	dest       string
	toExchange bool
	key        string
	args       amqp.Table
}

type queue struct {
	name       string
	durable    bool
	exclusive  bool
	autoDelete bool
	owner      *conn // of an exclusive queue
	args       amqp.Table
	quorum     bool

	ttl           time.Duration // x-message-ttl; hasTTL says whether set
	hasTTL        bool
	dlx           string
	hasDLX        bool
	dlrk          string
	hasDLRK       bool
	deliveryLimit int // x-delivery-limit; -1: none

	msgs        []*message // ready, by seq
	consumers   []*consumer
	next        int // round robin among consumers
	unacked     int
	hadConsumer bool
}

type message struct {
	seq         uint64
	exchange    string
	routingKey  string
	props       amqp.WireProperties
	body        []byte
	redelivered bool
	expiresAt   time.Time // zero: never
	returns     int       // times returned to a quorum queue (x-delivery-count)
}

// consumer is a basic.consume on a queue, or a channel's direct reply-to
// consumer (queue nil).
type consumer struct {
	tag      string
	ch       *channel
	queue    *queue
	noAck    bool
	prefetch int // 0: unlimited
	unacked  int
}

func (c *consumer) hasRoom() bool {
	if c.noAck {
		return true
	}
	if c.prefetch > 0 && c.unacked >= c.prefetch {
		return false
	}
	if g := c.ch.globalPrefetch; g > 0 && len(c.ch.unacked) >= g {
		return false
	}
	return true
}

// newQueue reads a queue's arguments; an error is a 406 PRECONDITION_FAILED
// reason.
func newQueue(name string, d *amqp.WireQueueDeclare) (*queue, error) {
	q := &queue{name: name, durable: d.Durable, exclusive: d.Exclusive, autoDelete: d.AutoDelete,
		args: copyTable(d.Arguments), deliveryLimit: -1}
	for k, v := range d.Arguments {
		switch k {
		case "x-queue-type":
			s, _ := v.(string)
			switch s {
			case "classic":
			case "quorum":
				q.quorum = true
			default:
				return nil, fmt.Errorf("invalid arg 'x-queue-type' for queue '%s': %q is not supported by the emulation (classic, quorum)", name, s)
			}
		case "x-message-ttl":
			n, ok := intArg(v)
			if !ok || n < 0 {
				return nil, fmt.Errorf("invalid arg 'x-message-ttl' for queue '%s': %v", name, v)
			}
			q.ttl, q.hasTTL = time.Duration(n)*time.Millisecond, true
		case "x-dead-letter-exchange":
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("invalid arg 'x-dead-letter-exchange' for queue '%s': %v", name, v)
			}
			q.dlx, q.hasDLX = s, true
		case "x-dead-letter-routing-key":
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("invalid arg 'x-dead-letter-routing-key' for queue '%s': %v", name, v)
			}
			q.dlrk, q.hasDLRK = s, true
		case "x-delivery-limit":
			n, ok := intArg(v)
			if !ok || n < 0 {
				return nil, fmt.Errorf("invalid arg 'x-delivery-limit' for queue '%s': %v", name, v)
			}
			q.deliveryLimit = int(n)
		}
	}
	if q.quorum && (q.exclusive || q.autoDelete || !q.durable) {
		return nil, fmt.Errorf("invalid property for queue '%s': a quorum queue must be durable, not exclusive, not auto-delete", name)
	}
	if q.hasDLRK && !q.hasDLX {
		return nil, fmt.Errorf("invalid arg 'x-dead-letter-routing-key' for queue '%s': it needs x-dead-letter-exchange", name)
	}
	return q, nil
}

func intArg(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), true
	}
	return 0, false
}

// sameArgs compares two argument tables as RabbitMQ does for a
// redeclaration: integers of any width are equal by value.
func sameArgs(a, b amqp.Table) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			return false
		}
		na, oka := intArg(va)
		nb, okb := intArg(vb)
		if oka && okb {
			if na != nb {
				return false
			}
			continue
		}
		if fmt.Sprint(va) != fmt.Sprint(vb) {
			return false
		}
	}
	return true
}

// enqueueLocked adds m to q, setting its expiry from the queue's TTL and
// its own expiration, whichever is shorter.
func (b *Broker) enqueueLocked(q *queue, m *message) {
	b.seq++
	m.seq = b.seq
	ttl, has := q.ttl, q.hasTTL
	if e := m.props.Expiration; e != "" {
		if n, err := strconv.ParseInt(e, 10, 64); err == nil && n >= 0 {
			if d := time.Duration(n) * time.Millisecond; !has || d < ttl {
				ttl, has = d, true
			}
		}
	}
	if has {
		m.expiresAt = b.now.Add(ttl)
	}
	q.msgs = append(q.msgs, m)
}

// requeueLocked puts a delivered message back in its place (by its
// original order), marked redelivered; on a quorum queue past its delivery
// limit it is dead-lettered instead.
func (b *Broker) requeueLocked(q *queue, m *message) {
	m.redelivered = true
	if q.quorum {
		m.returns++
		if q.deliveryLimit >= 0 && m.returns > q.deliveryLimit {
			b.deadLetterLocked(q, m, "delivery_limit")
			return
		}
	}
	if _, live := b.queues[q.name]; !live || b.queues[q.name] != q {
		return // the queue was deleted meanwhile: so is the message
	}
	i, _ := slices.BinarySearchFunc(q.msgs, m.seq, func(x *message, seq uint64) int {
		switch {
		case x.seq < seq:
			return -1
		case x.seq > seq:
			return 1
		}
		return 0
	})
	q.msgs = slices.Insert(q.msgs, i, m)
}

// expireLocked dead-letters (or drops) the expired messages at q's head,
// and a message with a TTL of zero that no consumer can take at once.
func (b *Broker) expireLocked(q *queue) bool {
	moved := false
	for len(q.msgs) > 0 {
		m := q.msgs[0]
		if m.expiresAt.IsZero() || m.expiresAt.After(b.now) {
			break
		}
		if !m.expiresAt.Before(b.now) && q.roomFor() {
			break // due now, and a consumer takes it first
		}
		q.msgs = q.msgs[1:]
		b.deadLetterLocked(q, m, "expired")
		moved = true
	}
	return moved
}

func (q *queue) roomFor() bool {
	for _, c := range q.consumers {
		if c.hasRoom() {
			return true
		}
	}
	return false
}

// deliverLocked hands q's ready messages to its consumers, round robin,
// as far as their prefetch allows.
func (b *Broker) deliverLocked(q *queue) bool {
	moved := false
	for len(q.msgs) > 0 && len(q.consumers) > 0 {
		var c *consumer
		for i := range q.consumers {
			cand := q.consumers[(q.next+i)%len(q.consumers)]
			if cand.hasRoom() {
				c = cand
				q.next = (q.next + i + 1) % len(q.consumers)
				break
			}
		}
		if c == nil {
			break
		}
		if m := q.msgs[0]; !m.expiresAt.IsZero() && m.expiresAt.Before(b.now) {
			break // expireLocked takes it
		}
		m := q.msgs[0]
		q.msgs = q.msgs[1:]
		c.ch.deliverLocked(c, q, m)
		moved = true
	}
	return moved
}

// deadLetterLocked moves m, leaving q for reason, to q's dead-letter
// exchange, with the x-death history RabbitMQ writes; without one (or
// when it routes nowhere) the message is dropped, as RabbitMQ drops it.
func (b *Broker) deadLetterLocked(q *queue, m *message, reason string) {
	if !q.hasDLX {
		return
	}
	headers := copyTable(m.props.Headers)
	if headers == nil {
		headers = amqp.Table{}
	}
	var deaths []any
	if old, ok := headers["x-death"].([]any); ok {
		deaths = old
	}
	found := -1
	for i, d := range deaths {
		t, ok := d.(amqp.Table)
		if ok && t["queue"] == q.name && t["reason"] == reason {
			found = i
			break
		}
	}
	if found >= 0 {
		t := deaths[found].(amqp.Table)
		n, _ := intArg(t["count"])
		t["count"] = n + 1
		t["time"] = b.now
		deaths = append(deaths[:found:found], deaths[found+1:]...)
		deaths = append([]any{t}, deaths...)
	} else {
		t := amqp.Table{
			"count":        int64(1),
			"reason":       reason,
			"queue":        q.name,
			"time":         b.now,
			"exchange":     m.exchange,
			"routing-keys": []any{m.routingKey},
		}
		if m.props.Expiration != "" {
			t["original-expiration"] = m.props.Expiration
		}
		deaths = append([]any{t}, deaths...)
	}
	headers["x-death"] = deaths
	if _, ok := headers["x-first-death-reason"]; !ok {
		headers["x-first-death-reason"] = reason
		headers["x-first-death-queue"] = q.name
		headers["x-first-death-exchange"] = m.exchange
	}
	delete(headers, "x-delivery-count")
	props := m.props
	props.Headers = headers
	props.Expiration = ""
	rk := m.routingKey
	if q.hasDLRK {
		rk = q.dlrk
	}
	for _, dst := range b.routeLocked(q.dlx, rk, headers) {
		p := props
		p.Headers = copyTable(headers)
		b.enqueueLocked(dst, &message{exchange: q.dlx, routingKey: rk, props: p, body: m.body})
	}
}

// routeLocked returns the queues a message published to ex with key rk
// reaches, through exchange-to-exchange bindings and alternate exchanges.
func (b *Broker) routeLocked(ex, rk string, headers amqp.Table) []*queue {
	seen := map[string]bool{}
	var out []*queue
	added := map[*queue]bool{}
	var walk func(name string)
	walk = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		e, ok := b.exchanges[name]
		if !ok {
			return
		}
		before := len(out)
		if name == "" {
			if q, ok := b.queues[rk]; ok && !added[q] {
				added[q] = true
				out = append(out, q)
			}
			return
		}
		for _, bd := range e.bindings {
			if !e.matches(bd, rk, headers) {
				continue
			}
			if bd.toExchange {
				walk(bd.dest)
				continue
			}
			if q, ok := b.queues[bd.dest]; ok && !added[q] {
				added[q] = true
				out = append(out, q)
			}
		}
		if len(out) == before {
			if ae, ok := e.args["alternate-exchange"].(string); ok {
				walk(ae)
			}
		}
	}
	walk(ex)
	return out
}

func (e *exchange) matches(bd binding, rk string, headers amqp.Table) bool {
	switch e.kind {
	case "fanout":
		return true
	case "topic":
		return topicMatch(strings.Split(bd.key, "."), strings.Split(rk, "."))
	case "headers":
		any := bd.args["x-match"] == "any"
		n, hit := 0, 0
		for k, want := range bd.args {
			if strings.HasPrefix(k, "x-") {
				continue
			}
			n++
			if got, ok := headers[k]; ok && fmt.Sprint(got) == fmt.Sprint(want) {
				hit++
			}
		}
		if any {
			return hit > 0
		}
		return hit == n
	}
	return bd.key == rk
}

// topicMatch matches a topic binding's words against a routing key's: "*"
// is one word, "#" zero or more.
func topicMatch(pat, words []string) bool {
	if len(pat) == 0 {
		return len(words) == 0
	}
	switch pat[0] {
	case "#":
		for i := 0; i <= len(words); i++ {
			if topicMatch(pat[1:], words[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(words) > 0 && topicMatch(pat[1:], words[1:])
	}
	return len(words) > 0 && words[0] == pat[0] && topicMatch(pat[1:], words[1:])
}

// deleteQueueLocked removes q, cancelling its consumers (they are told
// with basic.cancel); returns how many ready messages it held.
func (b *Broker) deleteQueueLocked(q *queue) int {
	n := len(q.msgs)
	delete(b.queues, q.name)
	for _, c := range slices.Clone(q.consumers) {
		c.ch.cancelLocked(c, true)
	}
	for _, e := range b.exchanges {
		e.bindings = slices.DeleteFunc(e.bindings, func(bd binding) bool { return !bd.toExchange && bd.dest == q.name })
	}
	q.msgs = nil
	return n
}
