package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const contractOld = `
types:
  trip.book:
    versions:
      1:
        schema:
          type: object
          required: [rider]
          properties:
            rider: {type: string}
            seats: {type: integer}
            stops:
              type: array
              items: {type: object, properties: {at: {type: string}}}
  trip.cancel:
    versions:
      1: {schema: {type: object}}
`

// contractFiles writes the contracts files named by the keys of files
// into a directory of their own, returning their paths.
func contractFiles(t *testing.T, files map[string]string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{}
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		paths[name] = p
	}
	return paths
}

func TestContractCheck(t *testing.T) {
	f := contractFiles(t, map[string]string{
		"old.yaml": contractOld,
		// Adds an optional property and a version of trip.cancel: compatible.
		"added.yaml": strings.Replace(contractOld, "seats: {type: integer}", "seats: {type: integer}\n            note: {type: string}", 1) +
			"      2: {schema: {type: object}}\n",
		// Widens seats: only forward compatibility breaks.
		"widened.yaml": strings.Replace(contractOld, "seats: {type: integer}", "seats: {type: number}", 1),
		// Requires stops[].at and drops trip.cancel: backward breaks.
		"narrowed.yaml": strings.Replace(contractOld[:strings.Index(contractOld, "  trip.cancel")],
			"items: {type: object,", "items: {type: object, required: [at],", 1),
	})
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   string
		notInOut string
	}{
		{"same", []string{f["old.yaml"], f["old.yaml"]}, 0,
			[]string{"trip.book v1: compatible\n", "trip.cancel v1: compatible\n", "compatible under --mode full: 2 version(s) compared"}, "", "breaks"},
		{"added", []string{f["old.yaml"], f["added.yaml"]}, 0,
			[]string{"trip.book v1: compatible, changed\n", `  /note: property-added (compatible): optional property "note" added`, "trip.cancel v2: added\n"}, "", "breaks"},
		{"widened full", []string{f["old.yaml"], f["widened.yaml"]}, 1,
			[]string{"trip.book v1: breaks forward compatibility\n", "  /seats: type-widened (breaks forward): type integer → number", "incompatible under --mode full: 1 of 2 version(s) break it"},
			"warren: " + f["widened.yaml"] + " breaks full compatibility with " + f["old.yaml"] + ": publish the change to trip.book v1 as a new version (2) and keep version 1's handler; see docs/versioning.md", ""},
		{"widened backward", []string{"--mode", "backward", f["old.yaml"], f["widened.yaml"]}, 0,
			[]string{"compatible under --mode backward: 2 version(s) compared (forward compatibility is broken, which --mode backward allows)"}, "", ""},
		{"widened forward", []string{"--mode", "forward", f["old.yaml"], f["widened.yaml"]}, 1, nil, "breaks forward compatibility", ""},
		{"narrowed", []string{f["old.yaml"], f["narrowed.yaml"]}, 1,
			[]string{"  /stops[]/at: optional-to-required (breaks backward)", "trip.cancel v1: breaks backward compatibility\n  /: type-removed (breaks backward)"},
			"keep trip.cancel v1, marked deprecated: true, until none of its messages are left in queues", ""},
		{"narrowed forward", []string{"--mode=forward", f["old.yaml"], f["narrowed.yaml"]}, 0, []string{"compatible under --mode forward"}, "", ""},
		{"bad mode", []string{"--mode", "both", f["old.yaml"], f["old.yaml"]}, exitUsage, nil, `--mode "both": use backward, forward or full`, ""},
		{"one file", []string{f["old.yaml"]}, exitUsage, nil, "check takes two files, OLD and NEW", ""},
		{"missing file", []string{f["old.yaml"], f["old.yaml"] + ".nope"}, 1, nil, "no such file", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := warren(t, append([]string{"contract", "check"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			if !strings.Contains(errOut, tt.stderr) || (tt.stderr == "" && errOut != "") {
				t.Errorf("stderr %q, want %q", errOut, tt.stderr)
			}
			if tt.notInOut != "" && strings.Contains(out, tt.notInOut) {
				t.Errorf("stdout has %q:\n%s", tt.notInOut, out)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		code, out, errOut := warren(t, "--json", "contract", "check", f["old.yaml"], f["narrowed.yaml"])
		var doc struct {
			Version    int    `json:"version"`
			Mode       string `json:"mode"`
			Compatible bool   `json:"compatible"`
			Breaks     string `json:"breaks"`
			Versions   []struct {
				Type     string `json:"type"`
				Version  int    `json:"contract_version"`
				Change   string `json:"change"`
				Breaks   string `json:"breaks"`
				Findings []struct {
					Path, Rule, Breaks, Message string
				} `json:"findings"`
			} `json:"versions"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if code != 1 || errOut != "" || doc.Compatible || doc.Mode != "full" || doc.Breaks != "backward" || len(doc.Versions) != 2 {
			t.Fatalf("exit %d, stderr %q, %+v", code, errOut, doc)
		}
		book, cancel := doc.Versions[0], doc.Versions[1]
		if book.Type != "trip.book" || book.Change != "changed" || len(book.Findings) != 1 ||
			book.Findings[0].Path != "/stops[]/at" || book.Findings[0].Rule != "optional-to-required" || book.Findings[0].Breaks != "backward" {
			t.Errorf("trip.book: %+v", book)
		}
		if cancel.Type != "trip.cancel" || cancel.Version != 1 || cancel.Change != "removed" || cancel.Findings[0].Rule != "type-removed" {
			t.Errorf("trip.cancel: %+v", cancel)
		}

		code, out, _ = warren(t, "--json", "contract", "check", f["old.yaml"], f["added.yaml"])
		if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 || !doc.Compatible || doc.Breaks != "none" {
			t.Errorf("added: exit %d, %v, %+v", code, err, doc)
		}
	})
}

func TestContractCheckTopologyFiles(t *testing.T) {
	// A topology file against a contracts file: both are read.
	taxi := filepath.Join("..", "..", "examples", "taxi", "topology.yaml")
	code, out, errOut := warren(t, "contract", "check", taxi, filepath.Join("..", "..", "examples", "taxi", "contracts", "taxi.yaml"))
	if code != 0 || !strings.Contains(out, "billing.charge v1: compatible\n") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestContractValidateAndLs(t *testing.T) {
	f := contractFiles(t, map[string]string{
		"good.yaml": contractOld,
		"bad.yaml":  "types:\n  t:\n    versions:\n      1: {schema: {type: object, properties: {a: {type: strin}}}}\n",
	})
	code, out, _ := warren(t, "contract", "validate", f["good.yaml"])
	if code != 0 || !strings.Contains(out, "good.yaml is valid: 2 job type(s), 2 version(s), from 1 file(s)") {
		t.Errorf("validate good: exit %d\n%s", code, out)
	}
	code, out, errOut := warren(t, "contract", "validate", f["bad.yaml"])
	if code != 1 || !strings.Contains(out, "bad.yaml:4:") || !strings.Contains(out, "unknown type") || !strings.Contains(errOut, "bad.yaml has 1 error(s)") {
		t.Errorf("validate bad: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = warren(t, "--json", "contract", "validate", f["bad.yaml"])
	var v struct {
		Valid    bool `json:"valid"`
		Problems []struct {
			Severity, Message, Hint string
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 1 || v.Valid || len(v.Problems) != 1 || v.Problems[0].Hint == "" {
		t.Errorf("validate --json: exit %d, %v, %+v", code, err, v)
	}
	if code, _, errOut := warren(t, "contract", "validate", "-f", ""); code != exitUsage || !strings.Contains(errOut, "no file: pass FILE") {
		t.Errorf("validate without a file: exit %d, %s", code, errOut)
	}
	// -f, as the other commands take a topology file, is the default.
	if code, out, _ := warren(t, "contract", "validate", "-f", f["good.yaml"]); code != 0 || !strings.Contains(out, "is valid") {
		t.Errorf("validate -f: exit %d\n%s", code, out)
	}

	code, out, _ = warren(t, "contract", "ls", f["good.yaml"])
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "TYPE") ||
		!strings.Contains(lines[1], "trip.book") || !strings.Contains(lines[1], "rider") || !strings.HasPrefix(lines[2], "trip.cancel") {
		t.Errorf("ls: exit %d\n%s", code, out)
	}
	code, out, _ = warren(t, "--json", "contract", "ls", f["good.yaml"])
	var ls struct {
		Types []struct {
			Type     string `json:"type"`
			Versions []struct {
				Version    int      `json:"contract_version"`
				Deprecated bool     `json:"deprecated"`
				Required   []string `json:"required"`
			} `json:"versions"`
		} `json:"types"`
	}
	if err := json.Unmarshal([]byte(out), &ls); err != nil || code != 0 || len(ls.Types) != 2 ||
		ls.Types[0].Type != "trip.book" || ls.Types[0].Versions[0].Version != 1 || strings.Join(ls.Types[0].Versions[0].Required, ",") != "rider" {
		t.Errorf("ls --json: exit %d, %v, %+v", code, err, ls)
	}
	if code, _, errOut := warren(t, "contract", "ls", f["bad.yaml"]); code != 1 || !strings.Contains(errOut, "bad.yaml has 1 error(s):") {
		t.Errorf("ls bad: exit %d, %s", code, errOut)
	}
}
