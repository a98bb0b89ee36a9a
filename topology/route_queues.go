package topology

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoRoute is returned, wrapped, by QueuesFor for a job type the topology
// has no route for.
var ErrNoRoute = errors.New("topology: no route")

// QueuesFor returns the work queues a job of type jobType reaches when it is
// published as its route says, routed as RabbitMQ would route it: direct
// exchanges by exact key, topic exchanges by pattern ("*" one word, "#" zero
// or more), fanout exchanges to every binding, through exchange-to-exchange
// bindings, and to an exchange's alternate exchange when none of its
// bindings matches. Each queue appears once, in the order its binding is
// found. Queues warren derives are never returned.
//
// It is how a scheduled job, which the delay cascade delivers to queues by
// name, finds the queues its route leads to.
//
// An unknown job type returns an error wrapping ErrNoRoute. A route through
// a headers exchange returns an error: where the job goes depends on its
// headers, so it must be scheduled with an explicit queue. A route that
// reaches no queue returns no queue and no error; Parse reports such a route
// as a problem, so only a Topology built by hand has one.
func (t *Topology) QueuesFor(jobType string) (queues []string, err error) {
	r, ok := t.Routes[jobType]
	if !ok {
		return nil, fmt.Errorf("%w for job type %q; add it under routes: in the topology file", ErrNoRoute, jobType)
	}
	key := r.RoutingKey
	seenQueue := map[string]bool{}
	seenExchange := map[string]bool{}
	var visit func(exchange string) error
	visit = func(exchange string) error {
		if seenExchange[exchange] {
			return nil // RabbitMQ visits each exchange once per message
		}
		seenExchange[exchange] = true
		kind, args, ok := t.exchangeOf(exchange)
		if !ok {
			return fmt.Errorf("topology: jobs of type %q lead to exchange %q, which the topology does not declare; declare it under exchanges:", jobType, exchange)
		}
		if kind == KindHeaders {
			return fmt.Errorf("topology: jobs of type %q go through headers exchange %q, which routes on each message's headers: the queues cannot be known without them; name the queue explicitly", jobType, exchange)
		}
		matched := false
		for _, b := range t.Bindings {
			if b.Exchange != exchange || !bindingMatches(kind, b.RoutingKey, &key) {
				continue
			}
			matched = true
			if b.ToExchange != "" {
				if err := visit(b.ToExchange); err != nil {
					return err
				}
				continue
			}
			if b.Derived || strings.HasPrefix(b.Queue, ReservedPrefix) || seenQueue[b.Queue] {
				continue
			}
			if q, ok := t.Queue(b.Queue); ok && q.Derived {
				continue
			}
			seenQueue[b.Queue] = true
			queues = append(queues, b.Queue)
		}
		// RabbitMQ hands a message to an exchange's alternate exchange
		// when none of its bindings matches.
		if ae, isString := args["alternate-exchange"].(string); isString && ae != "" && !matched {
			return visit(ae)
		}
		return nil
	}
	if err := visit(r.Exchange); err != nil {
		return nil, err
	}
	return queues, nil
}

// exchangeOf returns the kind and arguments of a declared or built-in
// exchange.
func (t *Topology) exchangeOf(name string) (kind string, args Table, ok bool) {
	if x, ok := t.Exchange(name); ok {
		return x.Kind, x.Args, true
	}
	kind, ok = builtinExchanges[name]
	return kind, nil, ok
}
