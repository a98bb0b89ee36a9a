package dashboard

import (
	"net/http"
	"strings"
	"testing"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/mgmt"
)

func TestQueuePage(t *testing.T) {
	q := brokertest.Queue(t, "work", map[string]any{"x-max-length": int32(1000)})
	srv := newTestServer(t, Options{})
	resp, body := get(t, srv.URL+"/queues/"+q, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /queues/%s: %s\n%s", q, resp.Status, body)
	}
	for _, want := range []string{"<h1>Queue " + q + "</h1>", "x-max-length=1000", "Consumers", "Rates"} {
		if !strings.Contains(body, want) {
			t.Errorf("the queue page lacks %s", want)
		}
	}
	resp, _ = get(t, srv.URL+"/queues/"+q+".no-such-queue", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET a queue that does not exist: %s, want 404", resp.Status)
	}
}

func TestDrawChart(t *testing.T) {
	// Newest first, as the management API sends them: 10 messages in
	// 10 s, then 30 in the next 10 s.
	samples := []mgmt.Sample{{Sample: 40, Timestamp: 20_000}, {Sample: 10, Timestamp: 10_000}, {Sample: 0, Timestamp: 0}}
	c := drawChart([]series{{Name: "publish", samples: samples}, {Name: "ack"}})
	if c.Empty || c.Max != 3 || len(c.Series) != 2 {
		t.Fatalf("drawChart: empty %v, max %v, %d series; want a chart up to 3/s with 2 series", c.Empty, c.Max, len(c.Series))
	}
	if got, want := c.Series[0].Points, "300.0,110.0 600.0,10.0"; got != want {
		t.Errorf("publish points %q, want %q", got, want)
	}
	if c.Series[0].Last != 3 || c.Series[1].Points != "" {
		t.Errorf("publish last %v, ack points %q; want 3 and none", c.Series[0].Last, c.Series[1].Points)
	}
	if c := drawChart(nil); !c.Empty {
		t.Error("drawChart(nil) is not empty")
	}
}
