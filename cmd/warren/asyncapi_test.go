package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// asyncapiCLI runs warren asyncapi without a config file or WARREN_TOPOLOGY.
func asyncapiCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("WARREN_CONFIG", filepath.Join(t.TempDir(), "none.yaml"))
	t.Setenv("WARREN_TOPOLOGY", "")
	return cli(t, append([]string{"asyncapi"}, args...)...)
}

const taxiTopologyFile = "../../examples/taxi/topology.yaml"

// The committed document is what the command prints for the taxi example.
func TestAsyncAPIPrintsTaxiDocument(t *testing.T) {
	want, err := os.ReadFile("../../docs/asyncapi/taxi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := asyncapiCLI(t, "-f", taxiTopologyFile)
	if code != 0 || out != string(want) {
		t.Errorf("exit %d, stderr %q; stdout equals docs/asyncapi/taxi.yaml: %v (regenerate it with make asyncapi)", code, errOut, out == string(want))
	}
}

func TestAsyncAPIOutputFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "taxi.json")
	code, stdout, errOut := asyncapiCLI(t, "-f", taxiTopologyFile, "-o", out, "--format", "json",
		"--title", "Taxi", "--version", "2.1.0", "--server", "prod=amqps://ops:pw-not-written@rabbit.example:5671/taxi")
	if code != 0 || !strings.Contains(stdout, "wrote the AsyncAPI 3.0.0 document of "+taxiTopologyFile+" (9 job type(s)) to "+out) {
		t.Fatalf("exit %d\n%s%s", code, stdout, errOut)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		AsyncAPI string `json:"asyncapi"`
		Info     struct{ Title, Version string }
		Servers  map[string]struct{ Host, Protocol, Pathname string }
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if doc.AsyncAPI != "3.0.0" || doc.Info.Title != "Taxi" || doc.Info.Version != "2.1.0" ||
		doc.Servers["prod"].Host != "rabbit.example:5671" || doc.Servers["prod"].Protocol != "amqps" || doc.Servers["prod"].Pathname != "/taxi" {
		t.Errorf("document %+v", doc)
	}
	if strings.Contains(string(data), "pw-not-written") {
		t.Error("the server's password is in the document")
	}

	// --json: a summary in warren's style.
	args := []string{"asyncapi", "--json", "-f", taxiTopologyFile, "-o", filepath.Join(dir, "taxi.yaml")}
	code, stdout, errOut = asyncapiCLI(t, args[1:]...)
	if code != 0 {
		t.Fatalf("--json: exit %d\n%s%s", code, stdout, errOut)
	}
	checkJSONStyle(t, args, stdout)
	var sum struct {
		Output, Format string
		JobTypes       int `json:"job_types"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum.Format != "yaml" || sum.JobTypes != 9 || sum.Output != args[len(args)-1] {
		t.Errorf("summary %+v, %v", sum, err)
	}
}

func TestAsyncAPIJSONToStdout(t *testing.T) {
	code, stdout, errOut := asyncapiCLI(t, "--json", "-f", taxiTopologyFile)
	var doc map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &doc) != nil || doc["asyncapi"] != "3.0.0" {
		t.Errorf("exit %d, %s\n%.200s", code, errOut, stdout)
	}
}

func TestAsyncAPIWarnings(t *testing.T) {
	code, _, errOut := asyncapiCLI(t, "-f", "../../contract/asyncapi/testdata/rich/topology.yaml", "-o", filepath.Join(t.TempDir(), "rich.yaml"))
	if code != 0 || !strings.Contains(errOut, `warning: contract for job type "archived.thing", which no route sends anywhere`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestAsyncAPIErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(broken, []byte("exchanges:\n  x: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "no topology file: pass -f FILE"},
		{[]string{"-f", taxiTopologyFile, "--format", "xml"}, exitUsage, `--format "xml": use yaml or json`},
		{[]string{"-f", taxiTopologyFile, "--json", "--format", "yaml"}, exitUsage, "--json prints JSON"},
		{[]string{"-f", taxiTopologyFile, "--server", "http://ops:pw@host/"}, exitUsage, `server "http://host/"`},
		{[]string{"-f", "../../examples/taxi/contracts/taxi.yaml"}, exitFailure, "is a contracts file: pass the topology file that includes it"},
		{[]string{"-f", broken}, exitFailure, `exchange "x" has no type`},
		{[]string{"-f", filepath.Join(dir, "missing.yaml")}, exitFailure, "no such file"},
	} {
		code, stdout, errOut := asyncapiCLI(t, tc.args...)
		// With --json, the error is a JSON document on stdout too.
		wantOut := stdout == "" || slices.Contains(tc.args, "--json") && strings.Contains(stdout, `"kind": "usage"`)
		if code != tc.code || !strings.Contains(errOut, tc.want) || !wantOut || strings.Contains(errOut, "pw@") {
			t.Errorf("asyncapi %v: exit %d (want %d), stdout %q, stderr %q; want %q", tc.args, code, tc.code, stdout, errOut, tc.want)
		}
	}
}
