package topology

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Kinds of entity, in Declaration.Kind and ConflictError.Kind.
const (
	EntityExchange = "exchange"
	EntityQueue    = "queue"
	EntityBinding  = "binding"
)

// Declaration is what declaring one entity did.
type Declaration struct {
	Kind    string // EntityExchange, EntityQueue or EntityBinding
	Name    string // for a binding, its source, destination and key
	Derived bool
	// Created is set for an exchange or queue that did not exist before,
	// Existed for one that did. A binding sets neither: declaring one is
	// idempotent, and the broker does not say whether it existed.
	Created bool
	Existed bool
	// Err is why the entity could not be declared; nil on success.
	Err error
	// Warning is set for an entity that exists and works, but not as this
	// version of warren would declare it; it says what to do.
	Warning string
}

// Status returns "created", "existed", "bound" or "failed".
func (o Declaration) Status() string {
	switch {
	case o.Err != nil:
		return "failed"
	case o.Created:
		return "created"
	case o.Existed:
		return "existed"
	default:
		return "bound"
	}
}

// Report lists each declaration, in the order made.
type Report struct {
	Entries []Declaration
}

// Failed returns the entries that failed.
func (r *Report) Failed() []Declaration {
	var out []Declaration
	for _, o := range r.Entries {
		if o.Err != nil {
			out = append(out, o)
		}
	}
	return out
}

// String summarizes the report in a few lines, one per kind of entity, e.g.
//
//	exchanges: 2 created, 29 existed
//	queues:    3 created, 29 existed, 1 failed
//	bindings:  62 bound
func (r *Report) String() string {
	type counts struct{ created, existed, bound, failed int }
	var order = []string{EntityExchange, EntityQueue, EntityBinding}
	byKind := map[string]*counts{}
	for _, k := range order {
		byKind[k] = &counts{}
	}
	for _, o := range r.Entries {
		c, ok := byKind[o.Kind]
		if !ok {
			continue
		}
		switch o.Status() {
		case "failed":
			c.failed++
		case "created":
			c.created++
		case "existed":
			c.existed++
		default:
			c.bound++
		}
	}
	var b strings.Builder
	for _, k := range order {
		c := byKind[k]
		var parts []string
		add := func(n int, what string, always bool) {
			if n > 0 || always {
				parts = append(parts, fmt.Sprintf("%d %s", n, what))
			}
		}
		if k == EntityBinding {
			add(c.bound, "bound", true)
		} else {
			add(c.created, "created", true)
			add(c.existed, "existed", true)
		}
		add(c.failed, "failed", false)
		fmt.Fprintf(&b, "%-10s %s\n", k+"s:", strings.Join(parts, ", "))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Declare declares t's exchanges, then its queues, then its bindings, each
// checked first so that the report says whether it was created. It goes on
// past an entity that fails, so that one run shows every conflict, and
// returns the report with all the errors joined (errors.Join). It stops
// early only when ctx ends; a declaration already sent cannot be cancelled.
func Declare(ctx context.Context, d Declarer, t *Topology) (*Report, error) {
	r := &Report{}
	var errs []error
	record := func(o Declaration) {
		r.Entries = append(r.Entries, o)
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
	}
	for _, x := range t.Exchanges {
		if err := ctx.Err(); err != nil {
			return r, errors.Join(append(errs, err)...)
		}
		record(declareOne(EntityExchange, x.Name, x.Derived,
			func() (bool, error) { return d.ExchangeExists(ctx, x.Name) },
			func() error { return d.DeclareExchange(ctx, x) }))
	}
	for _, q := range t.Queues {
		if err := ctx.Err(); err != nil {
			return r, errors.Join(append(errs, err)...)
		}
		o := declareOne(EntityQueue, q.Name, q.Derived,
			func() (bool, error) { return d.QueueExists(ctx, q.Name) },
			func() error { return d.DeclareQueue(ctx, q) })
		olderDeliveryLimit(&o, q)
		record(o)
	}
	for _, b := range t.Bindings {
		if err := ctx.Err(); err != nil {
			return r, errors.Join(append(errs, err)...)
		}
		record(Declaration{Kind: EntityBinding, Name: BindingName(b), Derived: b.Derived, Err: d.Bind(ctx, b)})
	}
	return r, errors.Join(errs...)
}

func declareOne(kind, name string, derived bool, exists func() (bool, error), declare func() error) Declaration {
	o := Declaration{Kind: kind, Name: name, Derived: derived}
	existed, err := exists()
	if err != nil {
		o.Err = err
		return o
	}
	o.Err = declare()
	o.Existed = existed
	o.Created = !existed && o.Err == nil
	return o
}

// olderDeliveryLimit turns into a warning the one conflict an earlier
// warren's topology makes with this one: a derived quorum queue (a .dlq or
// .quarantine) declared without the x-delivery-limit it now has. The queue
// works, and holds jobs, so it is not to be recreated by surprise; but on
// RabbitMQ 4 it has the broker's default limit of 20, and a job read or
// returned that often is dropped.
func olderDeliveryLimit(o *Declaration, q Queue) {
	var ce *ConflictError
	if !o.Existed || !q.Derived || !errors.As(o.Err, &ce) || ce.Argument != "x-delivery-limit" {
		return
	}
	o.Err = nil
	o.Warning = fmt.Sprintf("queue %q was declared by an earlier warren without x-delivery-limit %v; "+
		"on RabbitMQ 4 it has the broker's default limit (20), and drops a job returned that often (reading a dead-letter queue returns its jobs): "+
		"on RabbitMQ 4 set a policy with delivery-limit -1 for it, or move its jobs out, delete it and apply again",
		q.Name, q.Args["x-delivery-limit"])
}

// BindingName describes a binding for reports and messages, e.g.
// `jobs -> queue emails (key "email.send")`.
func BindingName(b Binding) string {
	dest := "queue " + b.Queue
	if b.ToExchange != "" {
		dest = "exchange " + b.ToExchange
	}
	return fmt.Sprintf("%s -> %s (key %q)", b.Exchange, dest, b.RoutingKey)
}
