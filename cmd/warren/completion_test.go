package main

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest"
)

// complete runs the shell's completion request for args (the last one is
// the word being completed) and returns the candidates.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	code, out, errOut := warren(t, append([]string{"__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %v: exit %d\n%s%s", args, code, out, errOut)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" || strings.HasPrefix(line, ":") {
			continue // the directive
		}
		got = append(got, line)
	}
	return got
}

func TestCompletionJobTypesFromTheTopology(t *testing.T) {
	t.Setenv("WARREN_CONFIG", t.TempDir()+"/none.yaml")
	path, _ := writeTopology(t)
	for _, spelling := range [][]string{{"job", "publish"}, {"publish"}, {"job", "call"}} {
		got := complete(t, append(spelling, "-f", path, "--type", "")...)
		if !slices.Equal(got, []string{"email.send", "report.render"}) {
			t.Errorf("%v --type <Tab> = %q, want the topology's job types", spelling, got)
		}
	}
	if got := complete(t, "job", "publish", "-f", path, "--type", "rep"); !slices.Equal(got, []string{"report.render"}) {
		t.Errorf("--type rep<Tab> = %q, want [report.render]", got)
	}
	if got := complete(t, "job", "publish", "-f", path, "--queue", ""); len(got) != 2 {
		t.Errorf("--queue <Tab> = %q, want the file's two work queues (no dead-letter or quarantine queues)", got)
	}
	// No file: no types, and no error either.
	t.Setenv("WARREN_TOPOLOGY", "")
	if got := complete(t, "job", "publish", "--type", ""); len(got) != 0 {
		t.Errorf("--type <Tab> without a topology = %q, want nothing", got)
	}
}

func TestCompletionQueueNamesFromTheBroker(t *testing.T) {
	t.Setenv("WARREN_CONFIG", t.TempDir()+"/none.yaml")
	t.Setenv("WARREN_MANAGEMENT_URL", brokertest.ManagementURL(t))
	work := brokertest.Queue(t, "complete", nil)
	dead := brokertest.Queue(t, "complete-dead", nil) + ".dlq"
	if _, err := brokertest.Channel(t).QueueDeclare(dead, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	brokertest.DeleteQueuesAtCleanup(t, dead)

	// The management API lists a new queue within a few seconds.
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := complete(t, "queue", "purge", work[:len(work)-2])
		if slices.Contains(got, work) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue purge <Tab> = %q, never listed %s", got, work)
		}
		time.Sleep(250 * time.Millisecond)
	}
	got := complete(t, "dlq", "list", "")
	if !slices.Contains(got, dead) || slices.Contains(got, work) {
		t.Errorf("dlq list <Tab> lists %d queues; want %s among them and not %s", len(got), dead, work)
	}
	for _, q := range got {
		if !strings.HasSuffix(q, ".dlq") && q != "warren.delay.unroutable" {
			t.Errorf("dlq list <Tab> offers %s, which is not a dead-letter queue", q)
		}
	}
	// A second argument gets no queue names.
	if got := complete(t, "queue", "peek", work, ""); len(got) != 0 {
		t.Errorf("queue peek %s <Tab> = %q, want nothing", work, got)
	}
}

func TestCompletionWithoutABrokerOffersNothing(t *testing.T) {
	t.Setenv("WARREN_CONFIG", t.TempDir()+"/none.yaml")
	t.Setenv("WARREN_MANAGEMENT_URL", "http://127.0.0.1:1")
	if got := complete(t, "queue", "purge", ""); len(got) != 0 {
		t.Errorf("queue purge <Tab> with no management API = %q, want nothing", got)
	}
}

// TestBrokenConfigStopsNeitherVersionNorCompletion: commands that need
// no broker work whatever the config file holds.
func TestBrokenConfigStopsNeitherVersionNorCompletion(t *testing.T) {
	path := t.TempDir() + "/config.yaml"
	if err := os.WriteFile(path, []byte("contexts: [not, a, map\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WARREN_CONFIG", path)
	for _, args := range [][]string{{"version"}, {"completion", "bash"}} {
		if code, _, errOut := warren(t, args...); code != 0 {
			t.Errorf("%v with a broken config file: exit %d, %s", args, code, errOut)
		}
	}
	if code, _, _ := warren(t, "queue", "ls"); code == 0 {
		t.Error("queue ls with a broken config file succeeded: the file should have been refused")
	}
}
