package deadletter

import (
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Filter selects entries. The zero Filter selects every entry; each field
// set narrows the selection (all must hold).
type Filter struct {
	Types   []string       // job types, any of
	Classes []string       // error classes, any of (RabbitMQ's as "rabbitmq:<reason>")
	IDs     []string       // job ids, any of
	Error   *regexp.Regexp // matches the error text
	// OlderThan and NewerThan bound the time since the job last failed
	// (when the time is unknown, the job matches neither).
	OlderThan time.Duration
	NewerThan time.Duration
}

// ErrorPattern compiles an --error argument: a regular expression, or a
// plain substring when it is not one.
func ErrorPattern(s string) (*regexp.Regexp, error) {
	if s == "" {
		return nil, nil
	}
	if re, err := regexp.Compile(s); err == nil {
		return re, nil
	}
	re, err := regexp.Compile(regexp.QuoteMeta(s))
	if err != nil {
		return nil, fmt.Errorf("deadletter: error pattern %q: %w", s, err)
	}
	return re, nil
}

// Match reports whether e is selected, at time now.
func (f Filter) Match(e Entry, now time.Time) bool {
	if len(f.Types) > 0 && !slices.Contains(f.Types, e.Envelope.Type) {
		return false
	}
	if len(f.Classes) > 0 && !slices.Contains(f.Classes, e.Class) {
		return false
	}
	if len(f.IDs) > 0 && !slices.Contains(f.IDs, e.Envelope.ID) {
		return false
	}
	if f.Error != nil && !f.Error.MatchString(e.Error) {
		return false
	}
	if f.OlderThan > 0 || f.NewerThan > 0 {
		if e.LastFailed.IsZero() {
			return false
		}
		age := now.Sub(e.LastFailed)
		if f.OlderThan > 0 && age < f.OlderThan {
			return false
		}
		if f.NewerThan > 0 && age > f.NewerThan {
			return false
		}
	}
	return true
}

// Group is the count of entries sharing a key.
type Group struct {
	Key   string
	Count int
	Types []string // the job types seen in the group, sorted
}

// GroupBy names what to group by.
type GroupBy string

// What entries can be grouped by.
const (
	ByError GroupBy = "error" // the first line of the error text
	ByType  GroupBy = "type"
	ByClass GroupBy = "class"
)

// Grouper counts entries by a key, keeping the groups largest first.
type Grouper struct {
	by     GroupBy
	groups map[string]*Group
	types  map[string]map[string]bool
}

// NewGrouper returns a Grouper, or an error for an unknown key.
func NewGrouper(by GroupBy) (*Grouper, error) {
	switch by {
	case ByError, ByType, ByClass:
	default:
		return nil, fmt.Errorf("deadletter: cannot group by %q: use error, type or class", by)
	}
	return &Grouper{by: by, groups: map[string]*Group{}, types: map[string]map[string]bool{}}, nil
}

// Add counts e.
func (g *Grouper) Add(e Entry) {
	var key string
	switch g.by {
	case ByError:
		key = e.FirstLine()
	case ByType:
		key = e.Envelope.Type
	case ByClass:
		key = e.Class
	}
	gr, ok := g.groups[key]
	if !ok {
		gr = &Group{Key: key}
		g.groups[key] = gr
		g.types[key] = map[string]bool{}
	}
	gr.Count++
	g.types[key][e.Envelope.Type] = true
}

// Groups returns the groups, largest first, then by key.
func (g *Grouper) Groups() []Group {
	out := make([]Group, 0, len(g.groups))
	for key, gr := range g.groups {
		types := make([]string, 0, len(g.types[key]))
		for t := range g.types[key] {
			types = append(types, t)
		}
		slices.Sort(types)
		gr.Types = types
		out = append(out, *gr)
	}
	slices.SortFunc(out, func(a, b Group) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	return out
}
