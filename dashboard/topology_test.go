package dashboard

import (
	"net/http"
	"strings"
	"testing"
)

func TestTopologyPage(t *testing.T) {
	tp := testTopology(t)
	work := tp.WorkQueues()[0]
	srv := newTestServer(t, Options{Topology: tp, TopologyPath: "topology.yaml"})
	resp, body := get(t, srv.URL+"/topology", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /topology: %s\n%s", resp.Status, body)
	}
	for _, want := range []string{
		"<h1>Topology</h1>", "topology.yaml", "change(s) pending",
		`href="/queues/` + work.Name + `"`,
		"<details><summary>2 derived</summary>", // its .dlq and .quarantine, folded
		`href="/dlq/` + work.DeadLetterQueue + `"`,
		"email.send",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the topology page lacks %s", want)
		}
	}
	// The file is declared nowhere: its queue is to create.
	if !strings.Contains(body, "<td>create</td><td>queue</td><td>"+work.Name+"</td>") {
		t.Errorf("the topology page does not list %s to create", work.Name)
	}
}

func TestTopologyPageWithoutFile(t *testing.T) {
	srv := newTestServer(t, Options{})
	resp, body := get(t, srv.URL+"/topology", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "warren ui -f topology.yaml") || !strings.Contains(body, "<h1>Topology</h1>") {
		t.Errorf("GET /topology without a file: %s, want a page saying to pass -f\n%s", resp.Status, body)
	}
}
