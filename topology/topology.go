package topology

import (
	"slices"
	"time"
)

// Topology is a resolved topology file: what to declare, in order, with the
// entities warren derives for dead letters and delays, and where each job
// type is published.
type Topology struct {
	// Exchanges, Queues and Bindings are in the order to declare them: the
	// file's, in file order, then the derived ones.
	Exchanges []Exchange
	Queues    []Queue
	Bindings  []Binding
	// Routes maps each job type to where producers publish it.
	Routes map[string]Route
	// DefaultRetry is the file's defaults.retry over DefaultRetryPolicy.
	DefaultRetry RetryPolicy
	// Schedules are the periodic jobs the file declares, in file order,
	// each with its target resolved (see package scheduler).
	Schedules []Schedule
	// Warnings are problems that did not stop the file from loading.
	Warnings Problems

	// overrides holds each route's retry block, merged field by field over
	// the policy of the queue the job lands in.
	overrides map[string]retrySpec
}

// Route says where producers publish jobs of one type.
type Route struct {
	JobType    string
	Exchange   string
	RoutingKey string // the job type unless the file says otherwise
	// Retry is the route's retry block over the file's defaults; nil when
	// the route has none. The fields the route sets also win over a queue's
	// own retry block: Topology.RetryPolicy gives the policy for jobs of this
	// type in a given queue.
	Retry *RetryPolicy
	Pos   Pos
}

// DefaultRetryPolicy returns the retry policy of a file that sets none: five
// attempts in all, 1s doubling up to 1h, with 20% jitter.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:     5,
		InitialInterval: time.Second,
		MaxInterval:     time.Hour,
		Multiplier:      2,
		Jitter:          0.2,
	}
}

// Route returns the exchange and routing key jobs of a type are published
// with.
func (t *Topology) Route(jobType string) (exchange, routingKey string, ok bool) {
	r, ok := t.Routes[jobType]
	return r.Exchange, r.RoutingKey, ok
}

// JobTypes returns the routed job types, sorted.
func (t *Topology) JobTypes() []string {
	types := make([]string, 0, len(t.Routes))
	for jt := range t.Routes {
		types = append(types, jt)
	}
	slices.Sort(types)
	return types
}

// Queue returns the queue with the given name, derived or not.
func (t *Topology) Queue(name string) (Queue, bool) {
	i := slices.IndexFunc(t.Queues, func(q Queue) bool { return q.Name == name })
	if i < 0 {
		return Queue{}, false
	}
	return t.Queues[i], true
}

// Exchange returns the exchange with the given name, derived or not.
func (t *Topology) Exchange(name string) (Exchange, bool) {
	i := slices.IndexFunc(t.Exchanges, func(x Exchange) bool { return x.Name == name })
	if i < 0 {
		return Exchange{}, false
	}
	return t.Exchanges[i], true
}

// WorkQueues returns the queues the file declares, which workers consume
// from, in file order.
func (t *Topology) WorkQueues() []Queue {
	var out []Queue
	for _, q := range t.Queues {
		if !q.Derived {
			out = append(out, q)
		}
	}
	return out
}

// RetryPolicy returns the retry policy for jobs of a type in a queue: the
// route's retry block over the queue's over the file's defaults, field by
// field. An unknown queue or job type contributes nothing.
func (t *Topology) RetryPolicy(queue, jobType string) RetryPolicy {
	p := t.DefaultRetry
	if p == (RetryPolicy{}) {
		p = DefaultRetryPolicy()
	}
	if q, ok := t.Queue(queue); ok && q.Retry != nil {
		p = *q.Retry
	}
	if o, ok := t.overrides[jobType]; ok {
		p = o.over(p)
	}
	return p
}
