package topology

import "time"

// The file as written: every value with whether the file set it and where,
// so that checks can point at the key that is wrong. decode.go fills these;
// validate.go checks them; derive.go turns them into a Topology.

// opt is a value the file may set.
type opt[T any] struct {
	v   T
	set bool // the file sets a valid value
	bad bool // the file sets a value that was reported as invalid
	pos Pos  // of the value
}

// bad returns an opt for a value the file sets that was reported as invalid.
// Checks of other entries leave it alone, so that one mistake is not
// reported again as a missing value or a mismatch.
func bad[T any](at Pos) opt[T] { return opt[T]{bad: true, pos: at} }

// present reports whether the file has the key, valid or not.
func (o opt[T]) present() bool { return o.set || o.bad }

// or returns the value when the file set it, else def.
func (o opt[T]) or(def T) T {
	if o.set {
		return o.v
	}
	return def
}

// at returns the value's position when the file set it, else fallback.
func (o opt[T]) at(fallback Pos) Pos {
	if o.set {
		return o.pos
	}
	return fallback
}

type fileSpec struct {
	version   opt[int64]
	defaults  defaultsSpec
	delayType opt[string]
	exchanges []*exchangeSpec
	queues    []*queueSpec
	bindings  []*bindingSpec
	routes    []*routeSpec
	schedules []*scheduleSpec
	// broken marks sections that are not a mapping or list as they should
	// be: what they would declare is unknown.
	broken struct{ exchanges, queues, bindings, routes, schedules bool }
}

type defaultsSpec struct {
	queueType opt[string]
	retry     retrySpec
}

// retrySpec is a retry block; each field overrides the one it is merged over.
type retrySpec struct {
	set         bool
	pos         Pos // of the "retry" key
	maxAttempts opt[int64]
	initial     opt[time.Duration]
	max         opt[time.Duration]
	multiplier  opt[float64]
	jitter      opt[float64]
}

// over returns base with the fields r sets replaced.
func (r retrySpec) over(base RetryPolicy) RetryPolicy {
	if r.maxAttempts.set {
		base.MaxAttempts = int(r.maxAttempts.v)
	}
	if r.initial.set {
		base.InitialInterval = r.initial.v
	}
	if r.max.set {
		base.MaxInterval = r.max.v
	}
	if r.multiplier.set {
		base.Multiplier = r.multiplier.v
	}
	if r.jitter.set {
		base.Jitter = r.jitter.v
	}
	return base
}

// entry is what decoding learned about one entry of a section, so that
// checks of other entries can leave alone what a reported mistake makes
// unknown, rather than report it again as something else.
type entry struct {
	suspect bool            // a problem was reported in it
	broken  bool            // it is not a mapping
	meant   map[string]bool // keys its unknown keys were probably meant to be
}

// unsure reports whether the entry's value for any of keys is unknown
// because of a reported mistake: the entry is not a mapping, or has an
// unknown key that was probably one of them.
func (e entry) unsure(keys ...string) bool {
	if e.broken {
		return true
	}
	for _, k := range keys {
		if e.meant[k] {
			return true
		}
	}
	return false
}

type exchangeSpec struct {
	entry
	name       string
	pos        Pos // of the name
	kind       opt[string]
	durable    opt[bool]
	autoDelete opt[bool]
	internal   opt[bool]
	alternate  opt[string]
}

type queueSpec struct {
	entry
	name           string
	pos            Pos // of the name
	typ            opt[string]
	durable        opt[bool]
	autoDelete     opt[bool]
	exclusive      opt[bool]
	deadLetter     opt[bool]
	dlx            opt[string]
	dlrk           opt[string]
	dlStrategy     opt[string]
	messageTTL     opt[int64] // ms
	expires        opt[int64] // ms
	maxLength      opt[int64]
	maxLengthBytes opt[int64]
	overflow       opt[string]
	deliveryLimit  opt[int64]
	maxPriority    opt[int64]
	singleActive   opt[bool]
	replyQueue     opt[bool] // receives replies through the default exchange: no binding needed
	retry          retrySpec
	args           []argSpec
}

// argSpec is one raw argument from a queue's "arguments".
type argSpec struct {
	key   string
	pos   Pos // of the key
	value any
}

type bindingSpec struct {
	entry
	pos        Pos // of the list item
	exchange   opt[string]
	queue      opt[string]
	toExchange opt[string]
	routingKey opt[string]
	keys       opt[[]opt[string]] // routing_keys
	args       opt[Table]
}

// routingKeys returns the binding's keys, one binding each; a binding with
// neither routing_key nor routing_keys has the empty key.
func (b *bindingSpec) routingKeys() []opt[string] {
	switch {
	case b.keys.set:
		return b.keys.v
	case b.routingKey.set:
		return []opt[string]{b.routingKey}
	default:
		return []opt[string]{{pos: b.pos}}
	}
}

type routeSpec struct {
	entry
	jobType    string
	pos        Pos // of the job type
	exchange   opt[string]
	routingKey opt[string]
	retry      retrySpec
}

// key returns the routing key jobs of this type are published with.
func (r *routeSpec) key() string { return r.routingKey.or(r.jobType) }
