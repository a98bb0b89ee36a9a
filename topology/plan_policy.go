// The remedy for drift a RabbitMQ policy can settle: which policy, and the
// command that sets it. plan prints it under each update; apply prints the
// same text for the conflicts it meets, and sets the policies on request.

package topology

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// LivePolicy is the policy in effect on a live queue.
type LivePolicy struct {
	Name     string
	Priority int
	// Definition is the policy's definition, e.g. {"message-ttl": 60000}.
	Definition Table
}

// PolicyFix is the policy that gives an existing queue the file's
// tunables (an ActionUpdate's): RabbitMQ applies one policy per queue,
// the one of highest priority, so the fix keeps the keys of the policy in
// effect (Replaces) and outranks it.
type PolicyFix struct {
	Name     string // "warren.<queue>"
	Queue    string
	Pattern  string // the queue's name alone, as an anchored regular expression
	ApplyTo  string // "queues"
	Priority int
	// Definition is the policy's definition: the keys of the policy in
	// effect, if any, and the file's values of the differing tunables.
	Definition Table
	// Replaces is the policy now in effect on the queue whose keys the fix
	// keeps; empty when there is none, or it is the fix's own.
	Replaces string
}

// PolicyName returns the name of the policy warren proposes for a queue.
func PolicyName(queue string) string { return "warren." + queue }

// policyFix returns the fix for a queue's diffs, all of which a policy can
// make, given the policy in effect on the queue (nil when none).
func policyFix(queue string, diffs []Diff, live *LivePolicy) *PolicyFix {
	f := &PolicyFix{
		Name:       PolicyName(queue),
		Queue:      queue,
		Pattern:    "^" + regexp.QuoteMeta(queue) + "$",
		ApplyTo:    "queues",
		Definition: Table{},
	}
	if live != nil {
		maps.Copy(f.Definition, live.Definition)
		f.Priority = live.Priority
		if live.Name != f.Name {
			f.Replaces = live.Name
			f.Priority = live.Priority + 1
		}
	}
	for _, d := range diffs {
		f.Definition[d.Policy] = d.Want
	}
	return f
}

// settled reports whether the policy in effect already gives the queue
// the file's value of d: RabbitMQ applies the lower of argument and policy
// for limits, and the policy alone when the queue lacks the argument,
// which is when a policy can make a diff (argDiffs).
func settled(d Diff, live *LivePolicy) bool {
	if d.Policy == "" || live == nil {
		return false
	}
	v, ok := live.Definition[d.Policy]
	return ok && equal(v, d.Want)
}

// DefinitionJSON returns the definition as compact JSON, keys sorted.
func (f PolicyFix) DefinitionJSON() string {
	b, err := json.Marshal(map[string]any(f.Definition))
	if err != nil { // a Table holds JSON's types only
		return canonical(map[string]any(f.Definition))
	}
	return string(b)
}

// Command returns the rabbitmqctl command that sets the policy on vhost,
// quoted for a POSIX shell.
func (f PolicyFix) Command(vhost string) string {
	return fmt.Sprintf("rabbitmqctl set_policy -p %s --apply-to %s --priority %d %s %s %s",
		shellQuote(vhost), f.ApplyTo, f.Priority, shellQuote(f.Name), shellQuote(f.Pattern), shellQuote(f.DefinitionJSON()))
}

// Remedy returns the lines that say how to settle an ActionUpdate: the
// policy command, how warren sets it, and what it replaces. file is the
// topology file, for the warren command; nil for other changes.
func (c Change) Remedy(vhost, file string) []string {
	if c.Fix == nil {
		return nil
	}
	keys := slices.Sorted(maps.Keys(c.Fix.Definition))
	lines := []string{
		fmt.Sprintf("remedy: set policy %s (%s) on queue %s, keep the file as it is:", c.Fix.Name, strings.Join(keys, ", "), c.Name),
		"  " + c.Fix.Command(vhost),
		fmt.Sprintf("  or: warren topology apply -f %s --policies", shellQuote(file)),
	}
	if c.Fix.Replaces != "" {
		lines = append(lines, fmt.Sprintf("  it outranks policy %s, now in effect on the queue, and keeps its keys", c.Fix.Replaces))
	}
	return lines
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=%+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
