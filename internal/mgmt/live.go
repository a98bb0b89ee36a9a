package mgmt

import (
	"context"
	"encoding/json"
	"math"

	"github.com/warrenmq/warren/topology"
)

// Live fetches the virtual host's exchanges, queues, bindings and the
// policies in effect on its queues, and returns them as topology types, for
// topology.Plan. The requests are not one snapshot: an entity declared or
// deleted between them may show in one list and not another.
func (c *Client) Live(ctx context.Context) (topology.Live, error) {
	var live topology.Live
	xs, err := c.Exchanges(ctx)
	if err != nil {
		return live, err
	}
	qs, err := c.Queues(ctx)
	if err != nil {
		return live, err
	}
	bs, err := c.Bindings(ctx)
	if err != nil {
		return live, err
	}
	if live.Policies, err = c.QueuePolicies(ctx); err != nil {
		return live, err
	}
	for _, x := range xs {
		live.Exchanges = append(live.Exchanges, x.Topology())
	}
	for _, q := range qs {
		live.Queues = append(live.Queues, q.Topology())
	}
	for _, b := range bs {
		live.Bindings = append(live.Bindings, b.Topology())
	}
	return live, nil
}

// Topology returns the exchange as a topology.Exchange.
func (x Exchange) Topology() topology.Exchange {
	return topology.Exchange{
		Name:       x.Name,
		Kind:       x.Type,
		Durable:    x.Durable,
		AutoDelete: x.AutoDelete,
		Internal:   x.Internal,
		Args:       topology.Table(x.Arguments),
	}
}

// Topology returns the queue as a topology.Queue, its Type from the API's
// "type" (from its x-queue-type argument, else classic, on brokers that do
// not report one).
func (q Queue) Topology() topology.Queue {
	typ := q.Type
	if typ == "" {
		typ = topology.Classic
		if s, ok := q.Arguments["x-queue-type"].(string); ok && s != "" {
			typ = s
		}
	}
	return topology.Queue{
		Name:       q.Name,
		Type:       typ,
		Durable:    q.Durable,
		AutoDelete: q.AutoDelete,
		Exclusive:  q.Exclusive,
		Args:       topology.Table(q.Arguments),
	}
}

// Topology returns the binding as a topology.Binding.
func (b Binding) Topology() topology.Binding {
	tb := topology.Binding{Exchange: b.Source, RoutingKey: b.RoutingKey, Args: topology.Table(b.Arguments)}
	if b.DestinationType == "exchange" {
		tb.ToExchange = b.Destination
	} else {
		tb.Queue = b.Destination
	}
	return tb
}

// normalizeTable turns the JSON numbers of an arguments table into the
// types of topology.Table: int64 for integers, float64 for the rest; a nil
// table stays nil.
func normalizeTable(t map[string]any) map[string]any {
	for k, v := range t {
		t[k] = normalize(v)
	}
	return t
}

func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) {
			return x.String()
		}
		return f
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	case map[string]any:
		return normalizeTable(x)
	default:
		return v
	}
}
