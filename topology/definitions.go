package topology

import "maps"

// Definitions is a topology in RabbitMQ's definitions format, the JSON that
// `rabbitmqctl export_definitions` writes and `rabbitmqctl
// import_definitions`, the management API (POST /api/definitions) and the
// load_definitions setting read. Only the exchanges, queues and bindings
// are there: no users, virtual hosts, permissions or policies.
type Definitions struct {
	Exchanges []ExchangeDefinition `json:"exchanges"`
	Queues    []QueueDefinition    `json:"queues"`
	Bindings  []BindingDefinition  `json:"bindings"`
}

// ExchangeDefinition is an exchange in RabbitMQ's definitions format.
type ExchangeDefinition struct {
	Name       string         `json:"name"`
	Vhost      string         `json:"vhost"`
	Type       string         `json:"type"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Internal   bool           `json:"internal"`
	Arguments  map[string]any `json:"arguments"`
}

// QueueDefinition is a queue in RabbitMQ's definitions format. The queue
// type is its "x-queue-type" argument; the format has no exclusive flag.
type QueueDefinition struct {
	Name       string         `json:"name"`
	Vhost      string         `json:"vhost"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Arguments  map[string]any `json:"arguments"`
}

// BindingDefinition is a binding in RabbitMQ's definitions format.
type BindingDefinition struct {
	Source          string         `json:"source"`
	Vhost           string         `json:"vhost"`
	Destination     string         `json:"destination"`
	DestinationType string         `json:"destination_type"` // "queue" or "exchange"
	RoutingKey      string         `json:"routing_key"`
	Arguments       map[string]any `json:"arguments"`
}

// Definitions returns t's exchanges, queues and bindings, derived ones
// included, in the order Declare declares them, as RabbitMQ's definitions
// for the virtual host vhost ("/" when empty). Every Arguments is non-nil,
// so that it encodes as {} as RabbitMQ's own export does.
//
// Exclusive queues are left out, with their bindings, as RabbitMQ's export
// leaves them out: they belong to a connection, and importing one would
// declare a shared queue instead.
func (t *Topology) Definitions(vhost string) Definitions {
	if vhost == "" {
		vhost = "/"
	}
	d := Definitions{
		Exchanges: make([]ExchangeDefinition, 0, len(t.Exchanges)),
		Queues:    make([]QueueDefinition, 0, len(t.Queues)),
		Bindings:  make([]BindingDefinition, 0, len(t.Bindings)),
	}
	for _, x := range t.Exchanges {
		d.Exchanges = append(d.Exchanges, ExchangeDefinition{
			Name:       x.Name,
			Vhost:      vhost,
			Type:       x.Kind,
			Durable:    x.Durable,
			AutoDelete: x.AutoDelete,
			Internal:   x.Internal,
			Arguments:  arguments(x.Args),
		})
	}
	exclusive := map[string]bool{}
	for _, q := range t.Queues {
		if q.Exclusive {
			exclusive[q.Name] = true
			continue
		}
		args := arguments(q.Args)
		if _, ok := args["x-queue-type"]; !ok && q.Type != "" {
			args["x-queue-type"] = q.Type
		}
		d.Queues = append(d.Queues, QueueDefinition{
			Name:       q.Name,
			Vhost:      vhost,
			Durable:    q.Durable,
			AutoDelete: q.AutoDelete,
			Arguments:  args,
		})
	}
	for _, b := range t.Bindings {
		dest, typ := b.Queue, "queue"
		if b.ToExchange != "" {
			dest, typ = b.ToExchange, "exchange"
		} else if exclusive[b.Queue] {
			continue
		}
		d.Bindings = append(d.Bindings, BindingDefinition{
			Source:          b.Exchange,
			Vhost:           vhost,
			Destination:     dest,
			DestinationType: typ,
			RoutingKey:      b.RoutingKey,
			Arguments:       arguments(b.Args),
		})
	}
	return d
}

// arguments copies a Table into a non-nil map.
func arguments(t Table) map[string]any {
	out := make(map[string]any, len(t))
	maps.Copy(out, t)
	return out
}
