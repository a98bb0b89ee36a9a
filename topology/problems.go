package topology

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one mistake or warning found in a topology file, located at the
// key or value it is about.
type Problem struct {
	Pos     Pos
	Message string
	// Hint says what to do about it; may be empty.
	Hint string
	// Warning marks a problem that does not stop the file from loading.
	Warning bool
}

// String renders the problem as "file:line:col: message", prefixed
// "warning: " for a warning, followed by "\n\thint: ..." when there is a hint.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Pos.String())
	b.WriteString(": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Message)
	if p.Hint != "" {
		b.WriteString("\n\thint: ")
		b.WriteString(p.Hint)
	}
	return b.String()
}

// String renders the position as "file:line:col", or "line:col" without a
// file name.
func (p Pos) String() string {
	s := strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Column)
	if p.File == "" {
		return s
	}
	return p.File + ":" + s
}

// Problems is every problem found in one topology file. As an error (from
// Load or Parse) it holds at least one problem that is not a warning, and the
// warnings found along with it.
type Problems []Problem

// Error renders the problems one per line, sorted by position.
func (ps Problems) Error() string {
	sorted := slices.Clone(ps)
	sorted.sort()
	lines := make([]string, len(sorted))
	for i, p := range sorted {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Errors returns the problems that are not warnings.
func (ps Problems) Errors() Problems {
	return ps.filter(false)
}

// Warnings returns the problems that are warnings.
func (ps Problems) Warnings() Problems {
	return ps.filter(true)
}

func (ps Problems) filter(warning bool) Problems {
	var out Problems
	for _, p := range ps {
		if p.Warning == warning {
			out = append(out, p)
		}
	}
	return out
}

// sort orders problems by file, line, column, then message, so that the
// output is stable.
func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column),
			cmp.Compare(a.Message, b.Message),
		)
	})
}

// maxProblems is the most problems one file lists. Past it, more would
// only repeat what to fix, and a small file can make a great many: an alias
// to a mapping of unknown keys, used as the settings of every queue, is
// reported once for each key in each queue.
const maxProblems = 1000

// collector collects problems during parsing and checking: each problem
// once (a node that aliases refer to several times is decoded, and
// reported, each time), and no more than maxProblems of them.
type collector struct {
	list Problems
	seen map[Problem]bool // the problems in list
	// reported counts every problem reported, listed or not, so that
	// decoding can tell whether a value had one.
	reported int
	// over counts the problems past maxProblems, and overErrors the errors
	// among them.
	over, overErrors int
}

func (c *collector) add(p Pos, hint, format string, args ...any) {
	c.put(false, p, hint, format, args)
}

func (c *collector) warn(p Pos, hint, format string, args ...any) {
	c.put(true, p, hint, format, args)
}

func (c *collector) put(warning bool, p Pos, hint, format string, args []any) {
	c.reported++
	if c.full() {
		c.over++
		if !warning {
			c.overErrors++
		}
		return
	}
	problem := Problem{Pos: p, Message: fmt.Sprintf(format, args...), Hint: hint, Warning: warning}
	if c.seen[problem] {
		return
	}
	if c.seen == nil {
		c.seen = map[Problem]bool{}
	}
	c.seen[problem] = true
	c.list = append(c.list, problem)
}

// full reports whether the list holds maxProblems problems: those reported
// from now on are counted, not listed, and whoever reports one may skip
// working out its message.
func (c *collector) full() bool { return len(c.list) >= maxProblems }

func (c *collector) failed() bool {
	if c.overErrors > 0 {
		return true
	}
	for _, p := range c.list {
		if !p.Warning {
			return true
		}
	}
	return false
}

// problems returns the problems listed, sorted, followed by one saying
// there were more when there were: an error when any of those was one.
func (c *collector) problems(file string) Problems {
	list := c.list
	if c.over > 0 {
		list = append(list, Problem{
			Pos:     Pos{File: file, Line: 1, Column: 1},
			Message: fmt.Sprintf("only the first %d problems found are listed", maxProblems),
			Hint:    "fix them and validate the file again",
			Warning: c.overErrors == 0,
		})
	}
	list.sort()
	return list
}

// suggest returns a hint naming the candidate closest to word, or listing
// every candidate when none is close.
func suggest(word string, candidates []string) string {
	if len(candidates) == 0 {
		return ""
	}
	if c := closest(word, candidates); c != "" {
		return "did you mean " + strconv.Quote(c) + "?"
	}
	sorted := slices.Clone(candidates)
	slices.Sort(sorted)
	return "expected one of: " + strings.Join(sorted, ", ")
}

// closest returns the candidate that word is probably a misspelling of, or
// "".
func closest(word string, candidates []string) string {
	candidates = slices.Clone(candidates)
	slices.Sort(candidates) // ties go to the first in order, whatever the caller's order
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(word), strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	// A typo changes a few characters; beyond that the list helps more.
	if bestDist >= 0 && bestDist <= max(1, min(3, len(best)/3)) {
		return best
	}
	// A word left out ("ttl" for "message_ttl"): the shortest candidate
	// that contains it.
	contains := ""
	for _, c := range candidates {
		if len(word) >= 3 && strings.Contains(strings.ToLower(c), strings.ToLower(word)) &&
			(contains == "" || len(c) < len(contains) || len(c) == len(contains) && c < contains) {
			contains = c
		}
	}
	return contains
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// characters, each costing one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows: two back (for transpositions), one back, current.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
