package rabbitnode

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestClusterQuorumQueueSurvivesLeaderLoss: a quorum queue of a
// three-node cluster has a member on each node, keeps every confirmed
// message when its leader's node is killed, elects a leader elsewhere,
// and takes the node back when it restarts.
func TestClusterQuorumQueueSurvivesLeaderLoss(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3)
	if urls := c.URLs(); len(urls) != 3 || urls[0] == urls[1] || urls[1] == urls[2] {
		t.Fatalf("URLs = %v", urls)
	}

	ch := channel(t, dial(t, c.Node(0).URL()))
	const queue = "orders"
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	info := c.AwaitQueue(t, queue, func(q QueueInfo) bool { return q.Leader != "" })
	var names []string
	for _, n := range c.Nodes() {
		names = append(names, n.Name())
	}
	slices.Sort(names)
	if members := slices.Sorted(slices.Values(info.Members)); info.Type != "quorum" || !slices.Equal(members, names) {
		t.Fatalf("queue %+v: want a quorum queue with a member on each of %v", info, names)
	}

	var want []string
	for i := range 50 {
		want = append(want, fmt.Sprintf("order %d", i))
	}
	publish(t, ch, queue, amqp.Persistent, want...)

	leader := c.Leader(t, queue)
	var survivor *Node
	for _, n := range c.Nodes() {
		if n != leader {
			survivor = n
			break
		}
	}
	leader.Kill(t)

	c.AwaitQueue(t, queue, func(q QueueInfo) bool { return q.Leader != "" && q.Leader != leader.Name() })

	ch = channel(t, dial(t, survivor.URL()))
	if got := drain(t, ch, queue); !slices.Equal(got, want) {
		t.Errorf("after the leader's node was killed the queue holds %d messages %q..., want the %d confirmed ones", len(got), first(got, 3), len(want))
	}

	leader.Restart(t)
	c.AwaitQueue(t, queue, func(q QueueInfo) bool { return len(q.Online) == 3 })
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

func TestNodeListReadsArraysAndStrings(t *testing.T) {
	var qs []QueueInfo
	in := `[{"name":"q","type":"quorum","members":["a@h","b@h"],"online":["a@h"]},{"name":"amq.gen-1","type":"classic","members":"","online":""}]`
	if err := json.Unmarshal([]byte(in), &qs); err != nil {
		t.Fatal(err)
	}
	if len(qs[0].Members) != 2 || len(qs[0].Online) != 1 || qs[1].Members != nil || qs[1].Online != nil {
		t.Errorf("read %+v", qs)
	}
}
