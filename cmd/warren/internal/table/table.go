// Package table writes the CLI's aligned text tables.
//
// Columns are measured in terminal cells, not bytes or runes: a CJK
// character or an emoji takes two cells, a combining accent none, so a
// queue or error named in any script lines up. Cells come from outside
// (job errors, queue names, payloads), so control characters in them are
// shown escaped instead of being sent to the terminal: a newline in an
// error cannot break a row, and an escape sequence cannot repaint the
// screen.
package table

import (
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/rivo/uniseg"
)

// gap is the space between two columns.
const gap = 2

// Table is a table under construction. The zero value is not usable; call
// New.
type Table struct {
	header []string
	rows   [][]string
	right  []bool
}

// New returns a table with the given column headers.
func New(header ...string) *Table {
	return &Table{header: header, right: make([]bool, len(header))}
}

// AlignRight right-aligns the columns with the given indexes (numbers).
func (t *Table) AlignRight(cols ...int) *Table {
	for _, c := range cols {
		if c >= 0 && c < len(t.right) {
			t.right[c] = true
		}
	}
	return t
}

// Row appends a row. Missing cells are empty; cells beyond the header's
// width are dropped.
func (t *Table) Row(cells ...string) {
	row := make([]string, len(t.header))
	for i := range row {
		if i < len(cells) {
			row[i] = Clean(cells[i])
		}
	}
	t.rows = append(t.rows, row)
}

// Len returns the number of rows added.
func (t *Table) Len() int { return len(t.rows) }

// WriteTo writes the table, header first, to w. Trailing spaces are never
// written.
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	widths := make([]int, len(t.header))
	all := append([][]string{t.header}, t.rows...)
	for _, row := range all {
		for i, c := range row {
			widths[i] = max(widths[i], Width(c))
		}
	}
	var b strings.Builder
	for _, row := range all {
		line := make([]string, 0, 2*len(row))
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-Width(c))
			switch {
			case t.right[i]:
				line = append(line, pad, c)
			case i < len(row)-1:
				line = append(line, c, pad)
			default:
				line = append(line, c)
			}
			if i < len(row)-1 {
				line = append(line, strings.Repeat(" ", gap))
			}
		}
		b.WriteString(strings.TrimRight(strings.Join(line, ""), " "))
		b.WriteByte('\n')
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// Width returns the number of terminal cells s takes.
func Width(s string) int { return uniseg.StringWidth(s) }

// Clean returns s with control characters (newlines, tabs, escape
// sequences' ESC) written as Go escapes, so that s fits on one line and
// cannot steer the terminal.
func Clean(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Truncate shortens s to at most n terminal cells, ending it with "…" when
// it was cut. It never splits a character (grapheme cluster).
func Truncate(s string, n int) string {
	if Width(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	var b strings.Builder
	w := 0
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		cw := g.Width()
		if w+cw > n-1 {
			break
		}
		b.WriteString(g.Str())
		w += cw
	}
	return b.String() + "…"
}
