package topology

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Checks that relate one entry of the file to another or to what RabbitMQ
// accepts: names, references, queue-type rules, dead-letter settings, raw
// arguments and retry policies. Routing checks are in routing.go. Each check
// reports and goes on, so that one run shows every problem.

const (
	// maxNameLen is RabbitMQ's limit on names and routing keys, in bytes.
	maxNameLen = 255
	// maxWorkQueueNameLen leaves room for the delay bits in a delay routing
	// key ("0.1.0. ... .1." is 2*DelayLevels bytes before the queue name).
	maxWorkQueueNameLen = maxNameLen - 2*DelayLevels
	// maxPriorityAdvised is the most priorities RabbitMQ advises.
	maxPriorityAdvised = 10
	// minDeliveryLimitAdvised is the lowest delivery limit that leaves room
	// for the deliveries a job spends without failing: each graceful
	// worker shutdown returns the jobs it had prefetched.
	minDeliveryLimitAdvised = 3
)

// builtinExchanges are the exchanges every RabbitMQ virtual host has that a
// file may bind from or to.
var builtinExchanges = map[string]string{
	"amq.direct":  KindDirect,
	"amq.fanout":  KindFanout,
	"amq.topic":   KindTopic,
	"amq.headers": KindHeaders,
	"amq.match":   KindHeaders,
}

// typedArguments maps the queue arguments the file has a key for to that key.
var typedArguments = map[string]string{
	"x-queue-type":              "type",
	"x-dead-letter-exchange":    "dead_letter_exchange",
	"x-dead-letter-routing-key": "dead_letter_routing_key",
	"x-dead-letter-strategy":    "dead_letter_strategy",
	"x-message-ttl":             "message_ttl",
	"x-expires":                 "expires",
	"x-max-length":              "max_length",
	"x-max-length-bytes":        "max_length_bytes",
	"x-overflow":                "overflow",
	"x-delivery-limit":          "delivery_limit",
	"x-max-priority":            "max_priority",
	"x-single-active-consumer":  "single_active_consumer",
}

// checker holds the file with its entries indexed by name.
type checker struct {
	f         *fileSpec
	p         *collector
	exchanges map[string]*exchangeSpec
	queues    map[string]*queueSpec
	defaults  RetryPolicy
	edges     []edge // the file's bindings whose ends are known
	byEdge    edgeIndex
}

func newChecker(f *fileSpec, p *collector) *checker {
	c := &checker{
		f:         f,
		p:         p,
		exchanges: map[string]*exchangeSpec{},
		queues:    map[string]*queueSpec{},
		defaults:  f.defaults.retry.over(DefaultRetryPolicy()),
	}
	for _, x := range f.exchanges {
		c.exchanges[x.name] = x
	}
	for _, q := range f.queues {
		c.queues[q.name] = q
	}
	return c
}

func (c *checker) check() {
	c.checkExchanges()
	c.checkQueues()
	c.checkBindings()
	c.index()
	c.checkRoutes()
	c.checkSchedules()
	c.checkRetries()
	c.checkRouting()
	c.checkDeadLetterCycles()
	c.checkReached()
}

// queueType is the type a queue is declared with.
func (c *checker) queueType(q *queueSpec) string {
	return q.typ.or(c.f.defaults.queueType.or(Quorum))
}

// exchangeKind returns the kind of a declared or built-in exchange.
func (c *checker) exchangeKind(name string) (string, bool) {
	if kind, ok := builtinExchanges[name]; ok {
		return kind, true
	}
	x, ok := c.exchanges[name]
	if !ok || !x.kind.set {
		return "", ok
	}
	return x.kind.v, true
}

// checkName reports an unusable name for an entity the file declares.
func (c *checker) checkName(what, name string, at Pos) bool {
	switch {
	case name == "":
		c.p.add(at, "", "%s name is empty", what)
	case len(name) > maxNameLen:
		c.p.add(at, "", "%s name is %d bytes long, RabbitMQ allows at most %d", what, len(name), maxNameLen)
	case strings.HasPrefix(name, "amq."):
		c.p.add(at, "choose a name that does not start with \"amq.\"",
			"%s name %q starts with \"amq.\", which RabbitMQ reserves", what, name)
	case strings.HasPrefix(name, ReservedPrefix):
		c.p.add(at, "choose a name that does not start with \""+ReservedPrefix+"\"",
			"%s name %q starts with %q, which warren reserves for the entities it derives", what, name, ReservedPrefix)
	default:
		return true
	}
	return false
}

func (c *checker) checkExchanges() {
	for _, x := range c.f.exchanges {
		c.checkName("exchange", x.name, x.pos)
		if !x.kind.present() && !x.unsure("type") {
			c.p.add(x.pos, "add type: direct, fanout, topic or headers", "exchange %q has no type", x.name)
		}
		if x.alternate.set {
			c.refExchange(x.alternate.v, x.alternate.pos, "alternate exchange")
		}
	}
}

// refExchange reports a reference to an exchange that is not declared.
func (c *checker) refExchange(name string, at Pos, what string) bool {
	if _, ok := c.exchangeKind(name); ok {
		return true
	}
	if name == "" {
		c.p.add(at, "name an exchange declared under exchanges:", "%s is empty", what)
		return false
	}
	if c.f.broken.exchanges {
		return false // the section is reported; what it declares is unknown
	}
	c.p.add(at, c.missingHint(name, "exchanges", c.exchangeNames()),
		"%s %q is not declared", what, name)
	return false
}

// refQueue reports a reference to a queue that is not declared.
func (c *checker) refQueue(name string, at Pos, what string) bool {
	if _, ok := c.queues[name]; ok {
		return true
	}
	if name == "" {
		c.p.add(at, "name a queue declared under queues:", "%s is empty", what)
		return false
	}
	if c.f.broken.queues {
		return false // the section is reported; what it declares is unknown
	}
	names := make([]string, 0, len(c.queues))
	for _, q := range c.f.queues {
		names = append(names, q.name)
	}
	c.p.add(at, c.missingHint(name, "queues", names), "%s %q is not declared", what, name)
	return false
}

func (c *checker) missingHint(name, section string, declared []string) string {
	if strings.HasPrefix(name, ReservedPrefix) {
		return "names starting with \"" + ReservedPrefix + "\" are warren's own and cannot be used in the file"
	}
	if strings.HasPrefix(name, "amq.") && section == "exchanges" {
		return "the built-in exchanges are amq.direct, amq.fanout, amq.topic, amq.headers and amq.match"
	}
	if h := suggest(name, declared); strings.HasPrefix(h, "did you mean") {
		return h
	}
	return "declare it under " + section + ":"
}

func (c *checker) exchangeNames() []string {
	names := make([]string, 0, len(c.f.exchanges)+len(builtinExchanges))
	for _, x := range c.f.exchanges {
		names = append(names, x.name)
	}
	for name := range builtinExchanges {
		names = append(names, name)
	}
	return names
}

// derivesDeadLetterQueue reports whether warren derives "<q>.dlq" for q.
func derivesDeadLetterQueue(q *queueSpec) bool {
	return q.deadLetter.or(true) && !q.dlx.present()
}

func (c *checker) checkQueues() {
	for _, q := range c.f.queues {
		if c.checkName("queue", q.name, q.pos) {
			c.checkWorkQueueName(q)
		} else {
			q.suspect = true
		}
		if derivesDeadLetterQueue(q) {
			if other, ok := c.queues[DeadLetterQueueName(q.name)]; ok {
				c.p.add(other.pos,
					fmt.Sprintf("rename it, or give queue %q its own dead_letter_exchange (or dead_letter: false)", q.name),
					"queue %q has the name warren derives for the dead letters of queue %q", other.name, q.name)
			}
		}
		if other, ok := c.queues[QuarantineQueueName(q.name)]; ok {
			c.p.add(other.pos, "rename it: warren derives a quarantine queue of that name",
				"queue %q has the name warren derives for the quarantine of queue %q", other.name, q.name)
		}
		c.checkQueueType(q)
		c.checkDeadLetter(q)
		c.checkArguments(q)
		if q.maxPriority.set && q.maxPriority.v > maxPriorityAdvised {
			c.p.warn(q.maxPriority.pos, "RabbitMQ advises at most 10: every priority costs memory and CPU",
				"queue %q has %d priorities", q.name, q.maxPriority.v)
		}
	}
}

// checkWorkQueueName checks what the delay cascade needs of a queue name: it
// goes, as words, at the end of a topic routing key.
func (c *checker) checkWorkQueueName(q *queueSpec) {
	if len(q.name) > maxWorkQueueNameLen {
		q.suspect = true
		c.p.add(q.pos, "the delay routing key carries the name after 56 bytes of delay bits",
			"queue name %q is %d bytes long; a work queue's name may have at most %d", q.name, len(q.name), maxWorkQueueNameLen)
	}
	for _, w := range strings.Split(q.name, ".") {
		if w == "*" || w == "#" {
			q.suspect = true
			c.p.add(q.pos, "rename the queue: its name is matched as topic words by the delay exchanges",
				"queue name %q has a %q word", q.name, w)
			break
		}
	}
}

func (c *checker) checkQueueType(q *queueSpec) {
	if q.typ.bad || (!q.typ.set && c.f.defaults.queueType.bad) {
		return // the type is reported; checking against a guess would mislead
	}
	typ := c.queueType(q)
	other := Classic
	if typ == Classic {
		other = Quorum
	}
	only := func(o Pos, key string) {
		c.p.add(o, fmt.Sprintf("remove %s, or make the queue %s (type: %s)", key, other, other),
			"%s is for %s queues only, and queue %q is %s", key, other, q.name, typ)
	}
	switch typ {
	case Quorum:
		if q.maxPriority.set {
			only(q.maxPriority.pos, "max_priority")
		}
		if q.autoDelete.v {
			only(q.autoDelete.pos, "auto_delete")
		}
		if q.exclusive.v {
			only(q.exclusive.pos, "exclusive")
		}
		if q.durable.set && !q.durable.v {
			only(q.durable.pos, "durable: false")
		}
		if q.overflow.v == "reject-publish-dlx" {
			only(q.overflow.pos, "overflow reject-publish-dlx")
		}
		c.checkDeliveryLimit(q)
		if q.dlStrategy.v == "at-least-once" && q.overflow.v != "reject-publish" {
			c.p.add(q.dlStrategy.pos, "add overflow: reject-publish to the queue",
				"dead_letter_strategy at-least-once needs overflow reject-publish, or RabbitMQ falls back to at-most-once")
		}
	case Classic:
		if q.deliveryLimit.set {
			only(q.deliveryLimit.pos, "delivery_limit")
		}
		if q.dlStrategy.set {
			only(q.dlStrategy.pos, "dead_letter_strategy")
		}
		if q.exclusive.v {
			c.p.warn(q.exclusive.pos, "remove exclusive: workers on other connections cannot consume from it anyway",
				"exclusive queue %q is deleted as soon as the connection that declared it closes", q.name)
		}
	}
}

// checkDeliveryLimit warns about a quorum queue's delivery limit that does
// not do its job: end crash loops, and only them. warren's retries publish
// a new message, so they do not count against it.
func (c *checker) checkDeliveryLimit(q *queueSpec) {
	if !q.deliveryLimit.set {
		return // DefaultDeliveryLimit
	}
	switch v := q.deliveryLimit.v; {
	case v < 0:
		c.p.warn(q.deliveryLimit.pos,
			fmt.Sprintf("remove delivery_limit to get warren's default (%d), or set a limit of your own", DefaultDeliveryLimit),
			"quorum queue %q has no delivery limit: a job that crashes its worker is redelivered forever", q.name)
	case v < minDeliveryLimitAdvised:
		c.p.warn(q.deliveryLimit.pos,
			fmt.Sprintf("set delivery_limit to at least %d (warren's default is %d): it only needs to stop crash loops, as warren's retries do not count against it", minDeliveryLimitAdvised, DefaultDeliveryLimit),
			"delivery_limit %d on quorum queue %q dead-letters jobs that never failed: every graceful worker shutdown returns the jobs it had prefetched, which counts as a delivery", v, q.name)
	}
}

func (c *checker) checkDeadLetter(q *queueSpec) {
	off := q.deadLetter.set && !q.deadLetter.v
	switch {
	case off && q.dlx.set:
		c.p.add(q.dlx.pos, "remove dead_letter: false, or remove dead_letter_exchange",
			"queue %q sets dead_letter_exchange but also dead_letter: false", q.name)
	case q.dlx.set:
		c.refExchange(q.dlx.v, q.dlx.pos, "dead-letter exchange")
	case q.dlrk.set && !q.dlx.present():
		c.p.add(q.dlrk.pos, "name the exchange with dead_letter_exchange, or remove the key: warren routes derived dead letters with the queue's name",
			"dead_letter_routing_key needs dead_letter_exchange")
	}
	if off && q.dlStrategy.set {
		c.p.add(q.dlStrategy.pos, "remove dead_letter_strategy, or remove dead_letter: false",
			"dead_letter_strategy has no effect without a dead-letter target")
	}
	unlimited := q.deliveryLimit.set && q.deliveryLimit.v < 0 // warned about on its own
	if off && !q.dlx.present() && c.queueType(q) == Quorum && !unlimited {
		c.p.warn(q.deadLetter.pos, "remove dead_letter: false, or set dead_letter_exchange",
			"quorum queue %q has no dead-letter target: jobs over its delivery limit (crash loops) are dropped", q.name)
	}
}

func (c *checker) checkArguments(q *queueSpec) {
	for _, a := range q.args {
		if key, ok := typedArguments[a.key]; ok {
			c.p.add(a.pos, "use "+key+": instead",
				"argument %q has a key of its own: %s", a.key, key)
			continue
		}
		if !strings.HasPrefix(a.key, "x-") {
			c.p.add(a.pos, "queue arguments start with \"x-\", e.g. x-queue-leader-locator",
				"argument %q does not start with \"x-\"", a.key)
		}
	}
}

func (c *checker) checkBindings() {
	for i, b := range c.f.bindings {
		what := fmt.Sprintf("binding %d", i+1)
		srcOK := false
		if !b.exchange.present() && !b.unsure("exchange") {
			c.p.add(b.pos, "add exchange: with the exchange to bind from", "%s has no exchange", what)
		} else if b.exchange.set {
			srcOK = c.refExchange(b.exchange.v, b.exchange.pos, "exchange")
		}
		switch {
		case b.queue.present() && b.toExchange.present():
			c.p.add(b.toExchange.pos, "a binding has one destination: split it in two", "%s has both queue and to_exchange", what)
		case b.queue.set:
			c.refQueue(b.queue.v, b.queue.pos, "queue")
		case b.toExchange.set:
			c.refExchange(b.toExchange.v, b.toExchange.pos, "exchange")
		case b.queue.bad || b.toExchange.bad || b.unsure("queue", "to_exchange"):
		default:
			c.p.add(b.pos, "add queue: (or to_exchange:) with the destination", "%s has no queue or to_exchange", what)
		}
		if b.routingKey.present() && b.keys.present() {
			c.p.add(b.keys.pos, "keep one of them", "%s has both routing_key and routing_keys", what)
		}
		seen := map[string]bool{}
		for _, k := range b.routingKeys() {
			if len(k.v) > maxNameLen {
				c.p.add(k.pos, "", "routing key is %d bytes long, RabbitMQ allows at most %d", len(k.v), maxNameLen)
			}
			if seen[k.v] {
				c.p.add(k.pos, "remove it", "routing key %q is listed twice", k.v)
			}
			seen[k.v] = true
		}
		if srcOK && b.args.set {
			c.checkMatch(b)
		}
		// Bindings to undeclared destinations stay in, so that routing
		// checks do not report the same mistake again.
		if srcOK && b.queue.set != b.toExchange.set {
			// A binding whose keys are reported matches any key, for the
			// same reason.
			if b.routingKey.bad || b.keys.bad || b.unsure("routing_key", "routing_keys") {
				c.edges = append(c.edges, edge{src: b.exchange.v, queue: b.queue.v, toExchange: b.toExchange.v, wild: true, pos: b.pos})
			}
			for _, k := range b.routingKeys() {
				c.edges = append(c.edges, edge{src: b.exchange.v, queue: b.queue.v, toExchange: b.toExchange.v, key: k.v, args: b.args.v, pos: b.pos})
			}
		}
	}
}

// checkMatch checks a headers binding's x-match.
func (c *checker) checkMatch(b *bindingSpec) {
	kind, _ := c.exchangeKind(b.exchange.v)
	m, ok := b.args.v["x-match"]
	if kind != KindHeaders || !ok {
		return
	}
	modes := []string{"all", "any", "all-with-x", "any-with-x"}
	if s, isStr := m.(string); !isStr || !slices.Contains(modes, s) {
		c.p.add(b.args.pos, "x-match is all, any, all-with-x or any-with-x", "x-match %s is not a match mode", argText(m))
	}
}

func (c *checker) checkRoutes() {
	for _, r := range c.f.routes {
		switch {
		case r.jobType == "":
			c.p.add(r.pos, "", "job type is empty")
		case len(r.jobType) > maxNameLen:
			c.p.add(r.pos, "", "job type is %d bytes long; the AMQP type property holds at most %d", len(r.jobType), maxNameLen)
		}
		if key := r.key(); len(key) > maxNameLen {
			c.p.add(r.routingKey.at(r.pos), "set a shorter routing_key",
				"routing key is %d bytes long, RabbitMQ allows at most %d", len(key), maxNameLen)
		}
		if !r.exchange.set {
			if r.exchange.bad || r.unsure("exchange") {
				continue
			}
			c.p.add(r.pos, "add exchange: with the exchange producers publish these jobs to",
				"route %q has no exchange", r.jobType)
			continue
		}
		if !c.refExchange(r.exchange.v, r.exchange.pos, "exchange") {
			continue
		}
		if x, ok := c.exchanges[r.exchange.v]; ok && x.internal.v {
			c.p.add(r.exchange.pos, "route the jobs to an exchange that is not internal",
				"exchange %q is internal: producers cannot publish to it", r.exchange.v)
		}
	}
}

// checkRetries checks that every retry policy the file makes has its initial
// interval at most its maximum. Each field was checked on its own when read.
func (c *checker) checkRetries() {
	c.checkInterval(c.f.defaults.retry, c.defaults)
	for _, q := range c.f.queues {
		c.checkInterval(q.retry, q.retry.over(c.defaults))
	}
	for _, r := range c.f.routes {
		if !r.retry.set {
			continue
		}
		queues := c.routeQueues(r)
		if len(queues) == 0 {
			c.checkInterval(r.retry, r.retry.over(c.defaults))
		}
		for _, q := range queues {
			c.checkInterval(r.retry, r.retry.over(q.retry.over(c.defaults)))
		}
	}
}

// checkInterval reports a policy whose initial interval exceeds its maximum,
// at the field r sets; the problem belongs to whoever set one of the two.
func (c *checker) checkInterval(r retrySpec, p RetryPolicy) {
	if p.InitialInterval <= p.MaxInterval || (!r.initial.set && !r.max.set) {
		return
	}
	at := r.initial.at(r.max.pos)
	c.p.add(at, "make initial_interval at most max_interval",
		"initial_interval %s is longer than max_interval %s", fmtDuration(p.InitialInterval), fmtDuration(p.MaxInterval))
}

// routeQueues returns the declared queues jobs of route r land in.
func (c *checker) routeQueues(r *routeSpec) []*queueSpec {
	if !r.exchange.set {
		return nil
	}
	key := r.key()
	var out []*queueSpec
	for _, name := range c.reach(r.exchange.v, &key).queues {
		if q, ok := c.queues[name]; ok {
			out = append(out, q)
		}
	}
	return out
}

// checkReached warns about work queues no binding reaches.
func (c *checker) checkReached() {
	if c.f.broken.bindings {
		return
	}
	bound := map[string]bool{}
	for _, e := range c.edges {
		bound[e.queue] = true
	}
	for _, b := range c.f.bindings {
		bound[b.queue.v] = true // reported already if it does not resolve
	}
	for _, q := range c.f.queues {
		if !bound[q.name] && !q.suspect && !q.replyQueue.v {
			c.p.warn(q.pos, "bind it to an exchange under bindings:, or remove it; a queue that receives replies (named in jobs' reply_to) needs no binding: mark it reply_queue: true",
				"queue %q is not bound to any exchange: no route reaches it", q.name)
		}
	}
}

// argText writes an argument value for a message.
func argText(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}
