package topology

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPlanPolicies: a tunable the policy in effect already gives the
// file's value is no difference; an update's Fix is the policy that
// settles it, keeping the keys of a policy in effect and outranking it.
func TestPlanPolicies(t *testing.T) {
	top := parsePlanFile(t, planFile) // emails: x-message-ttl 60000
	lower := func(l *Live) { setQueue(l, "emails", func(q *Queue) { q.Args["x-message-ttl"] = int64(120000) }) }
	tests := []struct {
		name     string
		policies map[string]LivePolicy
		want     []string // summary
		fix      *PolicyFix
	}{
		{
			name: "no policy: update, a policy of our own",
			want: []string{"update queue emails"},
			fix: &PolicyFix{Name: "warren.emails", Queue: "emails", Pattern: "^emails$", ApplyTo: "queues",
				Definition: Table{"message-ttl": int64(60000)}},
		},
		{
			name:     "our policy in effect with the file's value: settled",
			policies: map[string]LivePolicy{"emails": {Name: "warren.emails", Definition: Table{"message-ttl": float64(60000)}}},
		},
		{
			name:     "another policy with the file's value: settled",
			policies: map[string]LivePolicy{"emails": {Name: "ops", Priority: 3, Definition: Table{"message-ttl": int64(60000), "max-length": int64(9)}}},
		},
		{
			name:     "another policy with another value: it is outranked, its keys kept",
			policies: map[string]LivePolicy{"emails": {Name: "ops", Priority: 3, Definition: Table{"message-ttl": int64(90000), "max-length": int64(9)}}},
			want:     []string{"update queue emails"},
			fix: &PolicyFix{Name: "warren.emails", Queue: "emails", Pattern: "^emails$", ApplyTo: "queues", Priority: 4, Replaces: "ops",
				Definition: Table{"message-ttl": int64(60000), "max-length": int64(9)}},
		},
		{
			name:     "a policy on another queue changes nothing",
			policies: map[string]LivePolicy{"reports": {Name: "warren.reports", Definition: Table{"message-ttl": int64(60000)}}},
			want:     []string{"update queue emails"},
			fix: &PolicyFix{Name: "warren.emails", Queue: "emails", Pattern: "^emails$", ApplyTo: "queues",
				Definition: Table{"message-ttl": int64(60000)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := liveOf(top)
			lower(&live)
			live.Policies = tt.policies
			got := Plan(top, live)
			if diff := cmp.Diff(tt.want, summary(got)); diff != "" {
				t.Fatalf("Plan (-want +got):\n%s", diff)
			}
			if tt.fix == nil {
				return
			}
			if diff := cmp.Diff(tt.fix, got[0].Fix); diff != "" {
				t.Errorf("Fix (-want +got):\n%s", diff)
			}
		})
	}

	// A recreate has no fix, even where a policy could make some of it.
	live := liveOf(top)
	lower(&live)
	setQueue(&live, "emails", func(q *Queue) { q.Durable = false })
	if got := Plan(top, live); len(got) != 1 || got[0].Action != ActionRecreate || got[0].Fix != nil || got[0].Remedy("/", "t.yaml") != nil {
		t.Errorf("Plan = %+v, want a recreate without a fix", got)
	}
}

func TestPolicyFixRemedy(t *testing.T) {
	c := Change{Action: ActionUpdate, Kind: EntityQueue, Name: "it's.q",
		Fix: policyFix("it's.q", []Diff{{Attribute: "x-max-length", Want: int64(10), Policy: "max-length"}},
			&LivePolicy{Name: "ops", Priority: 0, Definition: Table{"overflow": "reject-publish"}})}
	want := []string{
		"remedy: set policy warren.it's.q (max-length, overflow) on queue it's.q, keep the file as it is:",
		`  rabbitmqctl set_policy -p my/vhost --apply-to queues --priority 1 'warren.it'\''s.q' '^it'\''s\.q$' '{"max-length":10,"overflow":"reject-publish"}'`,
		"  or: warren topology apply -f 'my topology.yaml' --policies",
		"  it outranks policy ops, now in effect on the queue, and keeps its keys",
	}
	if diff := cmp.Diff(want, c.Remedy("my/vhost", "my topology.yaml")); diff != "" {
		t.Errorf("Remedy (-want +got):\n%s", diff)
	}
	if got := (PolicyFix{Name: "warren.a", Pattern: "^a$", ApplyTo: "queues", Definition: Table{}}).Command("/"); !strings.HasPrefix(got, "rabbitmqctl set_policy -p / ") {
		t.Errorf("Command = %s", got)
	}
}
