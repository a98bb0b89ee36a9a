package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest"
)

// planOutput is plan's --json output.
type planOutput struct {
	Version int
	Pending int
	Changes []struct {
		Action, Kind, Name, Details string
		Derived                     bool
		Diffs                       []struct {
			Attribute    string
			Broker, File any
			Policy       string
		}
	}
}

func runPlan(t *testing.T, path string) (int, planOutput) {
	t.Helper()
	code, out, errOut := warren(t, "--json", "topology", "plan", "-f", path, "--management-url", brokertest.ManagementURL(t))
	var res planOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("plan --json: exit %d, output is not JSON (%v):\n%s%s", code, err, out, errOut)
	}
	if res.Version != 1 {
		t.Errorf("plan --json version %d, want 1", res.Version)
	}
	return code, res
}

// editFile rewrites the topology file at path with each old→new replacement,
// failing when one does not match.
func editFile(t *testing.T, path string, pairs ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(text, pairs[i]) {
			t.Fatalf("editFile: %q not in the file:\n%s", pairs[i], text)
		}
		text = strings.Replace(text, pairs[i], pairs[i+1], 1)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPlanAfterApply(t *testing.T) {
	path, n := writeTopology(t)
	if code, out, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut := warren(t, "topology", "plan", "-f", path, "--management-url", brokertest.ManagementURL(t))
	if code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("plan right after apply: exit %d, want 0 and no changes\n%s%s", code, out, errOut)
	}
	if code, res := runPlan(t, path); code != 0 || len(res.Changes) != 0 || res.Pending != 0 {
		t.Fatalf("plan --json right after apply: exit %d, %+v", code, res)
	}

	// A binding someone added to the file's exchange is an extra: reported,
	// but nothing to do.
	ch := brokertest.Channel(t)
	if err := ch.QueueBind(n.Other, "by.hand", n.Exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	code, res := runPlan(t, path)
	if code != 0 || len(res.Changes) != 1 || res.Changes[0].Action != "extra" || res.Changes[0].Kind != "binding" ||
		!strings.Contains(res.Changes[0].Name, "by.hand") {
		t.Fatalf("plan with an extra binding: exit %d, %+v; want exit 0 and the extra", code, res)
	}

	// Add a queue, change a TTL (which the queue lacks: a policy can set
	// it) and a queue's type.
	added := brokertest.Name(t, "added")
	brokertest.DeleteQueuesAtCleanup(t, added, added+".dlq", added+".quarantine")
	editFile(t, path,
		"    type: quorum\n    retry:", "    type: quorum\n    message_ttl: 30s\n    retry:",
		"    type: classic\n    max_priority: 5\n", "    type: quorum\n  "+added+":\n    type: classic\n")

	code, res = runPlan(t, path)
	if code != exitPartial {
		t.Fatalf("plan of a changed file: exit %d, want 3 (drift): %+v", code, res)
	}
	got := map[string]string{}
	for _, c := range res.Changes {
		if c.Kind == "queue" {
			got[c.Name] = c.Action
		}
	}
	want := map[string]string{
		added:            "create",
		added + ".dlq":   "create",
		n.Queue:          "update",
		n.Other:          "recreate",
		n.Other + ".dlq": "recreate", // the dead-letter queue takes its queue's type
	}
	for name, action := range want {
		if got[name] != action {
			t.Errorf("queue %s: action %q, want %q (all: %+v)", name, got[name], action, res.Changes)
		}
	}
	for _, c := range res.Changes {
		if c.Name == n.Queue && (len(c.Diffs) != 1 || c.Diffs[0].Attribute != "x-message-ttl" || c.Diffs[0].File != 30000.0 ||
			c.Diffs[0].Broker != nil || c.Diffs[0].Policy != "message-ttl") {
			t.Errorf("TTL change: %+v", c)
		}
	}

	code, out, _ = warren(t, "topology", "plan", "-f", path, "--management-url", brokertest.ManagementURL(t))
	for _, w := range []string{"create              queue     " + added, "update (by policy)  queue     " + n.Queue,
		"needs recreate      queue     " + n.Other, `type: "classic" on the broker, "quorum" in the file`} {
		if !strings.Contains(out, w) {
			t.Errorf("plan output lacks %q:\n%s", w, out)
		}
	}
	if code != exitPartial {
		t.Errorf("plan: exit %d, want 3 (drift)", code)
	}
}

func TestPlanManagementErrors(t *testing.T) {
	path, _ := writeTopology(t)
	const secret = "hunter2-Secret"

	code, _, errOut := warren(t, "topology", "plan", "-f", path, "--management-url", "http://guest:"+secret+"@127.0.0.1:1")
	if code != 1 || !strings.Contains(errOut, "rabbitmq-plugins enable rabbitmq_management") || !strings.Contains(errOut, "--management-url") {
		t.Errorf("closed port: exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(errOut, secret) {
		t.Errorf("stderr shows the password: %s", errOut)
	}

	t.Setenv("WARREN_MANAGEMENT_URL", "http://127.0.0.1:1")
	code, _, errOut = warren(t, "stats")
	if code != 1 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("WARREN_MANAGEMENT_URL is not used: exit %d, stderr %q", code, errOut)
	}
}

// TestManagementURLOfAnotherNode: a broker URL on another port than 5672
// is another node, whose management API is not on 15672; the commands
// that read the management API refuse to guess rather than read another
// broker's (the shared one's).
func TestManagementURLOfAnotherNode(t *testing.T) {
	path, _ := writeTopology(t)
	t.Setenv("WARREN_MANAGEMENT_URL", "")
	for _, args := range [][]string{
		{"topology", "plan", "-f", path},
		{"stats", "-f", path},
	} {
		t.Run(args[0], func(t *testing.T) {
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			code := run(ctx, append([]string{"--url", "amqp://guest:hunter2@127.0.0.1:5801/"}, args...), &out, &errb)
			errOut := errb.String()
			if code != 1 {
				t.Errorf("exit %d, want 1\n%s%s", code, out.String(), errOut)
			}
			for _, want := range []string{"5801", "--management-url", "WARREN_MANAGEMENT_URL"} {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr does not say %q: %q", want, errOut)
				}
			}
			if strings.Contains(errOut, "hunter2") {
				t.Errorf("stderr shows the password: %s", errOut)
			}
		})
	}
}

func TestExport(t *testing.T) {
	path, n := writeTopology(t)
	out := filepath.Join(t.TempDir(), "definitions.json")
	code, stdout, errOut := warren(t, "topology", "export", "-f", path, "-o", out)
	if code != 0 || !strings.Contains(stdout, out) {
		t.Fatalf("export -o: exit %d\n%s%s", code, stdout, errOut)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	code, direct, _ := warren(t, "topology", "export", "-f", path)
	if code != 0 || direct != string(data) {
		t.Errorf("export to stdout (exit %d) differs from export -o", code)
	}

	var defs struct {
		Exchanges []map[string]any
		Queues    []map[string]any
		Bindings  []map[string]any
	}
	if err := json.Unmarshal(data, &defs); err != nil {
		t.Fatalf("export is not JSON: %v", err)
	}
	find := func(list []map[string]any, key, value string) map[string]any {
		for _, e := range list {
			if e[key] == value {
				return e
			}
		}
		t.Fatalf("no entry with %s %q", key, value)
		return nil
	}
	q := find(defs.Queues, "name", n.Queue)
	if q["vhost"] != "/" || q["durable"] != true || q["arguments"].(map[string]any)["x-queue-type"] != "quorum" {
		t.Errorf("queue %v", q)
	}
	find(defs.Queues, "name", n.Queue+".dlq")
	find(defs.Queues, "name", "warren.delay.00")
	find(defs.Exchanges, "name", n.Exchange)
	if b := find(defs.Bindings, "destination", n.Other); b["source"] != n.Exchange || b["destination_type"] != "queue" || b["routing_key"] != "report.render" {
		t.Errorf("binding %v", b)
	}
}
