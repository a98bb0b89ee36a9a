package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTopologyValidateLimits checks that validate refuses files past the
// topology package's limits with a problem that names the limit and says
// what to do, in text and in JSON.
func TestTopologyValidateLimits(t *testing.T) {
	dir := t.TempDir()
	sparse := filepath.Join(dir, "sparse.yaml")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	// 1 GiB that takes no room on disk.
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	flow := filepath.Join(dir, "flow.yaml")
	if err := os.WriteFile(flow, []byte("queues: ["+strings.Repeat("{name: a}, ", 1<<20)+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
	}{
		{sparse, "sparse.yaml:1:1: the file is larger than 64 MiB, the most a topology file may be (topology.MaxFileSize)"},
		{flow, "flow.yaml:1:1: the file has too many YAML nodes: more than 2000000 (topology.MaxNodes)"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			code, out, _ := warren(t, "topology", "validate", "-f", tt.path)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(out, tt.want) || !strings.Contains(out, "hint: split it into several topology files") {
				t.Errorf("output lacks %q and its hint:\n%s", tt.want, out)
			}

			code, out, _ = warren(t, "--json", "topology", "validate", "-f", tt.path)
			var res struct {
				Valid    bool `json:"valid"`
				Problems []struct {
					Message, Hint string
				} `json:"problems"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("--json output is not JSON: %v\n%s", err, out)
			}
			if code != 1 || res.Valid || len(res.Problems) != 1 || res.Problems[0].Hint == "" {
				t.Errorf("--json: exit %d, %+v", code, res)
			}
		})
	}
}
