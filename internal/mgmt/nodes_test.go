package mgmt

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/internal/brokertest"
)

func TestNodesDecodes(t *testing.T) {
	srv, paths := fake(t, 200, `[{"name":"rabbit@a","running":true,"config_files":["/etc/rabbitmq/rabbitmq.conf"],"uptime":5},
		{"name":"rabbit@b","running":false}]`)
	c := newClient(t, strings.Replace(srv.URL, "http://", "http://ada:pw@", 1), "/")
	nodes, err := c.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Node{{Name: "rabbit@a", Running: true, ConfigFiles: []string{"/etc/rabbitmq/rabbitmq.conf"}}, {Name: "rabbit@b"}}
	if diff := cmp.Diff(want, nodes); diff != "" {
		t.Errorf("Nodes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/api/nodes"}, *paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
}

// TestNodesAgainstBroker: the test broker is one running node.
func TestNodesAgainstBroker(t *testing.T) {
	c := newClient(t, brokertest.ManagementURL(t), "/")
	nodes, err := c.Nodes(brokertest.Context(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || !nodes[0].Running || nodes[0].Name == "" {
		t.Errorf("Nodes = %+v, want one running node with a name", nodes)
	}
}
