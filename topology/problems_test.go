package topology

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestProblemsError(t *testing.T) {
	ps := Problems{
		{Pos: Pos{File: "t.yaml", Line: 9, Column: 3}, Message: "second"},
		{Pos: Pos{File: "t.yaml", Line: 2, Column: 7}, Message: "first", Hint: "fix it"},
		{Pos: Pos{File: "t.yaml", Line: 9, Column: 1}, Message: "looks odd", Warning: true},
	}
	want := "t.yaml:2:7: first\n\thint: fix it\nt.yaml:9:1: warning: looks odd\nt.yaml:9:3: second"
	if diff := cmp.Diff(want, ps.Error()); diff != "" {
		t.Errorf("Error() (-want +got):\n%s", diff)
	}
	if ps[0].Message != "second" {
		t.Error("Error() reordered the problems it was called on")
	}
	if got := len(ps.Errors()); got != 2 {
		t.Errorf("Errors() has %d problems, want 2", got)
	}
	if got := ps.Warnings(); len(got) != 1 || got[0].Message != "looks odd" {
		t.Errorf("Warnings() = %v", got)
	}
	if got := (Pos{Line: 4, Column: 2}).String(); got != "4:2" {
		t.Errorf("Pos without a file = %q, want 4:2", got)
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"durable", "auto_delete", "message_ttl", "max_length", "max_length_bytes", "routing_key", "routing_keys"}
	tests := []struct{ word, want string }{
		{"durabel", `did you mean "durable"?`},
		{"Durable", `did you mean "durable"?`},
		{"autodelete", `did you mean "auto_delete"?`},
		{"max_lenght", `did you mean "max_length"?`},
		{"ttl", `did you mean "message_ttl"?`},
		{"key", `did you mean "routing_key"?`},
		{"zz", "expected one of: auto_delete, durable, max_length, max_length_bytes, message_ttl, routing_key, routing_keys"},
	}
	for _, tt := range tests {
		if got := suggest(tt.word, keys); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
	if got := suggest("x", nil); got != "" {
		t.Errorf("suggest with no candidates = %q", got)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"durable", "durable", 0},
		{"durabel", "durable", 1}, // transposition
		{"kitten", "sitting", 3},
		{"quorum", "qourum", 1},
		{"héllo", "hello", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
