package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// allocated returns the bytes fn allocates on the heap.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// problemsOf returns the problems of a failed Parse or Load.
func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got %T (%v), want Problems", err, err)
	}
	return ps
}

// nestedArgument is a file whose deepest value, in a queue argument, is at
// depth: the top-level mapping is at 1, queues' value at 2, the queue's at
// 3, its arguments' at 4, then the lists, then the number in the last.
func nestedArgument(depth int) string {
	lists := depth - 5
	return "queues:\n  q:\n    reply_queue: true\n    arguments:\n      x-a: " +
		strings.Repeat("[", lists) + "1" + strings.Repeat("]", lists) + "\n"
}

// listWidth is the width of the first n keys of the routing_keys list that
// TestLimits writes.
func listWidth(n int) int {
	w := 0
	for i := range n {
		w += len(fmt.Sprintf("k%d, ", i))
	}
	return w
}

// TestLimits checks that files past a limit are refused with a problem that
// names it, and that refusing them takes little memory: a file too large is
// refused before the YAML library builds its tree.
func TestLimits(t *testing.T) {
	const mb = 1 << 20
	tests := []struct {
		name string
		data func() []byte
		// want is the problem, without its hint.
		want string
		// maxAlloc bounds what Parse allocates, in bytes.
		maxAlloc uint64
	}{
		{
			name:     "50 MB flow list of mappings",
			data:     func() []byte { return []byte("queues: [" + strings.Repeat("{name: a}, ", 50*mb/11) + "]\n") },
			want:     "t.yaml:1:1: the file has too many YAML nodes: more than 2000000 (topology.MaxNodes) by the count made before parsing",
			maxAlloc: 1 * mb,
		},
		{
			name:     "50 MB flow list of scalars",
			data:     func() []byte { return []byte("queues: [" + strings.Repeat("a,", 25*mb) + "]\n") },
			want:     "t.yaml:1:1: the file has too many YAML nodes: more than 2000000 (topology.MaxNodes) by the count made before parsing",
			maxAlloc: 1 * mb,
		},
		{
			name:     "50 MB of nested flow lists",
			data:     func() []byte { return bytes.Repeat([]byte("["), 50*mb) },
			want:     "t.yaml:1:1: the file has too many YAML nodes: more than 2000000 (topology.MaxNodes) by the count made before parsing",
			maxAlloc: 1 * mb,
		},
		{
			name:     "50 MB block list",
			data:     func() []byte { return []byte("bindings:\n" + strings.Repeat("- \n", 50*mb/3)) },
			want:     "t.yaml:1:1: the file has too many YAML nodes: more than 2000000 (topology.MaxNodes) by the count made before parsing",
			maxAlloc: 1 * mb,
		},
		{
			name: "more than MaxEntities",
			data: func() []byte {
				var b strings.Builder
				b.WriteString("queues:\n")
				for i := range MaxEntities + 1000 {
					fmt.Fprintf(&b, "  q%d:\n", i)
				}
				return []byte(b.String())
			},
			// At the first entry past the limit.
			want: fmt.Sprintf("t.yaml:%d:3: the file declares more than 250000 exchanges, queues, bindings and routes in all (topology.MaxEntities)", MaxEntities+2),
			// The entries up to the limit are decoded.
			maxAlloc: 768 * mb,
		},
		{
			name: "more than MaxEntities in routing keys",
			data: func() []byte {
				var b strings.Builder
				b.WriteString("exchanges: {x: {type: direct}}\nqueues: {q: }\nbindings:\n  - {exchange: x, queue: q, routing_keys: [")
				for i := range MaxEntities + 1000 {
					fmt.Fprintf(&b, "k%d, ", i)
				}
				b.WriteString("]}\n")
				return []byte(b.String())
			},
			// The exchange and the queue are two entities, the binding
			// with its first key the third: the key past the limit is
			// at index MaxEntities-2.
			want: fmt.Sprintf("t.yaml:4:%d: the file declares more than 250000 exchanges, queues, bindings and routes in all (topology.MaxEntities)",
				len("  - {exchange: x, queue: q, routing_keys: [")+listWidth(MaxEntities-2)+1),
			maxAlloc: 768 * mb,
		},
		{
			name:     "larger than MaxFileSize",
			data:     func() []byte { return []byte("# " + strings.Repeat("x", MaxFileSize) + "\n") },
			want:     "t.yaml:1:1: the file is larger than 64 MiB, the most a topology file may be (topology.MaxFileSize)",
			maxAlloc: 1 * mb,
		},
		{
			name: "a billion laughs",
			data: func() []byte {
				var b strings.Builder
				b.WriteString(`a: &a ["x","x","x","x","x","x","x","x","x","x"]` + "\n")
				for c := 'b'; c <= 'i'; c++ {
					fmt.Fprintf(&b, "%c: &%c [%s]\n", c, c, strings.Repeat(fmt.Sprintf("*%c,", c-1), 9)+fmt.Sprintf("*%c", c-1))
				}
				return []byte(b.String())
			},
			want:     "t.yaml:1:1: the document is too large with its aliases expanded: more than 2000000 YAML nodes (topology.MaxNodes)",
			maxAlloc: 1 * mb,
		},
		{
			name: "nested past MaxDepth",
			data: func() []byte { return []byte(nestedArgument(MaxDepth + 1)) },
			// At the number, the first value too deep.
			want:     fmt.Sprintf("t.yaml:5:%d: the file nests deeper than 64 levels (topology.MaxDepth)", 12+MaxDepth+1-5),
			maxAlloc: 1 * mb,
		},
		{
			name: "nested past MaxDepth through aliases",
			data: func() []byte {
				// Each is half as deep as the limit; one in the
				// other, through an alias, is deeper.
				lists := MaxDepth / 2
				return []byte("x-a: &a " + strings.Repeat("[", lists) + "1" + strings.Repeat("]", lists) + "\n" +
					"x-b: &b " + strings.Repeat("[", lists) + "*a" + strings.Repeat("]", lists) + "\n")
			},
			// At the alias.
			want:     fmt.Sprintf("t.yaml:2:%d: the file nests deeper than 64 levels (topology.MaxDepth)", 9+MaxDepth/2),
			maxAlloc: 1 * mb,
		},
		{
			name:     "nested past the YAML library's limit",
			data:     func() []byte { return bytes.Repeat([]byte("["), 10_001) },
			want:     "t.yaml:1:1: the file nests deeper than 64 levels (topology.MaxDepth)",
			maxAlloc: 32 * mb,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data()
			var err error
			n := allocated(func() { _, err = Parse("t.yaml", data) })
			ps := problemsOf(t, err)
			if got := brief(ps); len(got) != 1 || got[0] != tt.want {
				t.Errorf("problems:\n%v\nwant:\n%s", strings.Join(got, "\n"), tt.want)
			}
			if ps[0].Hint == "" {
				t.Errorf("no hint: %v", ps[0])
			}
			if n > tt.maxAlloc {
				t.Errorf("Parse allocated %d MB, want at most %d MB", n>>20, tt.maxAlloc>>20)
			}
		})
	}
}

// TestLimitsLeaveRoom checks that a file at each limit loads.
func TestLimitsLeaveRoom(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"nested to MaxDepth", nestedArgument(MaxDepth)},
		{
			"nested to MaxDepth through aliases",
			"queues:\n  q:\n    reply_queue: true\n    arguments:\n      x-a: &a " + strings.Repeat("[", 30) + "1" + strings.Repeat("]", 30) + "\n" +
				"      x-b: " + strings.Repeat("[", MaxDepth-35) + "*a" + strings.Repeat("]", MaxDepth-35) + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("t.yaml", []byte(tt.data)); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}

// TestSmallAtTheLimits checks that a file of MaxFileSize bytes, and one of
// MaxNodes nodes by countNodes's bound, pass the checks made before
// parsing, and that one byte or node more does not.
func TestSmallAtTheLimits(t *testing.T) {
	comment := func(size int) []byte {
		return []byte("# " + strings.Repeat("x", size-3) + "\n")
	}
	// countNodes counts 4 for the documents and 3 for each ":".
	colons := func(nodes int) []byte {
		return []byte(strings.Repeat(":", (nodes-4)/3) + strings.Repeat("*", (nodes-4)%3))
	}
	tests := []struct {
		name string
		data []byte
		want bool
	}{
		{"MaxFileSize bytes", comment(MaxFileSize), true},
		{"a byte more", comment(MaxFileSize + 1), false},
		{"MaxNodes nodes", colons(MaxNodes), true},
		{"a node more", colons(MaxNodes + 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &decoder{file: "t.yaml", p: &collector{}}
			if got := d.small(tt.data); got != tt.want {
				t.Errorf("small = %t, want %t: %v", got, tt.want, d.p.list)
			}
		})
	}
}

// TestReadUpTo checks reading in chunks around their edges.
func TestReadUpTo(t *testing.T) {
	const first, limit = 4, 100
	for _, size := range []int{0, 1, first - 1, first, first + 1, 3*first + 1, limit - 1, limit, limit + 1, 3 * limit} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := bytes.Repeat([]byte("abcdefg"), size)[:size]
			got, err := readUpTo(iotest.HalfReader(bytes.NewReader(data)), limit, first)
			if err != nil {
				t.Fatal(err)
			}
			if want := data[:min(size, limit)]; !bytes.Equal(got, want) {
				t.Errorf("read %q, want %q", got, want)
			}
		})
	}
	if _, err := readUpTo(iotest.ErrReader(io.ErrClosedPipe), limit, first); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("error %v, want the reader's", err)
	}
}

// TestLoadReadsNoMoreThanTheLimit checks that Load refuses a file over
// MaxFileSize without reading it all, and reads no further than the limit
// from a file that does not end.
func TestLoadReadsNoMoreThanTheLimit(t *testing.T) {
	huge := filepath.Join(t.TempDir(), "huge.yaml")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 8 GiB that take no room on disk, and that a whole read
	// would make Load allocate.
	if err := f.Truncate(8 << 30); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		maxAlloc   uint64
	}{
		{"sparse 8 GiB file", huge, 1 << 20},
		// Not a regular file: read up to the limit, in chunks joined
		// once.
		{"endless file", "/dev/zero", 2*MaxFileSize + 16<<20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = Load(tt.path) })
			ps := problemsOf(t, err)
			want := tt.path + ":1:1: the file is larger than 64 MiB, the most a topology file may be (topology.MaxFileSize)"
			if got := brief(ps); len(got) != 1 || got[0] != want {
				t.Errorf("problems:\n%v\nwant:\n%s", strings.Join(got, "\n"), want)
			}
			if n > tt.maxAlloc {
				t.Errorf("Load allocated %d MB, want at most %d MB", n>>20, tt.maxAlloc>>20)
			}
		})
	}
}

// TestCountNodes checks countNodes's weights, and that it stops counting
// past its limit.
func TestCountNodes(t *testing.T) {
	tests := []struct {
		data  string
		limit int
		want  int
	}{
		{"", 100, 4},
		{"plain scalar, with: punctuation", 100, 4 + 2 + 3},
		{"a: b\nc: [d, e]\n", 100, 4 + 3 + 3 + 2 + 2},
		{"{a: *b}", 100, 4 + 3 + 3 + 1},
		{"? a\n- b\n-\n- -c\n-\td", 100, 4 + 3 + 2 + 2 + 2 + 2},
		// The last "-" of "---" is followed by a space.
		{"a: b-c - d --- e", 100, 4 + 3 + 2 + 2},
		{"-\u2028-\u0085", 100, 4 + 2 + 2},
		{strings.Repeat("{", 100), 10, 13},
	}
	for _, tt := range tests {
		if got := countNodes([]byte(tt.data), tt.limit); got != tt.want {
			t.Errorf("countNodes(%q, %d) = %d, want %d", tt.data, tt.limit, got, tt.want)
		}
	}
}

// TestProblemsAreCapped checks that a file with a great many problems lists
// the first maxProblems found and says so, without building the rest: an
// alias to a mapping of unknown keys, used as every queue's settings, makes
// a 19 KB file with 950,000 problems.
func TestProblemsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-a: &a {")
	for i := range 950 {
		fmt.Fprintf(&b, "k%d: 1, ", i)
	}
	b.WriteString("}\nqueues:\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "  q%d: *a\n", i)
	}
	data := []byte(b.String())
	var err error
	n := allocated(func() { _, err = Parse("t.yaml", data) })
	ps := problemsOf(t, err)
	if len(ps) != maxProblems+1 {
		t.Errorf("%d problems, want %d and one saying there are more", len(ps), maxProblems)
	}
	want := fmt.Sprintf("t.yaml:1:1: only the first %d problems found are listed", maxProblems)
	if got := brief(ps[:1]); got[0] != want {
		t.Errorf("first problem %q, want %q", got[0], want)
	}
	// The aliases stand for a million nodes, each decoded.
	if n > 256<<20 {
		t.Errorf("Parse allocated %d MB, want at most 256 MB", n>>20)
	}
}

// TestWarningsAreCapped checks that a file with more warnings than
// maxProblems loads, with the first ones and a warning saying there are
// more.
func TestWarningsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("queues:\n")
	for i := range maxProblems + 10 {
		fmt.Fprintf(&b, "  q%d:\n", i) // not bound: a warning each
	}
	top, err := Parse("t.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("Parse: %.1000v", err)
	}
	if got := len(top.Warnings); got != maxProblems+1 {
		t.Errorf("%d warnings, want %d and one saying there are more", got, maxProblems)
	}
	if w := top.Warnings[0]; !w.Warning || !strings.HasPrefix(w.Message, "only the first") {
		t.Errorf("first warning %v, want one saying there are more", w)
	}
}

// TestMemoryPerEntity bounds what Parse allocates for each entity of a
// file, so that a small file of many terse entries (a queue is a name and
// a colon) cannot take gigabytes.
func TestMemoryPerEntity(t *testing.T) {
	// A queue is three: the queue, its dead-letter queue and its
	// quarantine.
	const n, perQueue = 20_000, 5632
	var b strings.Builder
	b.WriteString("queues:\n")
	for i := range n {
		fmt.Fprintf(&b, "  q%d:\n", i)
	}
	data := []byte(b.String())
	var err error
	got := allocated(func() { _, err = Parse("t.yaml", data) })
	if err != nil {
		t.Fatalf("Parse: %.1000v", err)
	}
	if got > n*perQueue {
		t.Errorf("Parse allocated %d bytes a queue, want at most %d", got/n, perQueue)
	}
}
