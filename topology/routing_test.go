package topology

import "testing"

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
