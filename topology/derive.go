package topology

import (
	"maps"
	"strings"
)

// DefaultDeliveryLimit is the x-delivery-limit of a quorum work queue whose
// file sets no delivery_limit: RabbitMQ 4's own default, set explicitly so
// that queues on RabbitMQ 3.x, which has none, get the same backstop.
//
// warren retries a failed job by publishing it again, as a new message, so
// the broker's count of a message's deliveries grows only when a worker
// returns it unsettled: the worker crashed, lost its channel, or shut down
// with the job prefetched. The limit ends crash loops, where a job kills
// every worker that takes it: past it, the broker dead-letters the job.
const DefaultDeliveryLimit = 20

// DeadLetterDeliveryLimit is the x-delivery-limit of a quorum dead-letter
// queue: no practical limit. Operators read a dead-letter queue by taking
// its jobs and returning them (warren dlq list, show, export), and
// RabbitMQ 4.0 to 4.2 count each return as a delivery; without an explicit
// limit a quorum queue gets RabbitMQ 4's default of 20 and, having no
// dead-letter target of its own, drops a job read 20 times. (-1, which
// RabbitMQ 4 takes for "no limit", would make RabbitMQ 3.x drop a job at
// its first return.)
const DeadLetterDeliveryLimit = 1<<31 - 1

// derive turns a checked file into a Topology: the file's entities with
// their AMQP arguments, then what warren derives from them (DESIGN §4):
// a dead-letter queue per work queue and the delay cascade.
func derive(f *fileSpec) *Topology {
	defaults := f.defaults.retry.over(DefaultRetryPolicy())
	t := &Topology{
		Routes:       map[string]Route{},
		DefaultRetry: defaults,
		overrides:    map[string]retrySpec{},
	}
	defaultType := f.defaults.queueType.or(Quorum)
	// Room for everything at once: a file may hold tens of thousands of
	// entities, and growing the slices entity by entity copies each
	// several times.
	fileBindings := 0
	for _, b := range f.bindings {
		fileBindings += len(b.routingKeys())
	}
	t.Exchanges = make([]Exchange, 0, len(f.exchanges)+1+DelayLevels+2)
	t.Queues = make([]Queue, 0, 3*len(f.queues)+DelayLevels+1)
	t.Bindings = make([]Binding, 0, fileBindings+2*len(f.queues)+2*DelayLevels+1)

	for _, x := range f.exchanges {
		var args Table
		if x.alternate.set {
			args = Table{"alternate-exchange": x.alternate.v}
		}
		t.Exchanges = append(t.Exchanges, Exchange{
			Name:       x.name,
			Kind:       x.kind.v,
			Durable:    x.durable.or(true),
			AutoDelete: x.autoDelete.v,
			Internal:   x.internal.v,
			Args:       args,
			Pos:        x.pos,
		})
	}

	deadLetterQueues := make([]Queue, 0, len(f.queues))
	quarantineQueues := make([]Queue, 0, len(f.queues))
	deadLetterBindings := make([]Binding, 0, len(f.queues))
	for _, qs := range f.queues {
		q := workQueue(qs, qs.typ.or(defaultType), defaults)
		q.QuarantineQueue = QuarantineQueueName(q.Name)
		t.Queues = append(t.Queues, q)
		quarantineQueues = append(quarantineQueues, quarantineQueue(q))
		if q.DeadLetterQueue == "" {
			continue
		}
		dlqArgs := Table{"x-queue-type": q.Type}
		if q.Type == Quorum {
			dlqArgs["x-delivery-limit"] = int64(DeadLetterDeliveryLimit)
		}
		deadLetterQueues = append(deadLetterQueues, Queue{
			Name:    q.DeadLetterQueue,
			Type:    q.Type,
			Durable: true,
			Args:    dlqArgs,
			Derived: true,
		})
		deadLetterBindings = append(deadLetterBindings, Binding{
			Exchange:   DeadLetterExchange,
			Queue:      q.DeadLetterQueue,
			RoutingKey: q.Name,
			Derived:    true,
		})
	}
	t.Queues = append(t.Queues, deadLetterQueues...)
	t.Queues = append(t.Queues, quarantineQueues...)

	for _, b := range f.bindings {
		for _, k := range b.routingKeys() {
			t.Bindings = append(t.Bindings, Binding{
				Exchange:   b.exchange.v,
				Queue:      b.queue.v,
				ToExchange: b.toExchange.v,
				RoutingKey: k.v,
				Args:       maps.Clone(b.args.v),
				Pos:        k.at(b.pos),
			})
		}
	}

	if len(deadLetterQueues) > 0 {
		t.Exchanges = append(t.Exchanges, Exchange{Name: DeadLetterExchange, Kind: KindDirect, Durable: true, Derived: true})
		t.Bindings = append(t.Bindings, deadLetterBindings...)
	}

	if len(f.queues) > 0 {
		// Quorum by default, whatever the work queues are: the cascade is
		// shared by every topology applied to the vhost, so its type must
		// not depend on one file's queues, and quorum queues keep delayed
		// jobs available when a cluster node is lost.
		deriveDelays(t, f.delayType.or(Quorum))
	}

	for _, r := range f.routes {
		route := Route{JobType: r.jobType, Exchange: r.exchange.v, RoutingKey: r.key(), Pos: r.pos}
		if r.retry.set {
			p := r.retry.over(defaults)
			route.Retry = &p
			t.overrides[r.jobType] = r.retry
		}
		t.Routes[r.jobType] = route
	}
	deriveSchedules(t, f)
	return t
}

// quarantineQueue derives the quarantine queue of work queue q, of q's
// type and durability. Workers count the crashes of the jobs in it and
// park them themselves; when quorum, it has no practical delivery limit
// (as a dead-letter queue), so the broker neither drops a job there nor
// needs a dead-letter target of q's, which would tie the quarantine's
// arguments to q's.
func quarantineQueue(q Queue) Queue {
	args := Table{"x-queue-type": q.Type}
	if q.Type == Quorum {
		args["x-delivery-limit"] = int64(DeadLetterDeliveryLimit)
	}
	return Queue{Name: q.QuarantineQueue, Type: q.Type, Durable: q.Durable, Args: args, Derived: true}
}

// workQueue resolves a queue the file declares.
func workQueue(qs *queueSpec, typ string, defaults RetryPolicy) Queue {
	retry := qs.retry.over(defaults)
	q := Queue{
		Name:       qs.name,
		Type:       typ,
		Durable:    typ == Quorum || qs.durable.or(true),
		AutoDelete: qs.autoDelete.v,
		Exclusive:  qs.exclusive.v,
		Args:       Table{"x-queue-type": typ},
		Retry:      &retry,
		Pos:        qs.pos,
	}
	switch {
	case qs.dlx.set:
		q.DeadLetterExchange = qs.dlx.v
		q.DeadLetterRoutingKey = qs.dlrk.v
	case qs.deadLetter.or(true):
		q.DeadLetterExchange = DeadLetterExchange
		q.DeadLetterRoutingKey = qs.name
		q.DeadLetterQueue = DeadLetterQueueName(qs.name)
	}
	if q.DeadLetterExchange != "" {
		q.Args["x-dead-letter-exchange"] = q.DeadLetterExchange
	}
	if q.DeadLetterRoutingKey != "" {
		q.Args["x-dead-letter-routing-key"] = q.DeadLetterRoutingKey
	}
	// Optional arguments go in only when set, so that a queue declared
	// without them stays equivalent.
	setString := func(name string, o opt[string]) {
		if o.set {
			q.Args[name] = o.v
		}
	}
	setInt := func(name string, o opt[int64]) {
		if o.set {
			q.Args[name] = o.v
		}
	}
	setString("x-dead-letter-strategy", qs.dlStrategy)
	setInt("x-message-ttl", qs.messageTTL)
	setInt("x-expires", qs.expires)
	setInt("x-max-length", qs.maxLength)
	setInt("x-max-length-bytes", qs.maxLengthBytes)
	setString("x-overflow", qs.overflow)
	if typ == Quorum {
		// The backstop against crash loops (DESIGN §4). -1 in the file
		// means no limit: the argument is left out, as RabbitMQ 3.x would
		// apply -1 as is and dead-letter every job at its first return.
		// (RabbitMQ 4 gives such a queue its own default, 20, unless a
		// policy says -1.)
		switch {
		case !qs.deliveryLimit.set:
			q.Args["x-delivery-limit"] = int64(DefaultDeliveryLimit)
		case qs.deliveryLimit.v >= 0:
			q.Args["x-delivery-limit"] = qs.deliveryLimit.v
		}
	}
	setInt("x-max-priority", qs.maxPriority)
	if qs.singleActive.v {
		q.Args["x-single-active-consumer"] = true
	}
	for _, a := range qs.args {
		q.Args[a.key] = a.value
	}
	return q
}

// deriveDelays adds the delay cascade (see delay.go), its queues of type
// typ, with a route from DelayDeliverExchange to every work queue.
func deriveDelays(t *Topology, typ string) {
	workQueues := make([]string, 0, len(t.Queues))
	for _, q := range t.Queues {
		if !q.Derived {
			workQueues = append(workQueues, q.Name)
		}
	}
	for level := DelayLevels - 1; level >= 0; level-- {
		name := DelayExchangeName(level)
		t.Exchanges = append(t.Exchanges, Exchange{Name: name, Kind: KindTopic, Durable: true, Derived: true})
		args := Table{
			"x-queue-type":           typ,
			"x-message-ttl":          int64(1<<level) * 1000,
			"x-dead-letter-exchange": delayTarget(level),
		}
		if typ == Quorum {
			// A message expiring from a quorum queue is otherwise
			// dead-lettered at most once: it could be lost on the way.
			args["x-dead-letter-strategy"] = "at-least-once"
			args["x-overflow"] = "reject-publish"
		}
		t.Queues = append(t.Queues, Queue{Name: name, Type: typ, Durable: true, Args: args, Derived: true})
		skip := strings.Repeat("*.", DelayLevels-1-level)
		t.Bindings = append(t.Bindings,
			Binding{Exchange: name, Queue: name, RoutingKey: skip + "1.#", Derived: true},
			Binding{Exchange: name, ToExchange: delayTarget(level), RoutingKey: skip + "0.#", Derived: true},
		)
	}
	t.Exchanges = append(t.Exchanges,
		Exchange{Name: DelayDeliverExchange, Kind: KindTopic, Durable: true, Derived: true,
			Args: Table{"alternate-exchange": DelayUnroutable}},
		Exchange{Name: DelayUnroutable, Kind: KindFanout, Durable: true, Derived: true},
	)
	t.Queues = append(t.Queues, Queue{Name: DelayUnroutable, Type: typ, Durable: true,
		Args: Table{"x-queue-type": typ}, Derived: true})
	bits := strings.Repeat("*.", DelayLevels)
	for _, q := range workQueues {
		t.Bindings = append(t.Bindings, Binding{Exchange: DelayDeliverExchange, Queue: q, RoutingKey: bits + q, Derived: true})
	}
	t.Bindings = append(t.Bindings, Binding{Exchange: DelayUnroutable, Queue: DelayUnroutable, Derived: true})
}
