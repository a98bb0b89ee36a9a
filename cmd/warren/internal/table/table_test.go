package table

import (
	"strings"
	"testing"
)

func TestAlignsWideCharacters(t *testing.T) {
	tb := New("QUEUE", "READY", "ERROR").AlignRight(1)
	tb.Row("emails", "3", "smtp: timeout")
	tb.Row("請求書", "12", "宛先が見つかりません")
	tb.Row("café", "7", "🔥 boom")
	tb.Row("e\u0301te\u0301", "0", "") // combining accents take no cell
	var b strings.Builder
	if _, err := tb.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines:\n%s", len(lines), b.String())
	}
	// The ERROR column starts at the same cell on every line, and READY's
	// numbers end at the same cell.
	col := func(line, sub string) int { return Width(line[:strings.Index(line, sub)]) }
	errCol := col(lines[0], "ERROR")
	for i, want := range []string{"smtp", "宛先", "🔥"} {
		if got := col(lines[i+1], want); got != errCol {
			t.Errorf("line %d: ERROR column at cell %d, want %d:\n%s", i+1, got, errCol, b.String())
		}
	}
	readyEnd := col(lines[0], "READY") + Width("READY")
	for i, want := range []string{"3", "12", "7", "0"} {
		line := lines[i+1]
		idx := strings.Index(line[len(strings.Fields(line)[0]):], want) + len(strings.Fields(line)[0])
		if got := Width(line[:idx]) + Width(want); got != readyEnd {
			t.Errorf("line %d: READY ends at cell %d, want %d:\n%s", i+1, got, readyEnd, b.String())
		}
	}
	for _, l := range lines {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing space in %q", l)
		}
	}
}

func TestCleanKeepsRowsOnOneLine(t *testing.T) {
	tb := New("ID", "ERROR")
	tb.Row("1", "line one\nline two\t\x1b[2Jcleared")
	var b strings.Builder
	tb.WriteTo(&b)
	out := b.String()
	if strings.Count(out, "\n") != 2 || strings.ContainsAny(out, "\t\x1b") {
		t.Fatalf("a control character reached the output: %q", out)
	}
	if !strings.Contains(out, `line one\nline two\t\x1b[2Jcleared`) {
		t.Errorf("the escaped error is not shown: %q", out)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 5, "abcd…"},
		{"宛先が見つかりません", 7, "宛先が…"},
		{"👩‍👩‍👧 family", 3, "👩‍👩‍👧…"},
		{"x", 0, "x"[:0]},
	} {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
		if w := Width(Truncate(tc.in, tc.n)); w > tc.n && tc.n > 0 {
			t.Errorf("Truncate(%q, %d) is %d cells wide", tc.in, tc.n, w)
		}
	}
}
