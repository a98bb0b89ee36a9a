package dashboard

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/mgmt"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/topology"
)

func TestQueuePage(t *testing.T) {
	q := brokertest.Queue(t, "work", map[string]any{"x-max-length": int32(1000)})
	// Its dead-letter queue, which the page links to.
	ctx := brokertest.Context(t, 30*time.Second)
	d := broker.NewDeclarer(testkit.Dial(t, "dashboard-queue-page"))
	t.Cleanup(func() {
		_, _ = d.DeleteQueue(context.Background(), q+".dlq", false)
		d.Close(context.Background())
	})
	if err := d.DeclareQueue(ctx, topology.Queue{Name: q + ".dlq", Durable: true}); err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, Options{})
	resp, body := get(t, srv.URL+"/queues/"+q, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /queues/%s: %s\n%s", q, resp.Status, body)
	}
	for _, want := range []string{"<h1>Queue " + q + "</h1>", "x-max-length=1000", "Consumers", "Rates", `href="/dlq/` + q + `.dlq"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the queue page lacks %s", want)
		}
	}
	resp, _ = get(t, srv.URL+"/queues/"+q+".no-such-queue", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET a queue that does not exist: %s, want 404", resp.Status)
	}
}

// TestQueuePauseFromThePage: the queue page pauses and resumes the queue
// for every worker (its marker queue), read-only hides the button and
// refuses the POST, and a queue that does not exist is not paused.
func TestQueuePauseFromThePage(t *testing.T) {
	q := brokertest.Queue(t, "pause", nil)
	t.Cleanup(func() {
		conn := testkit.Dial(t, "dashboard-pause")
		_ = broker.SetPaused(context.Background(), conn, q, false)
	})
	srv := newTestServer(t, Options{})
	paused := func() bool {
		t.Helper()
		conn := testkit.Dial(t, "dashboard-pause")
		p, err := broker.IsPaused(brokertest.Context(t, 30*time.Second), conn, q)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	code, body := post(t, srv.URL+"/queues/"+q+"/pause", nil)
	if code != http.StatusOK || !strings.Contains(body, "<strong class=\"warn\">paused</strong>") || !strings.Contains(body, ">Resume</button>") {
		t.Fatalf("POST pause: %d, the page after it:\n%s", code, body)
	}
	if !paused() {
		t.Fatal("the queue is not paused on the broker")
	}
	ro := newTestServer(t, Options{ReadOnly: true})
	if _, body := get(t, ro.URL+"/queues/"+q, nil); strings.Contains(body, "Resume</button>") {
		t.Error("read-only: the queue page offers Resume")
	}
	if code, _ := post(t, ro.URL+"/queues/"+q+"/resume", nil); code != http.StatusForbidden {
		t.Errorf("read-only: POST resume answered %d, want 403", code)
	}
	if code, body = post(t, srv.URL+"/queues/"+q+"/resume", nil); code != http.StatusOK || !strings.Contains(body, ">Pause</button>") {
		t.Errorf("POST resume: %d\n%s", code, body)
	}
	if paused() {
		t.Error("still paused after resume")
	}
	if code, _ := post(t, srv.URL+"/queues/"+q+".no-such-queue/pause", nil); code != http.StatusNotFound {
		t.Errorf("pause a queue that does not exist: %d, want 404", code)
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
