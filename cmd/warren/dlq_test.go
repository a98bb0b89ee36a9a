package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/worker"
)

// fillDLQ parks jobs in the email queue's dead-letter queue: one the
// broker dead-lettered itself (rejected), two a worker refused for good,
// one of a type no handler knows. It returns the dead-letter queue.
func fillDLQ(t *testing.T) (dlq, path string, n names) {
	t.Helper()
	path, n = writeTopology(t)
	if code, out, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	dlq = n.Queue + ".dlq"

	// Rejected by a consumer: RabbitMQ dead-letters it, with x-death.
	if code, out, errOut := warren(t, "publish", "--queue", n.Queue, "--type", "email.send", "--id", "rejected-1", "--data", `{"to":"x@example.com"}`); code != 0 {
		t.Fatalf("publish: %d %s%s", code, out, errOut)
	}
	conn, err := broker.Dial(brokertest.Context(t, 10*time.Second), []string{brokertest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := broker.Consume(brokertest.Context(t, 10*time.Second), conn, n.Queue)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := c.Next(brokertest.Context(t, 10*time.Second))
	if !ok {
		t.Fatal("no delivery")
	}
	if err := d.Reject(); err != nil {
		t.Fatal(err)
	}
	c.Cancel(brokertest.Context(t, 5*time.Second))
	c.Close(brokertest.Context(t, 5*time.Second))

	for _, args := range [][]string{
		{"--type", "email.send", "--id", "perm-1", "--data", `{"to":""}`},
		{"--type", "email.send", "--id", "perm-2", "--data", `{"to":""}`},
		{"--type", "sms.send", "--id", "unknown-1", "--data", `{"to":"+33"}`},
	} {
		if code, out, errOut := warren(t, append([]string{"publish", "--queue", n.Queue}, args...)...); code != 0 {
			t.Fatalf("publish: %d %s%s", code, out, errOut)
		}
	}
	serve(t, path, n)
	testkit.WaitDepth(t, dlq, 4, 20*time.Second)
	return dlq, path, n
}

func TestDLQListAndShow(t *testing.T) {
	dlq, _, n := fillDLQ(t)

	t.Run("list", func(t *testing.T) {
		code, out, errOut := warren(t, "--json", "dlq", "list", dlq)
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		var res struct {
			Version, Scanned, Matched int
			Jobs                      []dlqJob
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if res.Version != 1 || res.Scanned != 4 || res.Matched != 4 || len(res.Jobs) != 4 {
			t.Fatalf("%+v", res)
		}
		byID := map[string]dlqJob{}
		for _, j := range res.Jobs {
			byID[j.ID] = j
		}
		for id, want := range map[string]struct{ class, by, err string }{
			"rejected-1": {"rabbitmq:rejected", "rabbitmq", "dead-lettered by RabbitMQ (rejected)"},
			"perm-1":     {worker.ClassPermanent, "warren", "no recipient"},
			"unknown-1":  {worker.ClassUnknownType, "warren", "no handler"},
		} {
			j := byID[id]
			if j.Class != want.class || j.DeadLetteredBy != want.by || !strings.Contains(j.Error, want.err) || j.Origin.Queue != n.Queue {
				t.Errorf("%s: %+v, want class %s by %s error %q from %s", id, j, want.class, want.by, want.err, n.Queue)
			}
		}
		if p, _ := byID["perm-1"].Payload.(map[string]any); p == nil || p["to"] != "" {
			t.Errorf("payload of perm-1: %#v", byID["perm-1"].Payload)
		}
		if len(byID["rejected-1"].Deaths) != 1 || byID["rejected-1"].Deaths[0].Reason != "rejected" {
			t.Errorf("x-death of rejected-1: %+v", byID["rejected-1"].Deaths)
		}
		if d := brokertest.Depth(t, dlq); d != 4 {
			t.Errorf("listing removed jobs: %d left of 4", d)
		}
	})

	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want int
		}{
			{[]string{"--class", "permanent"}, 2},
			{[]string{"--type", "sms.send"}, 1},
			{[]string{"--error", "recip"}, 2},
			{[]string{"--error", "no (recipient|handler)"}, 3},
			{[]string{"--id", "perm-2,unknown-1"}, 2},
			{[]string{"--newer-than", "1h"}, 4},
			{[]string{"--older-than", "1h"}, 0},
		} {
			code, out, errOut := warren(t, append([]string{"--json", "dlq", "list", dlq}, tc.args...)...)
			var res struct{ Matched int }
			if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Matched != tc.want {
				t.Errorf("%v: exit %d, matched %d, want %d\n%s%s", tc.args, code, res.Matched, tc.want, out, errOut)
			}
		}
	})

	t.Run("group by class", func(t *testing.T) {
		code, out, _ := warren(t, "dlq", "list", dlq, "--group-by", "class")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		for _, want := range []string{`(?m)^ *2\s+permanent\s`, `(?m)^ *1\s+unknown-type\s`, `(?m)^ *1\s+rabbitmq:rejected\s`} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("group-by output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("show", func(t *testing.T) {
		code, out, errOut := warren(t, "dlq", "show", dlq, "perm-1")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		for _, want := range []string{"job perm-1 (type email.send)", "warren-error: no recipient", "warren-error-class: permanent", `"to": ""`} {
			if !strings.Contains(out, want) {
				t.Errorf("show lacks %q:\n%s", want, out)
			}
		}
		if code, _, errOut := warren(t, "dlq", "show", dlq, "nope"); code != 1 || !strings.Contains(errOut, "warren dlq list") {
			t.Errorf("show of a missing id: exit %d, %s", code, errOut)
		}
	})

	t.Run("missing queue", func(t *testing.T) {
		code, _, errOut := warren(t, "dlq", "list", n.Queue+".nope")
		if code != 1 || !strings.Contains(errOut, "<queue>.dlq") {
			t.Errorf("exit %d, %s", code, errOut)
		}
	})
}

func TestDLQReplay(t *testing.T) {
	dlq, _, n := fillDLQ(t)

	// A dry run moves nothing.
	code, out, errOut := warren(t, "dlq", "replay", dlq, "--class", "permanent", "--dry-run")
	if code != 0 || !strings.Contains(out, "would move 2") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	if d := brokertest.Depth(t, dlq); d != 4 {
		t.Fatalf("a dry run moved jobs: %d left of 4", d)
	}

	// The permanent failures go to the other queue, nobody consumes it.
	code, out, errOut = warren(t, "--json", "dlq", "replay", dlq, "--class", "permanent", "--to", n.Other)
	var res struct {
		Total, Skipped int
		Moved          []struct {
			ID, Exchange string
			RoutingKey   string `json:"routing_key"`
		}
		Failed []struct{ ID, Error string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("replay: exit %d\n%s%s", code, out, errOut)
	}
	if res.Total != 4 || len(res.Moved) != 2 || res.Skipped != 2 || len(res.Failed) != 0 {
		t.Errorf("summary %+v", res)
	}
	if d := brokertest.Depth(t, dlq); d != 2 {
		t.Errorf("%d jobs left in the dead-letter queue, want 2", d)
	}
	got := map[string]bool{}
	for range 2 {
		d := brokertest.Get(t, n.Other, 5*time.Second)
		got[d.MessageId] = true
		if _, ok := d.Headers[broker.HeaderAttempt]; ok {
			t.Errorf("%s: attempt header %v, want it reset (absent)", d.MessageId, d.Headers[broker.HeaderAttempt])
		}
		if d.Headers[broker.HeaderReplayCount] != int64(1) || d.Headers[broker.HeaderErrorClass] != worker.ClassPermanent {
			t.Errorf("%s: replay count %v, class %v; want 1 and the history kept", d.MessageId, d.Headers[broker.HeaderReplayCount], d.Headers[broker.HeaderErrorClass])
		}
	}
	if !got["perm-1"] || !got["perm-2"] {
		t.Errorf("replayed %v, want perm-1 and perm-2", got)
	}

	// What stayed is still listed, in order, and the rest replays to its
	// origin: the worker handles the rejected one, the unknown type fails
	// again and comes back to the dead-letter queue, but only after this
	// run, which stops at the count it took at its start.
	code, out, errOut = warren(t, "--json", "dlq", "replay", dlq, "--yes")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Moved) != 2 {
		t.Fatalf("replay to origin: exit %d\n%s%s", code, out, errOut)
	}
	for _, m := range res.Moved {
		if m.Exchange != "" || m.RoutingKey != n.Queue {
			t.Errorf("%s replayed to %q/%q, want its origin, the default exchange and %s", m.ID, m.Exchange, m.RoutingKey, n.Queue)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for brokertest.Depth(t, dlq) != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	code, out, _ = warren(t, "--json", "dlq", "list", dlq)
	var list struct{ Jobs []dlqJob }
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Jobs) != 1 || list.Jobs[0].ID != "unknown-1" {
		t.Fatalf("after replay: %s", out)
	}
	if list.Jobs[0].ReplayCount != 1 {
		t.Errorf("the job that failed again has replay count %d, want 1", list.Jobs[0].ReplayCount)
	}
}

func TestDLQPurge(t *testing.T) {
	dlq, _, _ := fillDLQ(t)

	// Without a terminal and without --yes, nothing is deleted.
	code, _, errOut := warren(t, "dlq", "purge", dlq, "--class", "permanent")
	if code != exitUsage || !strings.Contains(errOut, "--yes") {
		t.Fatalf("purge without --yes: exit %d, %s", code, errOut)
	}
	if d := brokertest.Depth(t, dlq); d != 4 {
		t.Fatalf("%d jobs left, want 4", d)
	}

	code, out, errOut := warren(t, "--json", "dlq", "purge", dlq, "--class", "permanent", "--yes")
	var res struct{ Deleted, Kept int }
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Deleted != 2 || res.Kept != 2 {
		t.Fatalf("purge: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = warren(t, "--json", "dlq", "list", dlq)
	var list struct{ Jobs []dlqJob }
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Jobs) != 2 {
		t.Fatalf("after purge: %s", out)
	}
	for _, j := range list.Jobs {
		if j.Class == worker.ClassPermanent {
			t.Errorf("a permanent failure survived the purge: %s", j.ID)
		}
	}
}
