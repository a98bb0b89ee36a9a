package topology

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
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
