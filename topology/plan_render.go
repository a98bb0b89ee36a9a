// How plan prints a Change: its action, differences and notes.

package topology

import (
	"fmt"
	"strconv"
	"strings"
)

// Text returns the action as plan prints it: "create", "update (by
// policy)", "needs recreate" or "extra".
func (a Action) Text() string {
	switch a {
	case ActionUpdate:
		return "update (by policy)"
	case ActionRecreate:
		return "needs recreate"
	default:
		return string(a)
	}
}

func (d Diff) String() string {
	s := fmt.Sprintf("%s: %s on the broker, %s in the file", d.Attribute, valueText(d.Live), valueText(d.Want))
	switch {
	case d.Policy != "":
		s += fmt.Sprintf(" (a policy can set %q)", d.Policy)
	case d.Why != "":
		s += " (" + d.Why + ")"
	}
	return s
}

// Details describes the change in one line: the differences of an update
// or a recreate, else the Note.
func (c Change) Details() string {
	if len(c.Diffs) == 0 {
		return c.Note
	}
	parts := make([]string, len(c.Diffs))
	for i, d := range c.Diffs {
		parts[i] = d.String()
	}
	return strings.Join(parts, "; ")
}

func (c Change) String() string {
	s := c.Action.Text() + " " + c.Kind + " " + c.Name
	if d := c.Details(); d != "" {
		s += ": " + d
	}
	return s
}

// valueText renders a value for Diff.String: "(none)" for an absent one.
func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return "(none)"
	case string:
		return strconv.Quote(x)
	default:
		return canonical(x)
	}
}

func argsText(args Table) string {
	if len(args) == 0 {
		return ""
	}
	return "arguments " + canonical(args)
}

func exchangeNote(x Exchange) string {
	s := x.Kind + flags(x.Durable, x.AutoDelete, x.Internal, false)
	if a := argsText(x.Args); a != "" {
		s += ", " + a
	}
	return s
}

func queueNote(q Queue) string {
	return queueType(q) + flags(q.Durable, q.AutoDelete, false, q.Exclusive)
}

func flags(durable, autoDelete, internal, exclusive bool) string {
	var s string
	if durable {
		s += ", durable"
	} else {
		s += ", transient"
	}
	if autoDelete {
		s += ", auto-delete"
	}
	if internal {
		s += ", internal"
	}
	if exclusive {
		s += ", exclusive"
	}
	return s
}
