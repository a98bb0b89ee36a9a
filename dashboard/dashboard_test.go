package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/topology"
)

func newTestServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	if opts.URLs == nil {
		opts.URLs = []string{brokertest.URL(t)}
	}
	if opts.ManagementURL == "" {
		opts.ManagementURL = brokertest.ManagementURL(t)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return srv
}

func TestOverviewServes(t *testing.T) {
	srv := newTestServer(t, Options{})
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{{}, {URLs: []string{"amqp://x/"}, Prefix: "ui/"}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) = nil error", o)
		}
	}
}

// testTopology parses a topology with unique names, declared nowhere.
func testTopology(t *testing.T) *topology.Topology {
	t.Helper()
	ex, q := brokertest.Name(t, "jobs"), brokertest.Name(t, "emails")
	tp, err := topology.Parse("topology.yaml", []byte(`
exchanges:
  `+ex+`:
    type: direct
queues:
  `+q+`:
    type: quorum
bindings:
  - exchange: `+ex+`
    queue: `+q+`
    routing_key: email.send
`))
	if err != nil {
		t.Fatal(err)
	}
	return tp
}
