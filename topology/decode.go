package topology

import (
	"fmt"
	"math"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// decode reads the topology file's sections into a fileSpec, reporting every
// problem with the shape of the file: unknown and duplicate keys, wrong value
// types, invalid enum values and out-of-range numbers. Checks that relate
// one entry to another are in validate.go.

// The values the file's enums may take.
var (
	queueTypes         = []string{Classic, Quorum}
	exchangeKinds      = []string{KindDirect, KindFanout, KindTopic, KindHeaders}
	overflowModes      = []string{"drop-head", "reject-publish", "reject-publish-dlx"}
	deadLetterStrategy = []string{"at-most-once", "at-least-once"}
)

// maxDelaySeconds is the longest delay the cascade holds, in seconds.
const maxDelaySeconds = 1<<DelayLevels - 1

func decodeFile(d *decoder, root *yaml.Node) *fileSpec {
	f := &fileSpec{}
	if root == nil {
		return f
	}
	d.object(root, "the topology file", fields{
		// Extension keys hold YAML anchors for use elsewhere, as in
		// Docker Compose files; they are checked where they are used.
		extensionKeys: func(_, _ *yaml.Node) {},
		"version": func(_, v *yaml.Node) {
			f.version = d.integer("version", v, math.MinInt64, math.MaxInt64)
			if f.version.set && f.version.v != 1 {
				d.p.add(f.version.pos, "this warren reads version 1; upgrade warren or write version: 1",
					"unknown topology file version %d", f.version.v)
			}
		},
		"defaults": func(_, v *yaml.Node) {
			d.object(v, "defaults", fields{
				"queue_type": func(_, v *yaml.Node) { f.defaults.queueType = d.enum("queue_type", v, queueTypes...) },
				"retry":      func(k, v *yaml.Node) { f.defaults.retry = decodeRetry(d, k, v) },
			})
		},
		"delay": func(_, v *yaml.Node) {
			d.object(v, "delay", fields{
				"queue_type": func(_, v *yaml.Node) { f.delayType = d.enum("queue_type", v, queueTypes...) },
			})
		},
		"exchanges": func(_, v *yaml.Node) {
			f.broken.exchanges = !d.names(v, "exchanges", func(name string, k, v *yaml.Node) {
				if d.counted(k) {
					f.exchanges = append(f.exchanges, decodeExchange(d, name, k, v))
				}
			})
		},
		"queues": func(_, v *yaml.Node) {
			f.broken.queues = !d.names(v, "queues", func(name string, k, v *yaml.Node) {
				if d.counted(k) {
					f.queues = append(f.queues, decodeQueue(d, name, k, v))
				}
			})
		},
		"bindings": func(_, v *yaml.Node) {
			items, ok := d.list(v, "bindings")
			f.broken.bindings = !ok
			for i, item := range items {
				if d.counted(item) {
					f.bindings = append(f.bindings, decodeBinding(d, i+1, item))
				}
			}
		},
		"routes": func(_, v *yaml.Node) {
			f.broken.routes = !d.names(v, "routes", func(name string, k, v *yaml.Node) {
				if d.counted(k) {
					f.routes = append(f.routes, decodeRoute(d, name, k, v))
				}
			})
		},
		// Contracts (package contract) are read by the contract package;
		// the topology checks only that the section has its keys.
		"contracts": func(_, v *yaml.Node) {
			d.object(v, "contracts", fields{
				"include": func(_, _ *yaml.Node) {},
				"types":   func(_, _ *yaml.Node) {},
			})
		},
		"schedules": func(_, v *yaml.Node) {
			f.broken.schedules = !d.names(v, "schedules", func(name string, k, v *yaml.Node) {
				if d.counted(k) {
					f.schedules = append(f.schedules, decodeSchedule(d, name, k, v))
				}
			})
		},
	})
	if d.entities > MaxEntities {
		// What the file declares is not all known: leave the checks
		// that relate entries to each other alone.
		f.broken.exchanges, f.broken.queues, f.broken.bindings, f.broken.routes = true, true, true, true
	}
	return f
}

// counted counts an entry of a section against MaxEntities, reporting the
// first one past it; entries past it are not decoded.
func (d *decoder) counted(at *yaml.Node) bool {
	d.entities++
	if d.entities == MaxEntities+1 {
		d.p.add(d.pos(at), splitHint,
			"the file declares more than %d exchanges, queues, bindings and routes in all (topology.MaxEntities)", MaxEntities)
	}
	return d.entities <= MaxEntities
}

// The keys of each kind of entry, with the functions that read their
// values into the entry. See objectOf.
type (
	retryField    func(d *decoder, r *retrySpec, key, val *yaml.Node)
	exchangeField func(d *decoder, x *exchangeSpec, key, val *yaml.Node)
	queueField    func(d *decoder, q *queueSpec, key, val *yaml.Node)
	bindingField  func(d *decoder, b *bindingSpec, key, val *yaml.Node)
	routeField    func(d *decoder, r *routeSpec, key, val *yaml.Node)
)

var retryFields = map[string]retryField{
	"max_attempts": func(d *decoder, r *retrySpec, _, v *yaml.Node) {
		r.maxAttempts = d.integer("max_attempts", v, 1, math.MaxInt32)
	},
	"initial_interval": func(d *decoder, r *retrySpec, _, v *yaml.Node) { r.initial = d.interval("initial_interval", v) },
	"max_interval":     func(d *decoder, r *retrySpec, _, v *yaml.Node) { r.max = d.interval("max_interval", v) },
	"multiplier": func(d *decoder, r *retrySpec, _, v *yaml.Node) {
		r.multiplier = d.number("multiplier", v, 1, math.MaxFloat64)
	},
	"jitter": func(d *decoder, r *retrySpec, _, v *yaml.Node) { r.jitter = d.number("jitter", v, 0, 1) },
}

func decodeRetry(d *decoder, k, v *yaml.Node) retrySpec {
	r := retrySpec{set: true, pos: d.pos(k)}
	objectOf(d, v, "retry", retryFields, func(f retryField, k, v *yaml.Node) { f(d, &r, k, v) })
	return r
}

// interval reads a retry interval: a duration the delay cascade can hold.
func (d *decoder) interval(key string, v *yaml.Node) opt[time.Duration] {
	o := d.duration(key, v)
	switch {
	case !o.set:
	case o.v <= 0:
		d.p.add(o.pos, "", "%s must be longer than 0", key)
		o = bad[time.Duration](o.pos)
	case o.v > maxDelaySeconds*time.Second:
		d.p.add(o.pos, "warren holds delays up to 2^28-1 seconds (about 8.5 years)",
			"%s %s is longer than the longest delay, %s", key, v.Value, fmtDuration(maxDelaySeconds*time.Second))
		o = bad[time.Duration](o.pos)
	}
	return o
}

var exchangeFields = map[string]exchangeField{
	"type":        func(d *decoder, x *exchangeSpec, _, v *yaml.Node) { x.kind = d.enum("type", v, exchangeKinds...) },
	"durable":     func(d *decoder, x *exchangeSpec, _, v *yaml.Node) { x.durable = d.boolean("durable", v) },
	"auto_delete": func(d *decoder, x *exchangeSpec, _, v *yaml.Node) { x.autoDelete = d.boolean("auto_delete", v) },
	"internal":    func(d *decoder, x *exchangeSpec, _, v *yaml.Node) { x.internal = d.boolean("internal", v) },
	"alternate_exchange": func(d *decoder, x *exchangeSpec, _, v *yaml.Node) {
		x.alternate = d.str("alternate_exchange", v)
	},
}

func decodeExchange(d *decoder, name string, k, v *yaml.Node) *exchangeSpec {
	x := &exchangeSpec{name: name, pos: d.pos(k)}
	x.entry = d.entry(func() bool {
		return objectOf(d, v, fmt.Sprintf("exchange %q", name), exchangeFields,
			func(f exchangeField, k, v *yaml.Node) { f(d, x, k, v) })
	})
	return x
}

var queueFields = map[string]queueField{
	"type":        func(d *decoder, q *queueSpec, _, v *yaml.Node) { q.typ = d.enum("type", v, queueTypes...) },
	"durable":     func(d *decoder, q *queueSpec, _, v *yaml.Node) { q.durable = d.boolean("durable", v) },
	"auto_delete": func(d *decoder, q *queueSpec, _, v *yaml.Node) { q.autoDelete = d.boolean("auto_delete", v) },
	"exclusive":   func(d *decoder, q *queueSpec, _, v *yaml.Node) { q.exclusive = d.boolean("exclusive", v) },
	"reply_queue": func(d *decoder, q *queueSpec, _, v *yaml.Node) { q.replyQueue = d.boolean("reply_queue", v) },
	"dead_letter": func(d *decoder, q *queueSpec, _, v *yaml.Node) { q.deadLetter = d.boolean("dead_letter", v) },
	"dead_letter_exchange": func(d *decoder, q *queueSpec, _, v *yaml.Node) {
		q.dlx = d.str("dead_letter_exchange", v)
	},
	"dead_letter_routing_key": func(d *decoder, q *queueSpec, _, v *yaml.Node) {
		q.dlrk = d.str("dead_letter_routing_key", v)
	},
	"dead_letter_strategy": func(d *decoder, q *queueSpec, _, v *yaml.Node) {
		q.dlStrategy = d.enum("dead_letter_strategy", v, deadLetterStrategy...)
	},
	"message_ttl": func(d *decoder, q *queueSpec, _, v *yaml.Node) { q.messageTTL = d.millis("message_ttl", v, 0) },
	"expires":     func(d *decoder, q *queueSpec, _, v *yaml.Node) { q.expires = d.millis("expires", v, 1) },
	"max_length": func(d *decoder, q *queueSpec, _, v *yaml.Node) {
		q.maxLength = d.integer("max_length", v, 0, math.MaxInt64)
	},
	"max_length_bytes": func(d *decoder, q *queueSpec, _, v *yaml.Node) {
		q.maxLengthBytes = d.size("max_length_bytes", v)
	},
	"overflow": func(d *decoder, q *queueSpec, _, v *yaml.Node) { q.overflow = d.enum("overflow", v, overflowModes...) },
	"delivery_limit": func(d *decoder, q *queueSpec, _, v *yaml.Node) {
		q.deliveryLimit = d.integer("delivery_limit", v, -1, math.MaxInt32)
	},
	"max_priority": func(d *decoder, q *queueSpec, _, v *yaml.Node) {
		q.maxPriority = d.integer("max_priority", v, 1, 255)
	},
	"single_active_consumer": func(d *decoder, q *queueSpec, _, v *yaml.Node) {
		q.singleActive = d.boolean("single_active_consumer", v)
	},
	"retry": func(d *decoder, q *queueSpec, k, v *yaml.Node) { q.retry = decodeRetry(d, k, v) },
	"arguments": func(d *decoder, q *queueSpec, _, v *yaml.Node) {
		d.table("arguments", v, func(name string, k *yaml.Node, value any) {
			q.args = append(q.args, argSpec{key: name, pos: d.pos(k), value: value})
		})
	},
}

func decodeQueue(d *decoder, name string, k, v *yaml.Node) *queueSpec {
	q := &queueSpec{name: name, pos: d.pos(k)}
	q.entry = d.entry(func() bool {
		return objectOf(d, v, fmt.Sprintf("queue %q", name), queueFields,
			func(f queueField, k, v *yaml.Node) { f(d, q, k, v) })
	})
	return q
}

var bindingFields = map[string]bindingField{
	"exchange":    func(d *decoder, b *bindingSpec, _, v *yaml.Node) { b.exchange = d.str("exchange", v) },
	"queue":       func(d *decoder, b *bindingSpec, _, v *yaml.Node) { b.queue = d.str("queue", v) },
	"to_exchange": func(d *decoder, b *bindingSpec, _, v *yaml.Node) { b.toExchange = d.str("to_exchange", v) },
	"routing_key": func(d *decoder, b *bindingSpec, _, v *yaml.Node) { b.routingKey = d.str("routing_key", v) },
	"routing_keys": func(d *decoder, b *bindingSpec, _, v *yaml.Node) {
		keys := opt[[]opt[string]]{set: true, pos: d.pos(v)}
		items, _ := d.list(v, "routing_keys")
		if v.Kind == yaml.SequenceNode && len(items) == 0 {
			d.p.add(keys.pos, "list at least one key, or use routing_key", "routing_keys is empty")
		}
		for i, item := range items {
			// Each key is a binding of its own: the binding's entry
			// counted the first.
			if i > 0 && !d.counted(item) {
				keys.bad = true
				break
			}
			k := d.str("a routing key", item)
			keys.bad = keys.bad || k.bad
			keys.v = append(keys.v, k)
		}
		if keys.bad || len(keys.v) == 0 {
			keys = bad[[]opt[string]](keys.pos)
		}
		b.keys = keys
	},
	"arguments": func(d *decoder, b *bindingSpec, _, v *yaml.Node) {
		args := opt[Table]{v: Table{}, set: true, pos: d.pos(v)}
		if !d.table("arguments", v, func(name string, _ *yaml.Node, value any) { args.v[name] = value }) {
			args = bad[Table](args.pos)
		}
		b.args = args
	},
}

func decodeBinding(d *decoder, n int, v *yaml.Node) *bindingSpec {
	b := &bindingSpec{pos: d.pos(v)}
	what := fmt.Sprintf("binding %d", n)
	if isNull(v) {
		d.p.add(b.pos, "write at least exchange: and queue: (or to_exchange:)", "%s is empty", what)
		b.broken, b.suspect = true, true
		return b
	}
	b.entry = d.entry(func() bool {
		return objectOf(d, v, what, bindingFields, func(f bindingField, k, v *yaml.Node) { f(d, b, k, v) })
	})
	return b
}

var routeFields = map[string]routeField{
	"exchange":    func(d *decoder, r *routeSpec, _, v *yaml.Node) { r.exchange = d.str("exchange", v) },
	"routing_key": func(d *decoder, r *routeSpec, _, v *yaml.Node) { r.routingKey = d.str("routing_key", v) },
	"retry":       func(d *decoder, r *routeSpec, k, v *yaml.Node) { r.retry = decodeRetry(d, k, v) },
}

func decodeRoute(d *decoder, jobType string, k, v *yaml.Node) *routeSpec {
	r := &routeSpec{jobType: jobType, pos: d.pos(k)}
	r.entry = d.entry(func() bool {
		return objectOf(d, v, fmt.Sprintf("route %q", jobType), routeFields,
			func(f routeField, k, v *yaml.Node) { f(d, r, k, v) })
	})
	return r
}

// fmtDuration writes d the way the file would: "2h" rather than "2h0m0s",
// and with days.
func fmtDuration(d time.Duration) string {
	const day = 24 * time.Hour
	s := ""
	if d >= day {
		s = fmt.Sprintf("%dd", d/day)
		d %= day
		if d == 0 {
			return s
		}
	}
	t := d.String()
	if strings.HasSuffix(t, "m0s") {
		t = strings.TrimSuffix(t, "0s")
	}
	if strings.HasSuffix(t, "h0m") {
		t = strings.TrimSuffix(t, "0m")
	}
	return s + t
}
