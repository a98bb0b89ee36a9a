package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/mgmt"
	"github.com/warrenmq/warren/topology"
)

// TestPolicyRemedy: a tunable added to the file after the queue exists
// is drift a policy can settle. plan and apply print the same remedy,
// with the exact rabbitmqctl command; apply --policies sets the policy,
// after which plan finds no difference and apply no conflict.
func TestPolicyRemedy(t *testing.T) {
	path, n := writeTopology(t)
	mgmtURL := brokertest.ManagementURL(t)
	if code, out, errOut := warren(t, "topology", "apply", "-f", path); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	c, err := mgmt.New(mgmtURL, "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // after the policy's deletion: cleanups run last first
	t.Cleanup(func() { _ = c.DeletePolicy(brokertest.Context(t, 10*time.Second), topology.PolicyName(n.Queue)) })
	editFile(t, path, "    type: quorum\n    retry:", "    type: quorum\n    message_ttl: 30s\n    retry:")

	command := "rabbitmqctl set_policy -p / --apply-to queues --priority 0 warren." + n.Queue +
		" '^" + strings.ReplaceAll(n.Queue, ".", `\.`) + `$' '{"message-ttl":30000}'`
	remedy := []string{
		"update (by policy)  queue     " + n.Queue,
		"    x-message-ttl: (none) on the broker, 30000 in the file (a policy can set \"message-ttl\")",
		"    remedy: set policy warren." + n.Queue + " (message-ttl) on queue " + n.Queue + ", keep the file as it is:",
		"      " + command,
		"      or: warren topology apply -f " + path + " --policies",
	}
	code, planOut, errOut := warren(t, "topology", "plan", "-f", path, "--management-url", mgmtURL)
	if code != exitPartial || !strings.Contains(planOut, strings.Join(remedy, "\n")+"\n") {
		t.Fatalf("plan: exit %d, want 3 and the remedy\n%s\nin:\n%s%s", code, strings.Join(remedy, "\n"), planOut, errOut)
	}
	code, jsonOut, _ := warren(t, "--json", "topology", "plan", "-f", path, "--management-url", mgmtURL)
	var res struct {
		Changes []struct {
			Name string
			Fix  *struct {
				Policy, Command string
				Definition      map[string]any
			}
		}
	}
	if err := json.Unmarshal([]byte(jsonOut), &res); err != nil || code != exitPartial || len(res.Changes) != 1 || res.Changes[0].Fix == nil ||
		res.Changes[0].Fix.Command != command || res.Changes[0].Fix.Policy != "warren."+n.Queue || res.Changes[0].Fix.Definition["message-ttl"] != float64(30000) {
		t.Fatalf("plan --json: exit %d, %v, want the fix:\n%s", code, err, jsonOut)
	}
	code, applyOut, errOut := warren(t, "topology", "apply", "-f", path, "--management-url", mgmtURL)
	if code != 1 || !strings.Contains(applyOut, strings.Join(remedy, "\n")+"\n") {
		t.Fatalf("apply: exit %d, want 1 and plan's remedy\n%s\nin:\n%s%s", code, strings.Join(remedy, "\n"), applyOut, errOut)
	}

	code, out, errOut := warren(t, "topology", "apply", "-f", path, "--policies", "--management-url", mgmtURL)
	if code != 0 || !strings.Contains(out, "set policy warren."+n.Queue+" on queue "+n.Queue+`: {"message-ttl":30000}`) ||
		!strings.Contains(out, "policy warren."+n.Queue+" gives it the file's values") {
		t.Fatalf("apply --policies: exit %d, want 0, the policy set and the queue settled\n%s%s", code, out, errOut)
	}
	code, out, errOut = warren(t, "topology", "plan", "-f", path, "--management-url", mgmtURL)
	if code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("plan after apply --policies: exit %d, want 0 and no changes\n%s%s", code, out, errOut)
	}
	code, out, errOut = warren(t, "topology", "apply", "-f", path, "--management-url", mgmtURL)
	if code != 0 || strings.Contains(out, "remedy") {
		t.Fatalf("apply after apply --policies: exit %d, want 0 and no remedy\n%s%s", code, out, errOut)
	}

	// A recreate has no remedy by policy: apply reports the conflict alone.
	editFile(t, path, "    type: quorum\n    message_ttl: 30s\n", "    type: classic\n    message_ttl: 30s\n")
	code, out, errOut = warren(t, "topology", "apply", "-f", path, "--policies", "--management-url", mgmtURL)
	if code != 1 || strings.Contains(out, "remedy") || !strings.Contains(errOut, "x-queue-type") {
		t.Fatalf("apply of a recreate: exit %d, want 1, the conflict and no remedy\n%s%s", code, out, errOut)
	}
}
