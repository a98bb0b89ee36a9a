package dashboard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/browsertest"
	"github.com/warrenmq/warren/topology"
)

// The world of the end-to-end scenarios (e2e_test.go) and the
// screenshots: a virtual host of the test's own, with a work queue
// "jobs", its dead-letter queue "jobs.dlq" and jobs parked there by a
// worker. Every job is accounted for after each action (the ledger): in
// the dead-letter queue, in the work queue, or deleted, and never twice.

// worldJob is a job put in jobs.dlq as a worker parks one that failed.
type worldJob struct {
	typ, err string
}

// The jobs of every scenario: two groups by error.
var parkedJobs = []worldJob{
	{"email.send", "smtp timeout"}, {"email.send", "smtp timeout"}, {"email.send", "smtp timeout"},
	{"report.render", "template missing"}, {"report.render", "template missing"},
}

// dlqWorld is a private virtual host with jobs parked, and a dashboard
// on it.
type dlqWorld struct {
	t         *testing.T
	srv       *httptest.Server // a writable dashboard without a token
	amqpURL   string
	mgmtURL   string
	topo      *topology.Topology
	conn      *broker.Conn
	work, dlq string
	ids       map[string]worldJob // every job parked, by id
}

// newDLQWorld makes a virtual host and a user of its own (so the
// dashboard sees only the test's queues), declares jobs and jobs.dlq from
// a topology, parks parkedJobs in jobs.dlq and serves a dashboard on it.
func newDLQWorld(t *testing.T) *dlqWorld {
	t.Helper()
	vhost := brokertest.Vhost(t)
	const password = "dashboard-e2e"
	user := brokertest.User(t, password, vhost, brokertest.Permissions{Configure: ".*", Write: ".*", Read: ".*"}, "management")
	amqpURL := brokertest.URLFor(t, user, password, vhost)
	mu, err := url.Parse(brokertest.ManagementURL(t))
	if err != nil {
		t.Fatal(err)
	}
	mu.User = url.UserPassword(user, password)

	topo, err := topology.Parse("e2e.yaml", []byte("queues:\n  jobs: {type: classic}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := brokertest.Context(t, 2*time.Minute)
	conn, err := broker.Dial(ctx, []string{amqpURL}, broker.WithName(brokertest.ConnName(t, "e2e")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	d := broker.NewDeclarer(conn)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		t.Fatal(err)
	}
	_ = d.Close(ctx)

	w := &dlqWorld{t: t, conn: conn, amqpURL: amqpURL, mgmtURL: mu.String(), topo: topo, work: "jobs", dlq: topology.DeadLetterQueueName("jobs"), ids: map[string]worldJob{}}
	snd, err := broker.NewSender(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close(ctx)
	now := time.Now()
	for i, p := range parkedJobs {
		env, err := broker.NewEnvelope(broker.Job{Type: p.typ, Payload: map[string]int{"n": i}})
		if err != nil {
			t.Fatal(err)
		}
		env.Attempt = 3
		env.Failure = &broker.Failure{Error: p.err, Class: "error", FirstFailedAt: now, FailedAt: now,
			Origin: broker.Origin{RoutingKey: w.work, Queue: w.work}}
		c, err := snd.Send(ctx, broker.KindDeadLetter, env, "", w.dlq)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		w.ids[env.ID] = p
	}

	w.srv = w.serve(Options{})
	return w
}

// serve serves another dashboard with opts on the world.
func (w *dlqWorld) serve(opts Options) *httptest.Server {
	w.t.Helper()
	opts.URLs = []string{w.amqpURL}
	opts.ManagementURL = w.mgmtURL
	opts.Topology = w.topo
	return newTestServer(w.t, opts)
}

// ledger reads both queues (without removing anything) and checks that
// every job parked is in exactly one of them or among deleted; it
// returns the ids in each queue.
func (w *dlqWorld) ledger(deleted ...string) (inDLQ, inWork []string) {
	w.t.Helper()
	read := func(q string) []string {
		var ids []string
		ctx := brokertest.Context(w.t, time.Minute)
		if _, err := deadletter.Browse(ctx, w.conn, q, func(e deadletter.Entry) bool {
			ids = append(ids, e.Envelope.ID)
			return true
		}); err != nil {
			w.t.Fatalf("ledger: read %s: %v", q, err)
		}
		sort.Strings(ids)
		return ids
	}
	inDLQ, inWork = read(w.dlq), read(w.work)
	seen := map[string]int{}
	for _, id := range slices.Concat(inDLQ, inWork, deleted) {
		seen[id]++
	}
	for id := range w.ids {
		if seen[id] != 1 {
			w.t.Errorf("ledger: job %s (%v) is in %d places (dead letters %d, work queue %d, deleted %d), want exactly one",
				id, w.ids[id], seen[id], count(inDLQ, id), count(inWork, id), count(deleted, id))
		}
		delete(seen, id)
	}
	for id := range seen {
		w.t.Errorf("ledger: job %s was never parked", id)
	}
	return inDLQ, inWork
}

func count(list []string, s string) (n int) {
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// idsOf returns the ids parked with type typ.
func (w *dlqWorld) idsOf(typ string) []string {
	var ids []string
	for id, p := range w.ids {
		if p.typ == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// openDLQ goes from srv's list of dead-letter queues to jobs.dlq's page
// and returns its URL.
func (w *dlqWorld) openDLQ(b *browsertest.Browser, srv *httptest.Server) string {
	w.t.Helper()
	if status := b.Navigate(srv.URL + "/dlq"); status != http.StatusOK {
		w.t.Fatalf("GET /dlq: status %d", status)
	}
	sel := fmt.Sprintf(`main a[href*=%q]`, url.PathEscape(w.dlq))
	if b.Count(sel) == 0 {
		sel = fmt.Sprintf(`main a[href*=%q]`, w.work)
	}
	if status := b.ClickAndLoad(sel); status != http.StatusOK {
		w.t.Fatalf("the link to %s: status %d", w.dlq, status)
	}
	b.WaitVisible("tr[data-job-id]")
	return browsertest.Eval[string](b, "location.href")
}

// depth reads #depth as a number.
func depth(t *testing.T, b *browsertest.Browser) int {
	t.Helper()
	s := b.Text("#depth")
	n, err := strconv.Atoi(strings.Fields(strings.ReplaceAll(s, ",", ""))[0])
	if err != nil {
		t.Fatalf("#depth %q is not a number: %v", s, err)
	}
	return n
}

// waitDepth reloads page until #depth shows want.
func worldWaitDepth(t *testing.T, b *browsertest.Browser, page string, want int) {
	t.Helper()
	got := -1
	reloadUntil(t, b, page, fmt.Sprintf("#depth to show %d", want), func() bool {
		got = depth(t, b)
		return got == want
	})
}

// reloadUntil reloads page until cond holds: the management API's counts
// lag the broker by a few seconds (its statistics interval), so a page
// shows a change only after one of its refreshes.
func reloadUntil(t *testing.T, b *browsertest.Browser, page, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.Navigate(page)
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after 30s of reloading %s", what, page)
		}
		// Half a second between reloads, waited in the page.
		b.WaitTrue("new Promise(r => setTimeout(() => r(true), 500))", "half a second")
	}
}

// result reads an integer attribute of #result, once it is there.
func result(t *testing.T, b *browsertest.Browser, attr string) int {
	t.Helper()
	s := b.Attr("#result", attr)
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("#result %s=%q: %v", attr, s, err)
	}
	return n
}
