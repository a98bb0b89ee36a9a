package topology

import (
	"fmt"
	"testing"
)

func TestTopicMatch(t *testing.T) {
	tests := []struct {
		pattern, key string
		want         bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b", true},
		{"a.*", "a", false},
		{"a.*", "a.b.c", false},
		{"a.#", "a", true},
		{"a.#", "a.b.c", true},
		{"#", "", true},
		{"#", "a.b", true},
		{"*", "", false},
		{"", "", true},
		{"", "a", false},
		{"#.c", "a.b.c", true},
		{"#.c", "c", true},
		{"#.c", "a.b", false},
		{"a.#.c", "a.c", true},
		{"a.#.c", "a.x.y.c", true},
		{"a.#.c", "a.x.y", false},
		{"*.*.b", "x.a.b", true},
		{"*.*.b", "a.b", false},
		{"#.#", "a", true},
		{"*.#.*", "a", false},
		{"*.#.*", "a.b", true},
		{"a..b", "a..b", true},
		{"a.*.b", "a..b", true},
		{"a.", "a.", true},
		{"a.", "a", false},
	}
	for _, tt := range tests {
		if got := topicMatch(tt.pattern, tt.key); got != tt.want {
			t.Errorf("topicMatch(%q, %q) = %t, want %t", tt.pattern, tt.key, got, tt.want)
		}
	}
}

// TestCandidates checks that the edge index leaves out no edge that matches
// a key, and keeps file order: reach tries only the candidates.
func TestCandidates(t *testing.T) {
	patterns := []string{"a.b", "a.*", "a.#", "#", "*", "", "a", "a.b.#", "a.*.c", "*.b", "#.c", ".#", "a..#", "a#.b", "a.b*"}
	keys := []string{"", "a", "b", "a.b", "a.c", "a.b.c", "x.b", "x.y.c", ".", ".x", "a..x", "a#.b", "a.b*"}
	c := &checker{exchanges: map[string]*exchangeSpec{
		"t":  {kind: opt[string]{v: KindTopic, set: true}},
		"d":  {kind: opt[string]{v: KindDirect, set: true}},
		"f":  {kind: opt[string]{v: KindFanout, set: true}},
		"h":  {kind: opt[string]{v: KindHeaders, set: true}},
		"u":  {}, // kind reported as a problem
		"t2": {kind: opt[string]{v: KindTopic, set: true}},
	}}
	sources := []string{"t", "d", "f", "h", "u", "t2"}
	for _, p := range patterns {
		for _, src := range sources {
			c.edges = append(c.edges, edge{src: src, queue: "q", key: p})
		}
	}
	c.edges = append(c.edges, edge{src: "t", queue: "q", wild: true}, edge{src: "d", queue: "q", wild: true})
	c.index()
	for _, src := range sources {
		kind, _ := c.exchangeKind(src)
		for _, key := range keys {
			var want []int
			for i, e := range c.edges {
				if e.src == src && (e.wild || bindingMatches(kind, e.key, &key)) {
					want = append(want, i)
				}
			}
			var got []int
			cands := c.candidates(src, &key)
			for j, i := range cands {
				if j > 0 && cands[j-1] >= i {
					t.Errorf("%s %q: candidates out of file order: %v", src, key, cands)
				}
				if e := c.edges[i]; e.wild || bindingMatches(kind, e.key, &key) {
					got = append(got, i)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s %q: matching candidates %v, want %v", src, key, got, want)
			}
		}
		if got, want := len(c.candidates(src, nil)), len(patterns); got < want {
			t.Errorf("%s, any key: %d candidates, want all %d or more", src, got, want)
		}
	}
}
