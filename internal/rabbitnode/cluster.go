package rabbitnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// Cluster is a RabbitMQ cluster of private nodes on this machine.
type Cluster struct {
	nodes []*Node
}

// StartCluster starts size nodes sharing one Erlang cookie, joins the
// others to the first (rabbitmqctl stop_app, join_cluster, start_app) and
// waits until every node answers. Quorum queues declared on it get a
// member on every node. The options apply to every node. Like Start, it
// fails the test when the cluster cannot form, and the nodes go away when
// the test ends.
func StartCluster(t testing.TB, size int, opts ...Option) *Cluster {
	t.Helper()
	if size < 1 {
		t.Fatalf("rabbitnode: a cluster of %d nodes", size)
	}
	cookie := newCookie()
	c := &Cluster{nodes: make([]*Node, size)}
	for i := range c.nodes {
		nodeOpts := append(slices.Clone(opts), withCookie(cookie), withLabel(fmt.Sprintf("c%d", i+1)))
		if i > 0 {
			// Nodes of a root filesystem find each other through the
			// first node's epmd, which stops with that node, the last
			// to be destroyed.
			nodeOpts = append(nodeOpts, withEpmd(c.nodes[0].epmd))
		}
		n, err := newNode(t.Name(), nodeOpts...)
		if err != nil {
			t.Fatalf("rabbitnode: %v", err)
		}
		t.Cleanup(func() { n.destroy(t) })
		c.nodes[i] = n
	}
	// The nodes start at once: each start is mostly the VM booting.
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.firstBoot()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("rabbitnode: cluster: %v", err)
	}
	// One join at a time: each changes the cluster's membership.
	first := c.nodes[0]
	for _, n := range c.nodes[1:] {
		if err := n.join(first); err != nil {
			t.Fatalf("rabbitnode: cluster: %v", err)
		}
	}
	if got := c.runningNodes(t); len(got) != size {
		t.Fatalf("rabbitnode: cluster: %d of %d nodes running after the joins: %v", len(got), size, got)
	}
	first.logStarted(t)
	return c
}

func (n *Node) join(to *Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*n.opts.startTimeout)
	defer cancel()
	for _, args := range [][]string{{"stop_app"}, {"join_cluster", to.name}, {"start_app"}} {
		if _, err := n.ctl(ctx, args...); err != nil {
			return fmt.Errorf("join %s to %s: %w\n%s", n.name, to.name, err, n.tail())
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.awaitReady(n.proc); err != nil {
		return fmt.Errorf("join %s to %s: %w\n%s", n.name, to.name, err, n.tail())
	}
	return nil
}

// runningNodes asks the first node that answers which nodes of its
// cluster run.
func (c *Cluster) runningNodes(t testing.TB) []string {
	t.Helper()
	var status struct {
		RunningNodes []string `json:"running_nodes"`
	}
	c.ctlJSON(t, &status, "cluster_status", "--formatter", "json")
	return status.RunningNodes
}

// Node returns the i-th node, from 0.
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// Nodes returns the nodes, the first being the one the others joined.
func (c *Cluster) Nodes() []*Node { return slices.Clone(c.nodes) }

// URLs returns the AMQP URL of each node, in order.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.URL()
	}
	return urls
}

// ByName returns the node with the Erlang node name, or nil.
func (c *Cluster) ByName(name string) *Node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// QueueInfo is what the cluster says about a queue of the default virtual
// host (rabbitmqctl list_queues). Leader, Members and Online are set for
// quorum queues.
type QueueInfo struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Messages int      `json:"messages"`
	Leader   string   `json:"leader"`
	Members  nodeList `json:"members"`
	Online   nodeList `json:"online"`
}

// nodeList is a queue's members or online nodes as rabbitmqctl lists them:
// a JSON array for a quorum queue, a string (empty) for a classic one, such
// as the exclusive queues worker pools bind to warren.control.
type nodeList []string

func (l *nodeList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = nil
		if s != "" {
			*l = nodeList{s}
		}
		return nil
	}
	var a []string
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	*l = a
	return nil
}

// Queue returns what a running node of the cluster says about the queue,
// failing the test when the queue is not listed.
func (c *Cluster) Queue(t testing.TB, queue string) QueueInfo {
	t.Helper()
	q, ok := c.lookup(t, queue)
	if !ok {
		t.Fatalf("rabbitnode: no queue %q in the cluster", queue)
	}
	return q
}

// AwaitQueue polls the queue's information until ready accepts it, and
// returns it; it fails the test after a minute. While a quorum queue
// elects a leader, list_queues may not list it at all: such answers are
// skipped.
func (c *Cluster) AwaitQueue(t testing.TB, queue string, ready func(QueueInfo) bool) QueueInfo {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last QueueInfo
	for {
		q, ok := c.lookup(t, queue)
		if ok && ready(q) {
			return q
		}
		if ok {
			last = q
		}
		if time.Now().After(deadline) {
			t.Fatalf("rabbitnode: queue %q not as awaited after a minute; last seen %+v", queue, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) lookup(t testing.TB, queue string) (QueueInfo, bool) {
	t.Helper()
	var qs []QueueInfo
	c.ctlJSON(t, &qs, "list_queues", "-p", "/", "--formatter", "json", "name", "type", "messages", "leader", "members", "online")
	for _, q := range qs {
		if q.Name == queue {
			return q, true
		}
	}
	return QueueInfo{}, false
}

// Leader returns the node where the quorum queue's leader is, failing
// the test for a queue that has none (not a quorum queue). Right after
// the leader's node is lost the answer is that node or none until the
// members have elected another one: use AwaitQueue to wait for that.
func (c *Cluster) Leader(t testing.TB, queue string) *Node {
	t.Helper()
	q := c.Queue(t, queue)
	n := c.ByName(q.Leader)
	if n == nil {
		t.Fatalf("rabbitnode: queue %q (%s) has leader %q, not a node of the cluster", queue, q.Type, q.Leader)
	}
	return n
}

// ctlJSON runs rabbitmqctl on the first node that answers and decodes
// its JSON output into v: nodes may be down in a fault test.
func (c *Cluster) ctlJSON(t testing.TB, v any, args ...string) {
	t.Helper()
	var errs []error
	for _, n := range c.nodes {
		if !n.Running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := n.ctl(ctx, args...)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("rabbitnode: rabbitmqctl %v: %v\n%s", args, err, out)
		}
		return
	}
	t.Fatalf("rabbitnode: no node of the cluster answered rabbitmqctl %v: %v", args, errors.Join(errs...))
}
