package amqpmem

import (
	"fmt"
	"slices"
	"sort"

	amqp "github.com/rabbitmq/amqp091-go"
)

type channel struct {
	id             uint16
	c              *conn
	closing        bool // the broker closed it; waiting for close-ok
	confirm        bool
	published      uint64 // publish sequence, in confirm mode
	tag            uint64 // last delivery tag
	unacked        map[uint64]*pending
	consumers      map[string]*consumer
	prefetch       int // for consumers created from now on
	globalPrefetch int
	publish        *publishing // a publish awaiting its content
	replyKey       string      // this channel's direct reply-to routing key, once consumed
}

type pending struct {
	m *message
	q *queue
	c *consumer
}

type publishing struct {
	method *amqp.WireBasicPublish
	props  amqp.WireProperties
	size   uint64
	body   []byte
	header bool
}

// fail closes the channel with an exception, releasing what it held.
func (ch *channel) fail(err error) {
	ae, ok := err.(*amqpError)
	if !ok {
		ae = &amqpError{code: 541, text: "INTERNAL_ERROR - " + err.Error()}
	}
	ch.releaseLocked()
	ch.closing = true
	ch.c.sendMethod(ch.id, &amqp.WireChannelClose{ReplyCode: ae.code, ReplyText: ae.text, ClassId: ae.class, MethodId: ae.method})
}

// releaseLocked requeues the channel's unacked messages (in order) and
// drops its consumers.
func (ch *channel) releaseLocked() {
	for _, c := range ch.consumers {
		ch.cancelLocked(c, false)
	}
	tags := make([]uint64, 0, len(ch.unacked))
	for t := range ch.unacked {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	for _, t := range tags {
		p := ch.unacked[t]
		delete(ch.unacked, t)
		p.q.unacked--
		p.c.unacked--
		ch.c.b.requeueLocked(p.q, p.m)
	}
	ch.publish = nil
}

// cancelLocked removes a consumer; notify sends the client basic.cancel
// (the queue was deleted).
func (ch *channel) cancelLocked(c *consumer, notify bool) {
	delete(ch.consumers, c.tag)
	if q := c.queue; q != nil {
		q.consumers = slices.DeleteFunc(q.consumers, func(x *consumer) bool { return x == c })
		if q.autoDelete && len(q.consumers) == 0 && q.hadConsumer && ch.c.b.queues[q.name] == q {
			ch.c.b.deleteQueueLocked(q)
		}
	} else {
		ch.replyKey = ""
	}
	if notify {
		ch.c.sendMethod(ch.id, &amqp.WireBasicCancel{ConsumerTag: c.tag, NoWait: true})
	}
}

// deliverLocked sends m to consumer c.
func (ch *channel) deliverLocked(c *consumer, q *queue, m *message) {
	ch.tag++
	if !c.noAck {
		ch.unacked[ch.tag] = &pending{m: m, q: q, c: c}
		c.unacked++
		if q != nil {
			q.unacked++
		}
	}
	props := m.props
	if q != nil && q.quorum && m.returns > 0 {
		props.Headers = copyTable(props.Headers)
		if props.Headers == nil {
			props.Headers = amqp.Table{}
		}
		props.Headers["x-delivery-count"] = int64(m.returns)
	}
	ch.c.sendContent(ch.id, &amqp.WireBasicDeliver{ConsumerTag: c.tag, DeliveryTag: ch.tag, Redelivered: m.redelivered,
		Exchange: m.exchange, RoutingKey: m.routingKey}, props, m.body)
}

func (ch *channel) ok(m amqp.WireMethod, noWait bool) {
	if !noWait {
		ch.c.sendMethod(ch.id, m)
	}
}

func (ch *channel) handle(f amqp.WireFrame) error {
	b := ch.c.b
	if ch.publish != nil {
		return ch.content(f)
	}
	switch m := f.Method.(type) {
	case nil:
		return &amqpError{code: codeCommandInvalid, text: "COMMAND_INVALID - content frame without a publish", conn: true}
	case *amqp.WireChannelClose:
		ch.releaseLocked()
		delete(ch.c.channels, ch.id)
		ch.c.sendMethod(ch.id, &amqp.WireChannelCloseOk{})
	case *amqp.WireChannelFlow:
		ch.c.sendMethod(ch.id, &amqp.WireChannelFlowOk{Active: m.Active})
	case *amqp.WireConfirmSelect:
		ch.confirm = true
		ch.ok(&amqp.WireConfirmSelectOk{}, m.Nowait)
	case *amqp.WireBasicQos:
		if m.PrefetchSize != 0 {
			return chanErr(codeNotImplemented, m, "prefetch_size!=0 (%d)", m.PrefetchSize)
		}
		if m.Global {
			ch.globalPrefetch = int(m.PrefetchCount)
		} else {
			ch.prefetch = int(m.PrefetchCount)
		}
		ch.c.sendMethod(ch.id, &amqp.WireBasicQosOk{})

	case *amqp.WireExchangeDeclare:
		return ch.exchangeDeclare(m)
	case *amqp.WireExchangeDelete:
		e, ok := b.exchanges[m.Exchange]
		if m.Exchange == "" || len(m.Exchange) > 4 && m.Exchange[:4] == "amq." {
			return chanErr(codeAccessRefused, m, "operation not permitted on the default exchange or an amq.* exchange '%s'", m.Exchange)
		}
		if ok {
			if m.IfUnused && len(e.bindings) > 0 {
				return chanErr(codePrecondition, m, "exchange '%s' in vhost '/' in use", m.Exchange)
			}
			delete(b.exchanges, m.Exchange)
			for _, o := range b.exchanges {
				o.bindings = slices.DeleteFunc(o.bindings, func(bd binding) bool { return bd.toExchange && bd.dest == m.Exchange })
			}
		}
		ch.ok(&amqp.WireExchangeDeleteOk{}, m.NoWait)
	case *amqp.WireExchangeBind:
		src, dst, err := ch.bindEnds(m, m.Source, m.Destination, true)
		if err != nil {
			return err
		}
		src.addBinding(binding{dest: dst, toExchange: true, key: m.RoutingKey, args: copyTable(m.Arguments)})
		ch.ok(&amqp.WireExchangeBindOk{}, m.NoWait)
	case *amqp.WireExchangeUnbind:
		if src, ok := b.exchanges[m.Source]; ok {
			src.removeBinding(binding{dest: m.Destination, toExchange: true, key: m.RoutingKey, args: m.Arguments})
		}
		ch.ok(&amqp.WireExchangeUnbindOk{}, m.NoWait)

	case *amqp.WireQueueDeclare:
		return ch.queueDeclare(m)
	case *amqp.WireQueueBind:
		src, dst, err := ch.bindEnds(m, m.Exchange, m.Queue, false)
		if err != nil {
			return err
		}
		src.addBinding(binding{dest: dst, key: m.RoutingKey, args: copyTable(m.Arguments)})
		ch.ok(&amqp.WireQueueBindOk{}, m.NoWait)
	case *amqp.WireQueueUnbind:
		if src, ok := b.exchanges[m.Exchange]; ok {
			src.removeBinding(binding{dest: m.Queue, key: m.RoutingKey, args: m.Arguments})
		}
		ch.c.sendMethod(ch.id, &amqp.WireQueueUnbindOk{})
	case *amqp.WireQueuePurge:
		q, err := ch.queue(m, m.Queue)
		if err != nil {
			return err
		}
		n := len(q.msgs)
		q.msgs = nil
		ch.ok(&amqp.WireQueuePurgeOk{MessageCount: uint32(n)}, m.NoWait)
	case *amqp.WireQueueDelete:
		q, ok := b.queues[m.Queue]
		if !ok {
			ch.ok(&amqp.WireQueueDeleteOk{}, m.NoWait)
			return nil
		}
		if err := ch.owns(m, q); err != nil {
			return err
		}
		if m.IfUnused && len(q.consumers) > 0 {
			return chanErr(codePrecondition, m, "queue '%s' in vhost '/' in use", q.name)
		}
		if m.IfEmpty && len(q.msgs) > 0 {
			return chanErr(codePrecondition, m, "queue '%s' in vhost '/' not empty", q.name)
		}
		ch.ok(&amqp.WireQueueDeleteOk{MessageCount: uint32(b.deleteQueueLocked(q))}, m.NoWait)

	case *amqp.WireBasicConsume:
		return ch.consume(m)
	case *amqp.WireBasicCancel:
		if c, ok := ch.consumers[m.ConsumerTag]; ok {
			ch.cancelLocked(c, false)
		}
		ch.ok(&amqp.WireBasicCancelOk{ConsumerTag: m.ConsumerTag}, m.NoWait)
	case *amqp.WireBasicPublish:
		ch.publish = &publishing{method: m}
	case *amqp.WireBasicGet:
		q, err := ch.queue(m, m.Queue)
		if err != nil {
			return err
		}
		b.expireLocked(q)
		if len(q.msgs) == 0 {
			ch.c.sendMethod(ch.id, &amqp.WireBasicGetEmpty{})
			return nil
		}
		msg := q.msgs[0]
		q.msgs = q.msgs[1:]
		ch.tag++
		if !m.NoAck {
			ch.unacked[ch.tag] = &pending{m: msg, q: q, c: &consumer{ch: ch}}
			q.unacked++
		}
		ch.c.sendContent(ch.id, &amqp.WireBasicGetOk{DeliveryTag: ch.tag, Redelivered: msg.redelivered, Exchange: msg.exchange,
			RoutingKey: msg.routingKey, MessageCount: uint32(len(q.msgs))}, msg.props, msg.body)
	case *amqp.WireBasicAck:
		return ch.settle(m, m.DeliveryTag, m.Multiple, func(p *pending) {})
	case *amqp.WireBasicNack:
		return ch.settle(m, m.DeliveryTag, m.Multiple, ch.reject(m.Requeue))
	case *amqp.WireBasicReject:
		return ch.settle(m, m.DeliveryTag, false, ch.reject(m.Requeue))
	case *amqp.WireBasicRecover:
		tags := make([]uint64, 0, len(ch.unacked))
		for t := range ch.unacked {
			tags = append(tags, t)
		}
		return ch.settleTags(tags, ch.reject(true))
	default:
		class, method := amqp.WireMethodID(m)
		return chanErr(codeNotImplemented, m, "method %d.%d (%T) is not emulated", class, method, m)
	}
	return nil
}

func (ch *channel) reject(requeue bool) func(p *pending) {
	b := ch.c.b
	return func(p *pending) {
		if requeue {
			b.requeueLocked(p.q, p.m)
		} else if b.queues[p.q.name] == p.q {
			b.deadLetterLocked(p.q, p.m, "rejected")
		}
	}
}

// settle settles the delivery tag (and, multiple, every earlier one) with
// fn; an unknown tag closes the channel, as RabbitMQ does.
func (ch *channel) settle(m amqp.WireMethod, tag uint64, multiple bool, fn func(*pending)) error {
	var tags []uint64
	if multiple {
		for t := range ch.unacked {
			if t <= tag || tag == 0 {
				tags = append(tags, t)
			}
		}
	} else {
		if _, ok := ch.unacked[tag]; !ok {
			return chanErr(codePrecondition, m, "unknown delivery tag %d", tag)
		}
		tags = []uint64{tag}
	}
	if multiple && len(tags) == 0 && tag != 0 {
		return chanErr(codePrecondition, m, "unknown delivery tag %d", tag)
	}
	return ch.settleTags(tags, fn)
}

func (ch *channel) settleTags(tags []uint64, fn func(*pending)) error {
	sort.Slice(tags, func(i, j int) bool { return tags[i] < tags[j] })
	for _, t := range tags {
		p := ch.unacked[t]
		delete(ch.unacked, t)
		p.c.unacked--
		p.q.unacked--
		fn(p)
	}
	return nil
}

// content collects a publish's header and body frames.
func (ch *channel) content(f amqp.WireFrame) error {
	p := ch.publish
	switch {
	case !p.header && f.Header:
		p.header, p.props, p.size = true, f.Properties, f.Size
		p.body = make([]byte, 0, min(p.size, frameMax))
	case p.header && f.Method == nil && !f.Header:
		p.body = append(p.body, f.Body...)
		if uint64(len(p.body)) > p.size {
			return &amqpError{code: codeFrameError, text: "FRAME_ERROR - body longer than its header said", conn: true}
		}
	default:
		return &amqpError{code: codeCommandInvalid, text: "COMMAND_INVALID - expected content frames of basic.publish", conn: true}
	}
	if uint64(len(p.body)) == p.size {
		ch.publish = nil
		return ch.route(p)
	}
	return nil
}

// route delivers a complete publish and confirms it.
func (ch *channel) route(p *publishing) error {
	b := ch.c.b
	m := p.method
	if ch.confirm {
		ch.published++
	}
	if isReplyTo(m.RoutingKey) && m.Exchange == "" {
		return ch.routeReply(p)
	}
	if isReplyTo(p.props.ReplyTo) && p.props.ReplyTo == replyTo {
		if ch.replyKey == "" {
			return chanErr(codePrecondition, m, "fast reply consumer does not exist")
		}
		p.props.ReplyTo = ch.replyKey
	}
	e, ok := b.exchanges[m.Exchange]
	if !ok {
		return chanErr(codeNotFound, m, "no exchange '%s' in vhost '/'", m.Exchange)
	}
	if e.internal {
		return chanErr(codeAccessRefused, m, "cannot publish to internal exchange '%s' in vhost '/'", m.Exchange)
	}
	qs := b.routeLocked(m.Exchange, m.RoutingKey, p.props.Headers)
	if len(qs) == 0 && m.Mandatory {
		ch.c.sendContent(ch.id, &amqp.WireBasicReturn{ReplyCode: codeNoRoute, ReplyText: "NO_ROUTE", Exchange: m.Exchange, RoutingKey: m.RoutingKey}, p.props, p.body)
	}
	for _, q := range qs {
		props := p.props
		props.Headers = copyTable(p.props.Headers)
		b.enqueueLocked(q, &message{exchange: m.Exchange, routingKey: m.RoutingKey, props: props, body: p.body})
	}
	if ch.confirm {
		ch.c.sendMethod(ch.id, &amqp.WireBasicAck{DeliveryTag: ch.published})
	}
	return nil
}

// routeReply delivers a reply published to a direct reply-to key.
func (ch *channel) routeReply(p *publishing) error {
	m := p.method
	var target *consumer
	for c := range ch.c.b.conns {
		for _, och := range c.channels {
			if och.replyKey == "" || och.replyKey != m.RoutingKey || och.closing {
				continue
			}
			for _, rc := range och.consumers {
				if rc.queue == nil {
					target = rc
				}
			}
		}
	}
	if target == nil {
		if m.Mandatory {
			ch.c.sendContent(ch.id, &amqp.WireBasicReturn{ReplyCode: codeNoRoute, ReplyText: "NO_ROUTE", Exchange: m.Exchange, RoutingKey: m.RoutingKey}, p.props, p.body)
		}
	} else {
		target.ch.deliverLocked(target, nil, &message{exchange: "", routingKey: m.RoutingKey, props: p.props, body: p.body})
	}
	if ch.confirm {
		ch.c.sendMethod(ch.id, &amqp.WireBasicAck{DeliveryTag: ch.published})
	}
	return nil
}

func (ch *channel) consume(m *amqp.WireBasicConsume) error {
	b := ch.c.b
	tag := m.ConsumerTag
	if tag == "" {
		tag = b.nameLocked("amq.ctag-amqpmem-")
	}
	if _, dup := ch.consumers[tag]; dup {
		return &amqpError{code: 530, text: fmt.Sprintf("NOT_ALLOWED - attempt to reuse consumer tag '%s'", tag), conn: true}
	}
	if m.Queue == replyTo {
		if !m.NoAck {
			return chanErr(codePrecondition, m, "reply consumer cannot acknowledge")
		}
		if ch.replyKey != "" {
			return chanErr(codePrecondition, m, "reply consumer already set")
		}
		ch.consumers[tag] = &consumer{tag: tag, ch: ch, noAck: true}
		ch.replyKey = b.nameLocked(replyTo + ".amqpmem-")
		ch.ok(&amqp.WireBasicConsumeOk{ConsumerTag: tag}, m.NoWait)
		return nil
	}
	q, err := ch.queue(m, m.Queue)
	if err != nil {
		return err
	}
	c := &consumer{tag: tag, ch: ch, queue: q, noAck: m.NoAck, prefetch: ch.prefetch}
	ch.consumers[tag] = c
	q.consumers = append(q.consumers, c)
	q.hadConsumer = true
	ch.ok(&amqp.WireBasicConsumeOk{ConsumerTag: tag}, m.NoWait)
	return nil
}

// queue returns the named queue, or a 404 (405 when another connection
// holds it exclusively).
func (ch *channel) queue(m amqp.WireMethod, name string) (*queue, error) {
	q, ok := ch.c.b.queues[name]
	if !ok {
		return nil, chanErr(codeNotFound, m, "no queue '%s' in vhost '/'", name)
	}
	return q, ch.owns(m, q)
}

func (ch *channel) owns(m amqp.WireMethod, q *queue) error {
	if q.exclusive && q.owner != ch.c {
		return chanErr(codeResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.", q.name)
	}
	return nil
}

func (ch *channel) bindEnds(m amqp.WireMethod, source, dest string, toExchange bool) (*exchange, string, error) {
	b := ch.c.b
	src, ok := b.exchanges[source]
	if !ok {
		return nil, "", chanErr(codeNotFound, m, "no exchange '%s' in vhost '/'", source)
	}
	if source == "" {
		return nil, "", chanErr(codeAccessRefused, m, "operation not permitted on the default exchange")
	}
	if toExchange {
		if _, ok := b.exchanges[dest]; !ok {
			return nil, "", chanErr(codeNotFound, m, "no exchange '%s' in vhost '/'", dest)
		}
	} else if _, err := ch.queue(m, dest); err != nil {
		return nil, "", err
	}
	return src, dest, nil
}

func (e *exchange) addBinding(bd binding) {
	for _, x := range e.bindings {
		if x.dest == bd.dest && x.toExchange == bd.toExchange && x.key == bd.key && sameArgs(x.args, bd.args) {
			return
		}
	}
	e.bindings = append(e.bindings, bd)
}

func (e *exchange) removeBinding(bd binding) {
	e.bindings = slices.DeleteFunc(e.bindings, func(x binding) bool {
		return x.dest == bd.dest && x.toExchange == bd.toExchange && x.key == bd.key && sameArgs(x.args, bd.args)
	})
}

func (ch *channel) exchangeDeclare(m *amqp.WireExchangeDeclare) error {
	b := ch.c.b
	e, ok := b.exchanges[m.Exchange]
	if m.Passive {
		if !ok {
			return chanErr(codeNotFound, m, "no exchange '%s' in vhost '/'", m.Exchange)
		}
		ch.ok(&amqp.WireExchangeDeclareOk{}, m.NoWait)
		return nil
	}
	if ok {
		if e.kind != m.Type || e.durable != m.Durable || e.autoDelete != m.AutoDelete || e.internal != m.Internal || !sameArgs(e.args, m.Arguments) {
			return chanErr(codePrecondition, m, "inequivalent arg for exchange '%s' in vhost '/'", m.Exchange)
		}
		ch.ok(&amqp.WireExchangeDeclareOk{}, m.NoWait)
		return nil
	}
	if m.Exchange == "" || len(m.Exchange) > 4 && m.Exchange[:4] == "amq." {
		return chanErr(codeAccessRefused, m, "exchange name '%s' contains reserved prefix 'amq.*'", m.Exchange)
	}
	switch m.Type {
	case "direct", "fanout", "topic", "headers":
	default:
		return &amqpError{code: codeCommandInvalid, text: fmt.Sprintf("COMMAND_INVALID - unknown exchange type '%s'", m.Type), conn: true}
	}
	b.exchanges[m.Exchange] = &exchange{name: m.Exchange, kind: m.Type, durable: m.Durable, autoDelete: m.AutoDelete,
		internal: m.Internal, args: copyTable(m.Arguments)}
	ch.ok(&amqp.WireExchangeDeclareOk{}, m.NoWait)
	return nil
}

func (ch *channel) queueDeclare(m *amqp.WireQueueDeclare) error {
	b := ch.c.b
	name := m.Queue
	if m.Passive {
		q, err := ch.queue(m, name)
		if err != nil {
			return err
		}
		b.expireLocked(q)
		ch.ok(&amqp.WireQueueDeclareOk{Queue: q.name, MessageCount: uint32(len(q.msgs)), ConsumerCount: uint32(len(q.consumers))}, m.NoWait)
		return nil
	}
	if name == "" {
		name = b.nameLocked("amq.gen-amqpmem-")
	} else if len(name) > 4 && name[:4] == "amq." {
		return chanErr(codeAccessRefused, m, "queue name '%s' contains reserved prefix 'amq.*'", name)
	}
	if q, ok := b.queues[name]; ok {
		if err := ch.owns(m, q); err != nil {
			return err
		}
		if q.durable != m.Durable || q.autoDelete != m.AutoDelete || q.exclusive != m.Exclusive {
			return chanErr(codePrecondition, m, "inequivalent arg 'durable', 'auto_delete' or 'exclusive' for queue '%s' in vhost '/'", name)
		}
		if !sameArgs(q.args, m.Arguments) {
			return chanErr(codePrecondition, m, "inequivalent arg for queue '%s' in vhost '/': received %v but current is %v", name, m.Arguments, q.args)
		}
		b.expireLocked(q)
		ch.ok(&amqp.WireQueueDeclareOk{Queue: name, MessageCount: uint32(len(q.msgs)), ConsumerCount: uint32(len(q.consumers))}, m.NoWait)
		return nil
	}
	q, err := newQueue(name, m)
	if err != nil {
		return chanErr(codePrecondition, m, "%s", err.Error())
	}
	if q.exclusive {
		q.owner = ch.c
	}
	b.queues[name] = q
	// Every queue is bound to the default exchange by its name; routeLocked
	// handles that without a binding.
	ch.ok(&amqp.WireQueueDeclareOk{Queue: name}, m.NoWait)
	return nil
}
