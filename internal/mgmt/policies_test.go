package mgmt

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/topology"
)

// TestPoliciesAgainstBroker sets a policy on a queue of its own, reads it
// back as the policy in effect on the queue and in Live, and deletes it.
func TestPoliciesAgainstBroker(t *testing.T) {
	q, other := brokertest.Name(t, "pol"), brokertest.Name(t, "plain")
	brokertest.DeleteQueuesAtCleanup(t, q, other)
	ch := brokertest.Channel(t)
	for _, name := range []string{q, other} {
		if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	c := newClient(t, brokertest.ManagementURL(t), "/")
	ctx := brokertest.Context(t, 30*time.Second)
	name := topology.PolicyName(q)
	t.Cleanup(func() { _ = c.DeletePolicy(brokertest.Context(t, 10*time.Second), name) })
	err := c.PutPolicy(ctx, Policy{Name: name, Pattern: "^" + q + "$", ApplyTo: "queues", Priority: 7,
		Definition: map[string]any{"message-ttl": 60000, "overflow": "reject-publish"}})
	if err != nil {
		t.Fatal(err)
	}
	want := topology.LivePolicy{Name: name, Priority: 7, Definition: topology.Table{"message-ttl": int64(60000), "overflow": "reject-publish"}}
	var got map[string]topology.LivePolicy
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, err = c.QueuePolicies(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := got[q]; ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if diff := cmp.Diff(want, got[q]); diff != "" {
		t.Errorf("policy in effect on %s (-want +got):\n%s", q, diff)
	}
	if p, ok := got[other]; ok {
		t.Errorf("queue %s without a policy has %+v", other, p)
	}
	live, err := c.Live(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, live.Policies[q]); diff != "" {
		t.Errorf("Live.Policies[%s] (-want +got):\n%s", q, diff)
	}

	if err := c.DeletePolicy(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePolicy(ctx, name); err != nil {
		t.Errorf("deleting a policy that is gone: %v", err)
	}
	// The broker updates its queues' policies after it answers.
	deadline = time.Now().Add(10 * time.Second)
	for {
		if got, err = c.QueuePolicies(ctx); err != nil {
			t.Fatal(err)
		}
		p, ok := got[q]
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy still in effect 10s after its deletion: %+v", p)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
