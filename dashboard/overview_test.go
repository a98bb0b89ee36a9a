package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// countingManagement is a proxy to the test broker's management API that
// records the paths asked of it.
type countingManagement struct {
	URL   string
	mu    sync.Mutex
	paths []string
}

func newCountingManagement(t *testing.T) *countingManagement {
	t.Helper()
	target, err := url.Parse(brokertest.ManagementURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := &countingManagement{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.paths = append(c.paths, r.URL.RequestURI())
		c.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	u.User = target.User
	c.URL = u.String()
	return c
}

// take returns the paths asked since the last take.
func (c *countingManagement) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.paths
	c.paths = nil
	return p
}

func publish(t *testing.T, queue string, n int) {
	t.Helper()
	ch := brokertest.Channel(t)
	for range n {
		if err := ch.Publish("", queue, false, false, amqp.Publishing{Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
}

type overviewAnswer struct {
	Queues []struct {
		Name            string `json:"name"`
		Exists          bool   `json:"exists"`
		Ready           int64  `json:"ready"`
		DeadLetterQueue string `json:"dead_letter_queue"`
		DeadLettered    *int64 `json:"dead_lettered"`
	} `json:"queues"`
	Delay struct {
		Declared bool `json:"declared"`
	} `json:"delay"`
}

func TestOverviewCountsInOneManagementCall(t *testing.T) {
	work := brokertest.Queue(t, "emails", nil)
	dlq := work + ".dlq"
	if _, err := brokertest.Channel(t).QueueDeclare(dlq, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	brokertest.DeleteQueuesAtCleanup(t, dlq)
	publish(t, work, 3)
	publish(t, dlq, 2)

	m := newCountingManagement(t)
	srv := newTestServer(t, Options{ManagementURL: m.URL})
	deadline := time.Now().Add(30 * time.Second) // the API samples every 5 s
	for {
		m.take()
		resp, body := get(t, srv.URL+"/api/overview", nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET /api/overview: %s %s: %s", resp.Status, resp.Header.Get("Content-Type"), body)
		}
		if paths := m.take(); len(paths) != 1 || !strings.HasPrefix(paths[0], "/api/queues/%2F?columns=") {
			t.Fatalf("one refresh asked the management API %v, want one GET /api/queues/%%2F?columns=…", paths)
		}
		var a overviewAnswer
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatal(err)
		}
		var got *int64
		var ready int64
		for _, q := range a.Queues {
			if q.Name == dlq {
				t.Errorf("the dead-letter queue %s has a row of its own; want it on %s's", dlq, work)
			}
			if q.Name == work {
				got, ready = q.DeadLettered, q.Ready
			}
		}
		if got != nil && *got == 2 && ready == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: ready %d, dead-lettered %v; want 3 and 2", work, ready, got)
		}
		time.Sleep(time.Second)
	}

	resp, body := get(t, srv.URL+"/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s", resp.Status)
	}
	for _, want := range []string{`href="/queues/` + work + `"`, `href="/dlq/` + dlq + `"`, "<h1>Overview</h1>", "running", "reachable"} {
		if !strings.Contains(body, want) {
			t.Errorf("the overview lacks %s", want)
		}
	}
	if strings.Contains(body, "guest:guest@") {
		t.Error("the overview shows the management API's password")
	}
}

func TestOverviewListsTheTopologysQueues(t *testing.T) {
	tp := testTopology(t)
	srv := newTestServer(t, Options{Topology: tp, TopologyPath: "topology.yaml"})
	resp, body := get(t, srv.URL+"/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s", resp.Status)
	}
	for _, q := range tp.WorkQueues() {
		if !strings.Contains(body, `data-queue="`+q.Name+`"`) {
			t.Errorf("the overview lacks the file's queue %s", q.Name)
		}
	}
	if !strings.Contains(body, "missing on the broker") {
		t.Error("the overview does not say the file's queues are missing on the broker")
	}
}

// A queue whose workers' circuit breaker is open says so on the overview:
// the pools consuming its breaker marker are counted.
func TestOverviewShowsOpenBreakers(t *testing.T) {
	work := brokertest.Queue(t, "reports", nil)
	marker := broker.BreakerMarker(work)
	ch := brokertest.Channel(t)
	if _, err := ch.QueueDeclare(marker, true, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	brokertest.DeleteQueuesAtCleanup(t, marker)
	for i := range 2 { // two pools with their breaker open
		if _, err := brokertest.Channel(t).Consume(marker, fmt.Sprintf("pool-%d", i), false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	srv := newTestServer(t, Options{})
	deadline := time.Now().Add(30 * time.Second) // the API samples every 5 s
	for {
		resp, body := get(t, srv.URL+"/", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /: %s", resp.Status)
		}
		if strings.Contains(body, "breaker open in 2 pools") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overview does not show %s's open breakers:\n%s", work, body)
		}
		time.Sleep(time.Second)
	}
}
