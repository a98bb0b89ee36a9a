package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
)

// publishTo publishes one job per payload to queue through the CLI.
func publishTo(t *testing.T, queue string, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if code, out, errOut := warren(t, "publish", "--queue", queue, "--type", "peek.me", "--data", p); code != 0 {
			t.Fatalf("publish: exit %d\n%s%s", code, out, errOut)
		}
	}
}

type queueLs struct {
	Source string
	Queues []struct {
		Name            string
		Exists          bool
		Ready           int64
		Unacked         *int64
		DeadLetterQueue string `json:"dead_letter_queue"`
		DeadLettered    *int64 `json:"dead_lettered"`
		Quarantined     *int64
		Rates           *statsRate
		Paused          bool
	}
}

func TestQueueLs(t *testing.T) {
	path, n := writeTopology(t)
	if code, _, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	publishTo(t, n.Queue, `1`, `2`, `3`)

	find := func(t *testing.T, out string, name string) queueLs {
		t.Helper()
		var res queueLs
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("--json output: %v\n%s", err, out)
		}
		for _, q := range res.Queues {
			if q.Name == name {
				res.Queues = res.Queues[:0]
				res.Queues = append(res.Queues, q)
				return res
			}
		}
		t.Fatalf("queue %s not listed:\n%s", name, out)
		return res
	}

	t.Run("management API", func(t *testing.T) {
		code, out, errOut := warren(t, "--json", "queue", "ls", "-f", path, "--management-url", brokertest.ManagementURL(t))
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		res := find(t, out, n.Queue)
		q := res.Queues[0]
		if res.Source != "management" || !q.Exists || q.Unacked == nil || q.DeadLetterQueue != n.Queue+".dlq" || q.DeadLettered == nil || q.Quarantined == nil {
			t.Errorf("queue ls = %s %+v", res.Source, q)
		}
		code, out, _ = warren(t, "queue", "ls", "-f", path, "--management-url", brokertest.ManagementURL(t))
		if code != 0 || !strings.Contains(out, "QUEUE") || !strings.Contains(out, n.Other) {
			t.Errorf("text output (exit %d):\n%s", code, out)
		}
	})
	t.Run("without the management API", func(t *testing.T) {
		code, out, errOut := warren(t, "--json", "queue", "ls", "-f", path, "--management-url", "http://127.0.0.1:1")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		res := find(t, out, n.Queue)
		q := res.Queues[0]
		if res.Source != "amqp" || !q.Exists || q.Ready != 3 || q.Unacked != nil || q.Rates != nil || q.DeadLettered == nil || *q.DeadLettered != 0 {
			t.Errorf("queue ls = %s %+v", res.Source, q)
		}
		if !strings.Contains(errOut, "passive declare") {
			t.Errorf("stderr does not say where the counts come from: %q", errOut)
		}
		_, out, _ = warren(t, "queue", "ls", "-f", path, "--management-url", "http://127.0.0.1:1")
		if !strings.Contains(out, "need the management API") {
			t.Errorf("text output does not say the rates need the management API:\n%s", out)
		}
		code, _, errOut = warren(t, "queue", "ls", "--management-url", "http://127.0.0.1:1")
		if code == 0 || !strings.Contains(errOut, "-f FILE") {
			t.Errorf("without -f: exit %d, stderr %q; want the advice to pass -f", code, errOut)
		}
	})
}

func TestQueuePeekLeavesJobsInPlace(t *testing.T) {
	q := brokertest.Queue(t, "peek", nil)
	publishTo(t, q, `{"n":1}`, `{"n":2}`, `{"n":3}`)

	var res struct {
		Queue string
		Jobs  []struct {
			ID          string
			Type        string
			Redelivered bool
			Payload     map[string]any
		}
	}
	for i, wantRedelivered := range []bool{false, true} {
		code, out, errOut := warren(t, "--json", "queue", "peek", q, "2")
		if code != 0 {
			t.Fatalf("peek %d: exit %d\n%s%s", i, code, out, errOut)
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Jobs) != 2 || res.Jobs[0].Payload["n"] != 1.0 || res.Jobs[1].Payload["n"] != 2.0 || res.Jobs[0].Type != "peek.me" {
			t.Fatalf("peek %d = %+v, want the first two jobs in order", i, res.Jobs)
		}
		if res.Jobs[0].Redelivered != wantRedelivered {
			t.Errorf("peek %d: redelivered %t, want %t", i, res.Jobs[0].Redelivered, wantRedelivered)
		}
		if got := brokertest.Depth(t, q); got != 3 {
			t.Fatalf("after peek %d the queue holds %d jobs, want 3", i, got)
		}
	}
	code, out, _ := warren(t, "queue", "peek", q)
	if code != 0 || strings.Count(out, "peek.me") != 3 || !strings.Contains(out, `{"n":3}`) {
		t.Errorf("text peek (exit %d):\n%s", code, out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"queue", "peek", q, "0"}, "1 or more"},
		{[]string{"queue", "peek", q, "x"}, "1 or more"},
		{[]string{"queue", "peek", q + ".quarantine"}, "--force"},
		{[]string{"queue", "peek", brokertest.Name(t, "missing")}, "does not exist"},
	} {
		if code, _, errOut := warren(t, c.args...); code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q lacks %q", c.args, code, errOut, c.want)
		}
	}
	if got := brokertest.Depth(t, q); got != 3 {
		t.Fatalf("the queue holds %d jobs, want 3", got)
	}
}

func TestQueuePurgeAndDelete(t *testing.T) {
	q := brokertest.Queue(t, "purge", nil)
	publishTo(t, q, `1`, `2`)

	code, _, errOut := warren(t, "queue", "purge", q)
	if code != exitUsage || !strings.Contains(errOut, "--yes") || !strings.Contains(errOut, "no terminal") {
		t.Errorf("purge without --yes off a terminal: exit %d, stderr %q", code, errOut)
	}
	if got := brokertest.Depth(t, q); got != 2 {
		t.Fatalf("refused purge left %d jobs, want 2", got)
	}
	code, _, errOut = warren(t, "queue", "delete", q)
	if code != exitUsage || !strings.Contains(errOut, "--yes") {
		t.Errorf("delete without --yes off a terminal: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = warren(t, "queue", "delete", q, "--if-empty", "--yes")
	if code == 0 || !strings.Contains(errOut, "not empty") {
		t.Errorf("delete --if-empty of a full queue: exit %d, stderr %q", code, errOut)
	}
	if got := brokertest.Depth(t, q); got != 2 {
		t.Fatalf("refused deletes left %d jobs, want 2", got)
	}

	code, out, errOut := warren(t, "--json", "queue", "purge", q, "--yes")
	if code != 0 || !strings.Contains(out, `"purged": 2`) {
		t.Fatalf("purge --yes: exit %d\n%s%s", code, out, errOut)
	}
	if got := brokertest.Depth(t, q); got != 0 {
		t.Fatalf("purged queue holds %d jobs", got)
	}
	code, out, errOut = warren(t, "queue", "delete", q, "--if-empty", "--yes")
	if code != 0 || !strings.Contains(out, "deleted queue "+q) {
		t.Fatalf("delete --if-empty of an empty queue: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = warren(t, "queue", "delete", q, "--yes")
	if code == 0 || !strings.Contains(errOut, "does not exist") {
		t.Errorf("delete of a deleted queue: exit %d, stderr %q", code, errOut)
	}
}

// TestQueuePauseResume: pause records the state (queue ls shows it, by
// the management API and by passive declare), says so again when asked
// twice, and resume clears it.
func TestQueuePauseResume(t *testing.T) {
	path, n := writeTopology(t)
	if code, _, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	t.Cleanup(func() { warren(t, "queue", "resume", n.Queue) })
	paused := func(mgmt string) bool {
		t.Helper()
		code, out, errOut := warren(t, "--json", "queue", "ls", "-f", path, "--management-url", mgmt)
		if code != 0 {
			t.Fatalf("queue ls: exit %d\n%s%s", code, out, errOut)
		}
		var res queueLs
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		for _, q := range res.Queues {
			if q.Name == n.Queue {
				return q.Paused
			}
		}
		t.Fatalf("queue %s not listed:\n%s", n.Queue, out)
		return false
	}
	code, out, errOut := warren(t, "queue", "pause", n.Queue)
	if code != 0 || !strings.Contains(out, "paused") {
		t.Fatalf("pause: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ = warren(t, "queue", "pause", n.Queue); code != 0 || !strings.Contains(out, "already paused") {
		t.Errorf("pause again: exit %d, %q", code, out)
	}
	// The management API lists a new queue within its statistics interval.
	testkit.WaitFor(t, 30*time.Second, "queue ls to show the queue paused", func() bool { return paused(brokertest.ManagementURL(t)) })
	if !paused("http://127.0.0.1:1") {
		t.Error("queue ls by passive declare does not show the queue paused")
	}
	if code, out, _ = warren(t, "queue", "ls", "-f", path, "--management-url", "http://127.0.0.1:1"); !strings.Contains(out, n.Queue+" (paused)") {
		t.Errorf("text output does not mark the queue paused:\n%s", out)
	}
	code, out, errOut = warren(t, "--json", "queue", "resume", n.Queue)
	var res struct{ Paused, Changed bool }
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res.Paused || !res.Changed {
		t.Fatalf("resume: exit %d (%v)\n%s%s", code, err, out, errOut)
	}
	if paused("http://127.0.0.1:1") {
		t.Error("still paused after resume")
	}
	if code, _, errOut = warren(t, "queue", "pause", "no-such-queue-"+n.Queue); code == 0 || !strings.Contains(errOut, "does not exist") {
		t.Errorf("pause of a missing queue: exit %d, stderr %q", code, errOut)
	}
}
