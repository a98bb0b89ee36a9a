package topology

import (
	"fmt"
	"slices"
	"strings"
)

// Routing checks: where would a message go? RabbitMQ answers only at run
// time, by returning or dropping it; these answer from the file.

// edge is one binding of the file, with one routing key.
type edge struct {
	src        string
	queue      string
	toExchange string
	key        string
	wild       bool // matches any key
	args       Table
	pos        Pos
}

// edgeIndex finds the edges that may match a routing key without trying
// every edge of the source exchange: a file with tens of thousands of
// bindings and routes on one exchange would take minutes otherwise. Each
// map is by source exchange; the edges are indexes into checker.edges, in
// file order.
type edgeIndex struct {
	all map[string][]int
	// exact holds, by key, the edges that match that key and no other:
	// direct bindings, and topic bindings without a "*" or "#" word.
	exact map[string]map[string][]int
	// prefixed holds the other topic bindings by their words before the
	// first "*" or "#" (see wordsPrefix): they match only keys that start
	// with those words.
	prefixed map[string]map[string][]int
	// loose holds the rest.
	loose map[string][]int
}

// index builds c.byEdge from c.edges; checkBindings fills c.edges.
func (c *checker) index() {
	x := edgeIndex{all: map[string][]int{}, exact: map[string]map[string][]int{},
		prefixed: map[string]map[string][]int{}, loose: map[string][]int{}}
	add := func(m map[string]map[string][]int, src, key string, i int) {
		if m[src] == nil {
			m[src] = map[string][]int{}
		}
		m[src][key] = append(m[src][key], i)
	}
	for i, e := range c.edges {
		x.all[e.src] = append(x.all[e.src], i)
		kind, _ := c.exchangeKind(e.src)
		switch {
		case e.wild || (kind != KindDirect && kind != KindTopic):
			x.loose[e.src] = append(x.loose[e.src], i)
		case kind == KindDirect:
			add(x.exact, e.src, e.key, i)
		default:
			words := topicWords(e.key)
			wild := slices.IndexFunc(words, func(w string) bool { return w == "*" || w == "#" })
			if wild < 0 {
				add(x.exact, e.src, e.key, i)
			} else {
				add(x.prefixed, e.src, wordsPrefix(words[:wild]), i)
			}
		}
	}
	c.byEdge = x
}

// wordsPrefix writes the first words of a key so that each prefix of a key
// has its own string: "" for none, and each word followed by a dot.
func wordsPrefix(words []string) string {
	if len(words) == 0 {
		return ""
	}
	return strings.Join(words, ".") + "."
}

// candidates returns, in file order, the edges from exchange src that may
// match routing key *key (any key when nil).
func (c *checker) candidates(src string, key *string) []int {
	if key == nil {
		return c.byEdge.all[src]
	}
	lists := [][]int{c.byEdge.exact[src][*key], c.byEdge.loose[src]}
	if byPrefix := c.byEdge.prefixed[src]; len(byPrefix) > 0 {
		words := topicWords(*key)
		for n := 0; n <= len(words); n++ {
			lists = append(lists, byPrefix[wordsPrefix(words[:n])])
		}
	}
	var out []int
	nonEmpty := 0
	for _, l := range lists {
		if len(l) > 0 {
			out = append(out, l...)
			nonEmpty++
		}
	}
	if nonEmpty > 1 {
		slices.Sort(out)
	}
	return out
}

// reached is where messages published to an exchange can land.
type reached struct {
	queues []string // in the order found
	// direct is set when a queue is reached without an alternate exchange.
	direct bool
	// unknown is set when the path leads to something the file does not
	// declare (reported elsewhere), so nothing can be said.
	unknown bool
}

func (r reached) any() bool { return len(r.queues) > 0 || r.unknown }

// reach follows the file's bindings from exchange start for a message with
// routing key *key, or for any key when key is nil, through exchange-to-
// exchange bindings and alternate exchanges. Headers exchanges match any
// binding: the headers are not known in advance.
func (c *checker) reach(start string, key *string) reached {
	var r reached
	seenQueue := map[string]bool{}
	seenExchange := map[string]bool{}
	var visit func(x string, viaAlternate bool)
	visit = func(x string, viaAlternate bool) {
		if seenExchange[x] {
			return
		}
		seenExchange[x] = true
		kind, ok := c.exchangeKind(x)
		if !ok || kind == "" {
			r.unknown = true
			return
		}
		if spec, declared := c.exchanges[x]; declared && (spec.alternate.bad || spec.unsure("alternate_exchange")) {
			r.unknown = true
		}
		matched := false
		for _, i := range c.candidates(x, key) {
			e := c.edges[i]
			if !(e.wild || bindingMatches(kind, e.key, key)) {
				continue
			}
			matched = true
			if e.toExchange != "" {
				visit(e.toExchange, viaAlternate)
				continue
			}
			if _, declared := c.queues[e.queue]; !declared {
				r.unknown = true
				continue
			}
			r.direct = r.direct || !viaAlternate
			if !seenQueue[e.queue] {
				seenQueue[e.queue] = true
				r.queues = append(r.queues, e.queue)
			}
		}
		// RabbitMQ hands a message to the alternate exchange when no
		// binding matches; for any key, some key may match none.
		if ae := c.alternateOf(x); ae != "" && (!matched || key == nil) {
			visit(ae, true)
		}
	}
	visit(start, false)
	return r
}

func (c *checker) alternateOf(exchange string) string {
	if x, ok := c.exchanges[exchange]; ok && x.alternate.set {
		return x.alternate.v
	}
	return ""
}

// bindingMatches reports whether a binding with bindingKey on an exchange of
// kind routes a message with routing key *key (any key when nil).
func bindingMatches(kind, bindingKey string, key *string) bool {
	if key == nil {
		return true
	}
	switch kind {
	case KindFanout, KindHeaders:
		return true
	case KindTopic:
		return topicMatch(bindingKey, *key)
	default:
		return bindingKey == *key
	}
}

// topicMatch reports whether a topic exchange's binding pattern matches
// routing key, as RabbitMQ does: words are separated by dots, "*" stands for
// exactly one word and "#" for zero or more. The empty key has no words.
func topicMatch(pattern, key string) bool {
	p, k := topicWords(pattern), topicWords(key)
	// match[j] says whether p[i:] matches k[j:], computed for i from the end.
	match := make([]bool, len(k)+1)
	match[len(k)] = true
	for i := len(p) - 1; i >= 0; i-- {
		next := match
		match = make([]bool, len(k)+1)
		for j := len(k); j >= 0; j-- {
			switch {
			case p[i] == "#":
				match[j] = next[j] || (j < len(k) && match[j+1])
			case j < len(k) && (p[i] == "*" || p[i] == k[j]):
				match[j] = next[j+1]
			}
		}
	}
	return match[0]
}

func topicWords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ".")
}

// checkRouting reports routes whose jobs no binding would route.
func (c *checker) checkRouting() {
	if c.f.broken.bindings || c.f.broken.exchanges {
		return
	}
	for _, r := range c.f.routes {
		if !r.exchange.set || r.routingKey.bad || r.unsure("routing_key") {
			continue
		}
		kind, ok := c.exchangeKind(r.exchange.v)
		if !ok || kind == "" {
			continue // reported
		}
		key := r.key()
		res := c.reach(r.exchange.v, &key)
		at := r.routingKey.at(r.pos)
		switch {
		case !res.any():
			c.p.add(at, unroutableHint(kind, r.exchange.v, key),
				"jobs of type %q would be returned as unroutable: routing key %q reaches no queue from exchange %q",
				r.jobType, key, r.exchange.v)
		case !res.direct && !res.unknown:
			c.p.warn(at, unroutableHint(kind, r.exchange.v, key),
				"jobs of type %q match no binding of exchange %q and all go to its alternate exchange",
				r.jobType, r.exchange.v)
		}
	}
}

func unroutableHint(kind, exchange, key string) string {
	switch kind {
	case KindTopic:
		return fmt.Sprintf("bind a queue to %q with a binding key that matches %q, or change the route's routing_key", exchange, key)
	case KindFanout, KindHeaders:
		return fmt.Sprintf("bind a queue to %q", exchange)
	default:
		return fmt.Sprintf("bind a queue to %q with routing_key: %s, or change the route's routing_key", exchange, key)
	}
}

// deadLetterTargets returns the declared queues a queue's dead letters land
// in through an explicit dead-letter exchange. Derived dead-letter queues
// have no dead-letter exchange of their own, so they end every path.
func (c *checker) deadLetterTargets(q *queueSpec) []string {
	if !q.dlx.set || (q.deadLetter.set && !q.deadLetter.v) {
		return nil
	}
	var key *string
	if q.dlrk.set {
		key = &q.dlrk.v
	}
	return c.reach(q.dlx.v, key).queues
}

// checkDeadLetterCycles reports queues whose dead letters come back to them,
// once for each set of queues that dead-letter into each other.
func (c *checker) checkDeadLetterCycles() {
	if c.f.broken.bindings || c.f.broken.exchanges || c.f.broken.queues {
		return
	}
	inReported := map[string]bool{}
	for _, q := range c.f.queues {
		if inReported[q.name] || !q.dlx.set {
			continue
		}
		path := c.cycleFrom(q)
		if path == nil {
			continue
		}
		from := c.deadLetterReach(q.name)
		for name := range from {
			if c.deadLetterReach(name)[q.name] {
				inReported[name] = true
			}
		}
		c.p.add(q.dlx.pos, "point dead_letter_exchange at an exchange that leads to a queue outside the cycle",
			"dead letters of queue %q come back to it (%s): RabbitMQ drops them or they loop forever",
			q.name, strings.Join(path, " -> "))
	}
}

// deadLetterReach returns the queues that dead letters of queue start reach,
// through any number of queues.
func (c *checker) deadLetterReach(start string) map[string]bool {
	seen := map[string]bool{}
	frontier := []string{start}
	for len(frontier) > 0 {
		name := frontier[len(frontier)-1]
		frontier = frontier[:len(frontier)-1]
		q, ok := c.queues[name]
		if !ok {
			continue
		}
		for _, t := range c.deadLetterTargets(q) {
			if !seen[t] {
				seen[t] = true
				frontier = append(frontier, t)
			}
		}
	}
	return seen
}

// cycleFrom returns a shortest path of queue names from start back to start
// through dead-lettering, or nil.
func (c *checker) cycleFrom(start *queueSpec) []string {
	parent := map[string]string{}
	frontier := []string{start.name}
	for len(frontier) > 0 {
		var next []string
		for _, name := range frontier {
			q, ok := c.queues[name]
			if !ok {
				continue
			}
			for _, t := range c.deadLetterTargets(q) {
				if t == start.name {
					path := []string{t}
					for at := name; at != start.name; at = parent[at] {
						path = append(path, at)
					}
					path = append(path, start.name)
					for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
						path[i], path[j] = path[j], path[i]
					}
					return path
				}
				if _, seen := parent[t]; !seen {
					parent[t] = name
					next = append(next, t)
				}
			}
		}
		frontier = next
	}
	return nil
}
