package topology

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Plan compares a resolved topology with what a broker holds and lists what
// differs (DESIGN §3). The broker's side comes from its management HTTP API
// (internal/mgmt fetches it): a passive declare sees neither
// arguments nor bindings. How values are compared is in plan_normalize.go,
// how changes are printed in plan_render.go.

// Action says what a Change would take.
type Action string

// Actions of a Change.
const (
	// ActionCreate: the entity is in the file, not on the broker; apply
	// declares it.
	ActionCreate Action = "create"
	// ActionUpdate: the entity exists with different tunables (TTL, max
	// length, dead-letter target, ...) that a RabbitMQ policy can set
	// without recreating it. A redeclare cannot: apply reports a conflict
	// for it as long as the file and the queue's arguments differ.
	ActionUpdate Action = "update"
	// ActionRecreate: the entity exists with a different identity (queue
	// type, durable, auto-delete, exclusive, exchange type, other
	// arguments), or with a tunable no policy can give it; only deleting
	// and declaring it again changes that, and apply reports a
	// *ConflictError.
	ActionRecreate Action = "recreate"
	// ActionExtra: the entity is on the broker and looks like the file's
	// (see Plan) but is not in it. Reported only: nothing deletes it.
	ActionExtra Action = "extra"
)

// Live is what a broker's virtual host holds, in the topology's own types:
// the Derived, Pos and dead-letter fields are left zero, and Args hold what
// each entity was declared with. Queue.Type may be empty, for a queue that
// does not report one: its "x-queue-type" argument, else classic, is
// assumed.
type Live struct {
	Exchanges []Exchange
	Queues    []Queue
	Bindings  []Binding
	// Policies holds the policy in effect on each queue that has one, by
	// queue name. A tunable that it already gives the file's value is no
	// difference.
	Policies map[string]LivePolicy
}

// Change is one difference between a topology and a broker.
type Change struct {
	Action Action
	Kind   string // EntityExchange, EntityQueue or EntityBinding
	// Name is the entity's name; for a binding, BindingName's description.
	Name    string
	Derived bool // the entity is one warren derives (false for extras)
	// Diffs lists the differing attributes of an ActionUpdate or
	// ActionRecreate, in a stable order: attributes, then arguments by
	// name.
	Diffs []Diff
	// Note says more about a create or an extra, e.g. "quorum, durable".
	Note string
	// Fix is the policy that settles an ActionUpdate; nil for the others.
	Fix *PolicyFix
}

// Diff is one attribute or argument that differs.
type Diff struct {
	// Attribute is "type", "durable", "auto_delete", "exclusive",
	// "internal", or an argument's name such as "x-message-ttl".
	Attribute string
	// Live and Want are the broker's value and the file's; nil when the
	// argument is absent on that side.
	Live, Want any
	// Policy is the policy key (e.g. "message-ttl") that can give the
	// queue the file's value without recreating it; empty when only a
	// recreate can.
	Policy string
	// Why says why no policy can, when Policy is empty for a tunable.
	Why string
}

// tunable describes a queue argument that a policy can also set: its
// policy key, and whether RabbitMQ applies the lower of the argument and
// the policy (numeric limits) or the argument alone when both are set.
type tunable struct {
	policy string
	min    bool
}

// tunables are the queue arguments a RabbitMQ policy can change.
var tunables = map[string]tunable{
	"x-message-ttl":             {"message-ttl", true},
	"x-expires":                 {"expires", true},
	"x-max-length":              {"max-length", true},
	"x-max-length-bytes":        {"max-length-bytes", true},
	"x-delivery-limit":          {"delivery-limit", true},
	"x-overflow":                {"overflow", false},
	"x-dead-letter-exchange":    {"dead-letter-exchange", false},
	"x-dead-letter-routing-key": {"dead-letter-routing-key", false},
	"x-dead-letter-strategy":    {"dead-letter-strategy", false},
}

// Plan compares want with live and returns what differs, exchanges first,
// then queues, then bindings; within each, the file's entities in file
// order, then the extras sorted by name. It returns nil when the broker
// matches the file.
//
// Exchanges and queues are compared by name. An exchange differs in its
// type, durable, auto-delete, internal and arguments, all of which need a
// recreate. A queue differs in its type, durable, auto-delete, exclusive
// and arguments: a differing tunable (x-message-ttl, x-expires,
// x-max-length, x-max-length-bytes, x-delivery-limit, x-overflow,
// x-dead-letter-*) is an ActionUpdate when a policy can give the queue the
// file's value (the queue lacks the argument, or the file's limit is lower:
// RabbitMQ applies the lower of argument and policy for limits, and the
// argument alone for the others); anything else is an ActionRecreate.
// A tunable that the policy in effect on the queue (Live.Policies) already
// gives the file's value is settled, no difference. An ActionUpdate's Fix
// is the policy that settles it.
// Values are compared after normalising numbers, so int64(60000) equals
// 60000.0, and []byte equals string.
//
// Bindings are compared by source, destination, routing key and arguments
// (RabbitMQ keeps bindings that differ only in arguments side by side): a
// missing one is an ActionCreate; nothing about a binding can be updated.
//
// The broker holds other topologies' entities too, and nothing tells them
// apart, so ActionExtra is limited to what this file's entities could own:
//   - a queue "<queue>.dlq" for a work queue of the file that does not
//     derive it (anymore), and a "warren.delay." exchange or queue that is
//     not one of the cascade's levels, when the file derives the cascade;
//   - a binding whose source is an exchange of the file, or whose
//     destination is a queue or exchange of the file or one of the extra
//     queues above, or whose two ends are both in the file. Exchanges and
//     queues shared by every topology (names starting with ReservedPrefix)
//     do not count as the file's here: the bindings from
//     DeadLetterExchange and DelayDeliverExchange to other topologies' queues
//     are not extras.
//
// The default exchange (""), its implicit bindings, and the "amq."
// exchanges are never extras.
func Plan(want *Topology, live Live) []Change {
	p := planner{want: want, policies: live.Policies}
	p.exchanges(live.Exchanges)
	p.queues(live.Queues)
	p.bindings(live.Bindings)
	return p.changes
}

type planner struct {
	want     *Topology
	policies map[string]LivePolicy
	changes  []Change
	// extraQueues are the live queues reported as extras.
	extraQueues map[string]bool
}

func (p *planner) add(c Change) { p.changes = append(p.changes, c) }

func (p *planner) exchanges(live []Exchange) {
	byName := make(map[string]Exchange, len(live))
	for _, x := range live {
		byName[x.Name] = x
	}
	inFile := map[string]bool{}
	for _, w := range p.want.Exchanges {
		inFile[w.Name] = true
		l, ok := byName[w.Name]
		if !ok {
			p.add(Change{Action: ActionCreate, Kind: EntityExchange, Name: w.Name, Derived: w.Derived, Note: exchangeNote(w)})
			continue
		}
		var diffs []Diff
		diffs = appendDiff(diffs, "type", l.Kind, w.Kind)
		diffs = appendDiff(diffs, "durable", l.Durable, w.Durable)
		diffs = appendDiff(diffs, "auto_delete", l.AutoDelete, w.AutoDelete)
		diffs = appendDiff(diffs, "internal", l.Internal, w.Internal)
		diffs = append(diffs, argDiffs(l.Args, w.Args, nil)...)
		if len(diffs) > 0 {
			p.add(Change{Action: ActionRecreate, Kind: EntityExchange, Name: w.Name, Derived: w.Derived, Diffs: diffs})
		}
	}
	var extras []Change
	for _, l := range live {
		if inFile[l.Name] || !p.cascadeLeftover(l.Name) {
			continue
		}
		extras = append(extras, Change{Action: ActionExtra, Kind: EntityExchange, Name: l.Name,
			Note: "not a level of the delay cascade the file derives; left alone"})
	}
	p.addSorted(extras)
}

func (p *planner) queues(live []Queue) {
	byName := make(map[string]Queue, len(live))
	for _, q := range live {
		byName[q.Name] = q
	}
	inFile := map[string]bool{}
	for _, w := range p.want.Queues {
		inFile[w.Name] = true
		l, ok := byName[w.Name]
		if !ok {
			p.add(Change{Action: ActionCreate, Kind: EntityQueue, Name: w.Name, Derived: w.Derived, Note: queueNote(w)})
			continue
		}
		var diffs []Diff
		diffs = appendDiff(diffs, "type", liveQueueType(l), queueType(w))
		diffs = appendDiff(diffs, "durable", l.Durable, w.Durable)
		diffs = appendDiff(diffs, "auto_delete", l.AutoDelete, w.AutoDelete)
		diffs = appendDiff(diffs, "exclusive", l.Exclusive, w.Exclusive)
		var policy *LivePolicy
		if lp, ok := p.policies[w.Name]; ok {
			policy = &lp
		}
		for _, d := range argDiffs(l.Args, w.Args, tunables) {
			if !settled(d, policy) {
				diffs = append(diffs, d)
			}
		}
		if len(diffs) == 0 {
			continue
		}
		action := ActionUpdate
		for _, d := range diffs {
			if d.Policy == "" {
				action = ActionRecreate
			}
		}
		c := Change{Action: action, Kind: EntityQueue, Name: w.Name, Derived: w.Derived, Diffs: diffs}
		if action == ActionUpdate {
			c.Fix = policyFix(w.Name, diffs, policy)
		}
		p.add(c)
	}

	// Leftover dead-letter queues of the file's work queues.
	leftover := map[string]string{}
	for _, w := range p.want.WorkQueues() {
		if dlq := DeadLetterQueueName(w.Name); !inFile[dlq] {
			leftover[dlq] = w.Name
		}
	}
	p.extraQueues = map[string]bool{}
	var extras []Change
	for _, l := range live {
		if inFile[l.Name] {
			continue
		}
		var note string
		if q, ok := leftover[l.Name]; ok {
			note = fmt.Sprintf("dead-letter queue of %s, which the file no longer dead-letters to it; left alone (it may hold dead letters)", q)
		} else if p.cascadeLeftover(l.Name) {
			note = "not a level of the delay cascade the file derives; left alone"
		} else {
			continue
		}
		p.extraQueues[l.Name] = true
		extras = append(extras, Change{Action: ActionExtra, Kind: EntityQueue, Name: l.Name, Note: note})
	}
	p.addSorted(extras)
}

// cascadeLeftover reports a name under the delay cascade's prefix that is
// not in the file, when the file derives the cascade.
func (p *planner) cascadeLeftover(name string) bool {
	if !strings.HasPrefix(name, "warren.delay.") {
		return false
	}
	if _, ok := p.want.Exchange(DelayDeliverExchange); !ok {
		return false
	}
	_, isX := p.want.Exchange(name)
	_, isQ := p.want.Queue(name)
	return !isX && !isQ
}

func (p *planner) bindings(live []Binding) {
	liveKeys := make(map[string]bool, len(live))
	for _, b := range live {
		liveKeys[bindingKey(b)] = true
	}
	wantKeys := make(map[string]bool, len(p.want.Bindings))
	for _, w := range p.want.Bindings {
		k := bindingKey(w)
		wantKeys[k] = true
		if !liveKeys[k] {
			p.add(Change{Action: ActionCreate, Kind: EntityBinding, Name: BindingName(w), Derived: w.Derived, Note: argsText(w.Args)})
		}
	}
	var extras []Change
	seen := map[string]bool{}
	for _, l := range live {
		k := bindingKey(l)
		if l.Exchange == "" || wantKeys[k] || seen[k] || !p.ownsBinding(l) {
			continue
		}
		seen[k] = true
		note := "not in the file; left alone"
		if a := argsText(l.Args); a != "" {
			note = a + "; " + note
		}
		extras = append(extras, Change{Action: ActionExtra, Kind: EntityBinding, Name: BindingName(l), Note: note})
	}
	p.addSorted(extras)
}

// ownsBinding reports whether a live binding could be the file's (see Plan).
func (p *planner) ownsBinding(b Binding) bool {
	_, srcIn := p.want.Exchange(b.Exchange)
	var dstIn, dstOwned bool
	if b.ToExchange != "" {
		_, dstIn = p.want.Exchange(b.ToExchange)
		dstOwned = dstIn && !reserved(b.ToExchange)
	} else {
		_, dstIn = p.want.Queue(b.Queue)
		dstOwned = (dstIn && !reserved(b.Queue)) || p.extraQueues[b.Queue]
	}
	return (srcIn && !reserved(b.Exchange)) || dstOwned || (srcIn && dstIn)
}

func reserved(name string) bool { return strings.HasPrefix(name, ReservedPrefix) }

func (p *planner) addSorted(cs []Change) {
	slices.SortFunc(cs, func(a, b Change) int { return strings.Compare(a.Name, b.Name) })
	p.changes = append(p.changes, cs...)
}

// bindingKey identifies a binding as RabbitMQ does.
func bindingKey(b Binding) string {
	dest := "q:" + b.Queue
	if b.ToExchange != "" {
		dest = "x:" + b.ToExchange
	}
	return strconv.Quote(b.Exchange) + " " + strconv.Quote(dest) + " " + strconv.Quote(b.RoutingKey) + " " + canonical(Table(b.Args))
}

func liveQueueType(q Queue) string {
	if q.Type != "" {
		return q.Type
	}
	return queueType(q)
}

// queueType is a queue's type, from its Type, else its x-queue-type
// argument, else classic (RabbitMQ's default).
func queueType(q Queue) string {
	if q.Type != "" {
		return q.Type
	}
	if s, ok := normalize(q.Args["x-queue-type"]).(string); ok && s != "" {
		return s
	}
	return Classic
}

func appendDiff(diffs []Diff, attr string, live, want any) []Diff {
	if live == want {
		return diffs
	}
	return append(diffs, Diff{Attribute: attr, Live: live, Want: want})
}

// argDiffs compares two argument tables, leaving out x-queue-type (the
// queue's type covers it), sorted by argument name. With tunables set, it
// says which differences a policy can make.
func argDiffs(live, want Table, tunables map[string]tunable) []Diff {
	keys := slices.Sorted(maps.Keys(union(live, want)))
	var diffs []Diff
	for _, k := range keys {
		if k == "x-queue-type" {
			continue
		}
		lv, lok := live[k]
		wv, wok := want[k]
		if lok && wok && equal(lv, wv) {
			continue
		}
		d := Diff{Attribute: k}
		if lok {
			d.Live = normalize(lv)
		}
		if wok {
			d.Want = normalize(wv)
		}
		if t, ok := tunables[k]; ok {
			switch {
			case !wok:
				d.Why = "a policy cannot remove an argument"
			case !lok:
				d.Policy = t.policy
			case t.min && less(d.Want, d.Live):
				d.Policy = t.policy
			case t.min:
				d.Why = "a policy can only lower it"
			default:
				d.Why = "the argument wins over a policy"
			}
		}
		diffs = append(diffs, d)
	}
	return diffs
}

func union(a, b Table) Table {
	out := make(Table, len(a)+len(b))
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}
