package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenmq/warren/internal/brokertest"
)

// warrenAsked runs the CLI in-process with a terminal that answers
// answer, and returns the exit code, the output and what it asked. Tests
// that call it do not run in parallel: it replaces askTerminal.
func warrenAsked(t *testing.T, answer string, args ...string) (code int, stdout, stderr, asked string) {
	t.Helper()
	var q bytes.Buffer
	saved := askTerminal
	askTerminal = func(io.Reader, io.Writer) func(string) (bool, error) {
		return func(question string) (bool, error) {
			q.WriteString(question)
			return answer == "yes", nil
		}
	}
	defer func() { askTerminal = saved }()
	code, stdout, stderr = warren(t, args...)
	return code, stdout, stderr, q.String()
}

func TestDLQReplayRate(t *testing.T) {
	origin := brokertest.Name(t, "work")
	dlq := origin + ".dlq"
	declareQueues(t, origin, dlq)
	parkJobs(t, dlq, origin, 4)
	for _, tc := range []struct {
		rate string
		code int
		left int // jobs left in the dead-letter queue
	}{
		{"0", exitUsage, 4},
		{"-1", exitUsage, 4},
		{"NaN", exitUsage, 4},
		{"fast", exitUsage, 4},
		{"2e9", exitOK, 2},
		{"+Inf", exitOK, 0},
	} {
		t.Run(tc.rate, func(t *testing.T) {
			code, out, errOut := warren(t, "dlq", "replay", dlq, "--yes", "--limit", "2", "--rate", tc.rate)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			if tc.code == exitUsage && !strings.Contains(errOut, "--rate") {
				t.Errorf("the error does not name --rate: %q", errOut)
			}
			if d := brokertest.Depth(t, dlq); d != tc.left {
				t.Errorf("%d jobs left in the dead-letter queue, want %d", d, tc.left)
			}
		})
	}
}

func TestDLQReplayWithoutFilterAsks(t *testing.T) {
	origin := brokertest.Name(t, "work")
	dlq := origin + ".dlq"
	declareQueues(t, origin, dlq)
	parkJobs(t, dlq, origin, 3)

	// No terminal: it refuses, and says what to pass.
	code, _, errOut := warren(t, "dlq", "replay", dlq)
	if code != exitUsage || !strings.Contains(errOut, "--yes") || !strings.Contains(errOut, "filter") {
		t.Fatalf("no terminal: exit %d, %q; want %d and a hint at --yes or a filter", code, errOut, exitUsage)
	}
	// A terminal, answered no.
	code, _, errOut, asked := warrenAsked(t, "no", "dlq", "replay", dlq)
	if code != exitFailure || !strings.Contains(asked, "all 3 job(s)") {
		t.Fatalf("answered no: exit %d, asked %q, %s", code, asked, errOut)
	}
	if d := brokertest.Depth(t, dlq); d != 3 {
		t.Fatalf("%d jobs left after the refusals, want 3", d)
	}
	// A filter or a dry run asks nothing.
	code, _, errOut, asked = warrenAsked(t, "", "dlq", "replay", dlq, "--type", "report.render", "--limit", "1")
	if code != 0 || asked != "" {
		t.Fatalf("with a filter: exit %d, asked %q, %s", code, asked, errOut)
	}
	code, _, errOut, asked = warrenAsked(t, "", "dlq", "replay", dlq, "--dry-run")
	if code != 0 || asked != "" {
		t.Fatalf("dry run: exit %d, asked %q, %s", code, asked, errOut)
	}
	// A terminal, answered yes.
	code, _, errOut, _ = warrenAsked(t, "yes", "dlq", "replay", dlq)
	if code != 0 {
		t.Fatalf("answered yes: exit %d, %s", code, errOut)
	}
	if d := brokertest.Depth(t, dlq); d != 0 {
		t.Errorf("%d jobs left, want 0", d)
	}
}

func TestDLQExportRefusesToOverwrite(t *testing.T) {
	origin := brokertest.Name(t, "work")
	dlq := origin + ".dlq"
	declareQueues(t, origin, dlq)
	parked := parkJobs(t, dlq, origin, 2)
	dir := t.TempDir()
	path := filepath.Join(dir, "evidence.ndjson")
	const before = "earlier evidence\n"
	if err := os.WriteFile(path, []byte(before), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := warren(t, "dlq", "export", dlq, path)
	if code != exitFailure || !strings.Contains(errOut, "--force") {
		t.Fatalf("export over a file: exit %d, %q; want 1 and a hint at --force\n%s", code, errOut, out)
	}
	if got, _ := os.ReadFile(path); string(got) != before {
		t.Fatalf("the file was changed: %q", got)
	}

	code, _, errOut = warren(t, "dlq", "export", dlq, path, "--force")
	if code != 0 {
		t.Fatalf("--force: exit %d, %s", code, errOut)
	}
	if got := ids(readRecords(t, path)); len(got) != len(parked) {
		t.Errorf("--force wrote %v, want %d records", got, len(parked))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d files, want only the export (no temporary file left)", len(entries))
	}
	if d := brokertest.Depth(t, dlq); d != 2 {
		t.Errorf("export removed jobs: %d left of 2", d)
	}
}

// TestExportCommitDoesNotReplaceAFileCreatedMeanwhile: a file that
// appears under the name during an export is kept.
func TestExportCommitDoesNotReplaceAFileCreatedMeanwhile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.ndjson")
	a, err := createAtomic(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("new\n")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("other\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.commit(); !os.IsExist(unwrapAll(err)) {
		t.Fatalf("commit over a new file: %v, want an error wrapping os.ErrExist", err)
	}
	a.abort()
	if got, _ := os.ReadFile(path); string(got) != "other\n" {
		t.Errorf("the file created meanwhile was replaced: %q", got)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

// TestDLQListSaysWhereItStopped: a list that reads less than the queue
// holds says so and how to read more; --all reads on.
func TestDLQListSaysWhereItStopped(t *testing.T) {
	origin := brokertest.Name(t, "work")
	dlq := origin + ".dlq"
	declareQueues(t, origin, dlq)
	parkJobs(t, dlq, origin, 5)

	code, out, errOut := warren(t, "dlq", "list", dlq, "--scan", "3")
	if code != 0 || !strings.Contains(errOut, "stopped after 3 of the 5 job(s)") || !strings.Contains(errOut, "--all") {
		t.Fatalf("--scan 3: exit %d, stderr %q\n%s", code, errOut, out)
	}
	var res struct {
		Total, Scanned int
		Capped         bool
		Jobs           []dlqJob
	}
	code, out, _ = warren(t, "--json", "dlq", "list", dlq, "--scan", "3")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Total != 5 || res.Scanned != 3 || !res.Capped || len(res.Jobs) != 3 {
		t.Fatalf("--json --scan 3: exit %d, %s", code, out)
	}
	for _, args := range [][]string{{"--all"}, {}} {
		code, out, errOut = warren(t, append([]string{"--json", "dlq", "list", dlq}, args...)...)
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Scanned != 5 || res.Capped || len(res.Jobs) != 5 || errOut != "" {
			t.Fatalf("%v: exit %d, %s%s", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"--scan", "0"}, {"--all", "--scan", "3"}} {
		if code, _, errOut := warren(t, append([]string{"dlq", "list", dlq}, args...)...); code != exitUsage {
			t.Errorf("%v: exit %d, %s; want %d", args, code, errOut, exitUsage)
		}
	}
	if d := brokertest.Depth(t, dlq); d != 5 {
		t.Errorf("list removed jobs: %d left of 5", d)
	}
}
