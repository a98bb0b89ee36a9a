package topology

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// FuzzParse checks that Parse never panics on any input, and that every
// problem it reports is located.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(testdata, "*", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	files = append(files, "../examples/quickstart/topology.yaml")
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range limitSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := Parse("fuzz.yaml", data)
		var ps Problems
		switch {
		case err == nil:
			ps = top.Warnings
		case !errors.As(err, &ps):
			t.Fatalf("Parse returned %T, want Problems: %v", err, err)
		case len(ps.Errors()) == 0:
			t.Fatalf("Parse failed with warnings only: %v", ps)
		}
		for _, p := range ps {
			if p.Pos.Line < 1 || p.Pos.Column < 1 || p.Pos.File != "fuzz.yaml" {
				t.Errorf("problem without a position: %+v", p)
			}
			if p.Message == "" {
				t.Errorf("problem without a message: %+v", p)
			}
		}
		// The same input gives the same answer.
		top2, err2 := Parse("fuzz.yaml", data)
		if fmt.Sprint(err) != fmt.Sprint(err2) || (err == nil && top.Warnings.Error() != top2.Warnings.Error()) {
			t.Fatalf("two parses differ:\n%v\n---\n%v", err, err2)
		}
		if err == nil {
			for _, q := range top.WorkQueues() {
				if _, _, err := DelayRoute(q.Name, MaxDelay); err != nil {
					t.Errorf("DelayRoute(%q): %v", q.Name, err)
				}
			}
		}
	})
}

// limitSeeds are small files near the limits' edges, and YAML that puts
// nodes where countNodes might miss them.
var limitSeeds = []string{
	"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n",
	"queues: &q\n  a: *q\n",
	"x-a: &a [[[[1]]]]\nx-b: [[[[*a]]]]\n",
	"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	"- - - - a\n- ? b\n  : c\n- {d, e: , : f}\n- [g: h, : i, j]\n",
	"a: |\n  - b: c\n  'd\ne: \"f\n  g\"\n",
	"--- a\n--- [b, c]\n--- {d: e}\n",
	"a:\u2028- b\n-\u0085- c\n",
	"{a: 1}: b\n[c]: d\n? - e\n: f\n",
	"a: !!str\nb: &x\nc: *x\n<<: {d: e}\n",
}

// treeNodes returns the nodes of the first two documents of data as the
// YAML library parses them, each counted once; a document it fails to parse
// counts nothing.
func treeNodes(data []byte) int {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	total := 0
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		total++
		for _, c := range n.Content {
			walk(c)
		}
	}
	for range 2 {
		var doc yaml.Node
		if err := decodeYAML(dec, &doc); err != nil {
			break
		}
		walk(&doc)
	}
	return total
}

// FuzzCountNodes checks that countNodes's bound is never below the nodes
// the YAML library makes of the same bytes, which is what lets Parse refuse
// a file too large before parsing it.
func FuzzCountNodes(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(testdata, "*", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range limitSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		bound := countNodes(data, math.MaxInt)
		if got := countNodes(data, 10); got != bound && (got <= 10 || got > bound) {
			t.Fatalf("countNodes with limit 10 = %d, the whole count is %d", got, bound)
		}
		if nodes := treeNodes(data); nodes > bound {
			t.Fatalf("countNodes = %d, but the YAML library makes %d nodes", bound, nodes)
		}
	})
}
