package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/topology"
)

// parked is a dead-letter queue filled by parkJobs.
type parked struct {
	queue, dlq string
	conn       *broker.Conn
}

// parkJobs declares a work queue and its dead-letter queue (deleted at
// cleanup) and parks five jobs there: two of class permanent, one of an
// unknown type (sms.send), one whose error and payload hold markup, and
// one RabbitMQ dead-lettered itself (rejected, with x-death).
func parkJobs(t *testing.T) parked {
	t.Helper()
	queue := brokertest.Name(t, "emails")
	topo, err := topology.Parse("topology.yaml", []byte("queues:\n  "+queue+":\n    type: classic\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := parked{queue: queue, dlq: topology.DeadLetterQueueName(queue)}
	brokertest.DeleteQueuesAtCleanup(t, queue, p.dlq, topology.QuarantineQueueName(queue))
	ctx := brokertest.Context(t, 30*time.Second)
	p.conn, err = broker.Dial(ctx, []string{brokertest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.conn.Close() })
	d := broker.NewDeclarer(p.conn)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		t.Fatal(err)
	}
	d.Close(ctx)

	pub, err := broker.NewSender(p.conn)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	failedAt := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	for _, j := range []struct {
		id, typ, class, err string
		payload             any
	}{
		{"perm-1", "email.send", "permanent", "no recipient", map[string]any{"to": ""}},
		{"perm-2", "email.send", "permanent", "no recipient", map[string]any{"to": ""}},
		{"unknown-1", "sms.send", "unknown-type", "no handler for sms.send", map[string]any{"to": "+33"}},
		{"xss-1", "email.send", "error", "<script>alert('error')</script> failed\nstack", map[string]any{"html": "<script>alert('payload')</script>"}},
	} {
		env, err := broker.NewEnvelope(broker.Job{ID: j.id, Type: j.typ, Payload: j.payload})
		if err != nil {
			t.Fatal(err)
		}
		env.Attempt = 3
		env.Failure = &broker.Failure{Error: j.err, Class: j.class, FirstFailedAt: failedAt.Add(-time.Second), FailedAt: failedAt,
			Origin: broker.Origin{RoutingKey: queue, Queue: queue}}
		if err := pub.Publish(ctx, broker.KindDeadLetter, env, "", p.dlq); err != nil {
			t.Fatal(err)
		}
	}
	// Rejected by a consumer: RabbitMQ dead-letters it, with x-death.
	env, err := broker.NewEnvelope(broker.Job{ID: "rejected-1", Type: "email.send", Payload: map[string]any{"to": "x@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, broker.KindJob, env, "", queue); err != nil {
		t.Fatal(err)
	}
	c, err := broker.Consume(ctx, p.conn, queue)
	if err != nil {
		t.Fatal(err)
	}
	dl, ok := c.Next(ctx)
	if !ok {
		t.Fatal("no delivery to reject")
	}
	if err := dl.Reject(); err != nil {
		t.Fatal(err)
	}
	c.Cancel(ctx)
	c.Close(ctx)
	waitDepth(t, p.dlq, 5)
	return p
}

func waitDepth(t *testing.T, queue string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for brokertest.Depth(t, queue) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d message(s), want %d", queue, brokertest.Depth(t, queue), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ids browses queue and returns its job ids, sorted.
func (p parked) ids(t *testing.T, queue string) []string {
	t.Helper()
	var ids []string
	if _, err := deadletter.Browse(brokertest.Context(t, 20*time.Second), p.conn, queue, func(e deadletter.Entry) bool {
		ids = append(ids, e.Envelope.ID)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// newDLQServer is newTestServer whose cleanup also stops the actions.
func newDLQServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	opts.URLs = []string{brokertest.URL(t)}
	opts.ManagementURL = brokertest.ManagementURL(t)
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		srv.Close()
		if err := s.closeDLQActions(); err != nil {
			t.Error(err)
		}
		s.Close()
	})
	return srv
}

func dlqGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, body := get(t, u, nil)
	return resp.StatusCode, body
}

func post(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// attr returns the value of attribute name of the first element matching
// the start of tag, e.g. attr(body, `id="result"`, "data-moved").
func attr(t *testing.T, body, tag, name string) string {
	t.Helper()
	m := regexp.MustCompile(`<[a-z]+ [^>]*` + regexp.QuoteMeta(tag) + `[^>]*>`).FindString(body)
	if m == "" {
		t.Fatalf("no element with %s in:\n%s", tag, body)
	}
	v := regexp.MustCompile(` ` + regexp.QuoteMeta(name) + `="([^"]*)"`).FindStringSubmatch(m)
	if v == nil {
		t.Fatalf("%s has no %s", m, name)
	}
	return v[1]
}

var (
	jobRowRe = regexp.MustCompile(`<tr data-job-id="([^"]*)"`)
	groupRe  = regexp.MustCompile(`<tr data-group="([^"]*)" data-count="(\d+)"`)
)

func jobIDs(body string) []string {
	var ids []string
	for _, m := range jobRowRe.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	slices.Sort(ids)
	return ids
}

func groups(body string) map[string]int {
	out := map[string]int{}
	for _, m := range groupRe.FindAllStringSubmatch(body, -1) {
		n, _ := strconv.Atoi(m[2])
		out[m[1]] = n
	}
	return out
}

// waitResult follows an action's page until it is done, and returns it.
func waitResult(t *testing.T, u string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := dlqGet(t, u)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", u, code, body)
		}
		if strings.Contains(body, `id="result"`) {
			if strings.Contains(body, `http-equiv="refresh"`) {
				t.Error("a finished action's page still refreshes")
			}
			return body
		}
		if !strings.Contains(body, `http-equiv="refresh" content="1"`) {
			t.Fatalf("a running action's page does not refresh:\n%s", body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("action still running after 30s:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// actionURL reads the action page a confirmed POST was redirected to.
func confirm(t *testing.T, srv *httptest.Server, path string, form url.Values) string {
	t.Helper()
	form = cloneValues(form)
	form.Set("confirm", "1")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(srv.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/dlq/actions/") {
		t.Fatalf("confirmed POST %s: %s, Location %q\n%s", path, resp.Status, loc, b)
	}
	return waitResult(t, srv.URL+loc)
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

func TestDLQPages(t *testing.T) {
	p := parkJobs(t)
	srv := newDLQServer(t, Options{})
	qpath := "/dlq/" + url.PathEscape(p.dlq)

	t.Run("index", func(t *testing.T) {
		// The management API's counts lag by up to its statistics interval.
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, body := dlqGet(t, srv.URL+"/dlq")
			if code != http.StatusOK {
				t.Fatalf("GET /dlq: %d\n%s", code, body)
			}
			if strings.Contains(body, `href="`+qpath+`"`) && strings.Contains(body, fmt.Sprintf(`<tr data-queue="%s"><td><a href="%s">%s</a></td><td class="num">5</td>`, p.dlq, qpath, p.dlq)) {
				if strings.Contains(body, `data-queue="`+p.queue+`"`) {
					t.Error("the work queue is listed among the dead-letter queues")
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/dlq does not list %s with 5 jobs:\n%s", p.dlq, body)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	t.Run("groups", func(t *testing.T) {
		for _, tc := range []struct {
			by   string
			want map[string]int
		}{
			{"", map[string]int{"no recipient": 2, "no handler for sms.send": 1, "&lt;script&gt;alert(&#39;error&#39;)&lt;/script&gt; failed": 1,
				fmt.Sprintf("dead-lettered by RabbitMQ (rejected) from queue &#34;%s&#34;", p.queue): 1}},
			{"class", map[string]int{"permanent": 2, "unknown-type": 1, "error": 1, "rabbitmq:rejected": 1}},
			{"type", map[string]int{"email.send": 4, "sms.send": 1}},
		} {
			code, body := dlqGet(t, srv.URL+qpath+"?group_by="+tc.by)
			if code != http.StatusOK {
				t.Fatalf("group_by %q: %d\n%s", tc.by, code, body)
			}
			if got := groups(body); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("group_by %q: groups %v, want %v", tc.by, got, tc.want)
			}
			if !strings.Contains(body, `<a href="/dlq" aria-current="page">`) {
				t.Error("the dead-letter queue's page does not mark Dead letters as the current section in the nav")
			}
			if got := attrText(t, body, `id="depth"`); got != "5" {
				t.Errorf("#depth %q, want 5", got)
			}
			if n := strings.Count(body, ">Replay group</button>"); n != len(tc.want) {
				t.Errorf("group_by %q: %d Replay group buttons, want %d", tc.by, n, len(tc.want))
			}
		}
		if d := brokertest.Depth(t, p.dlq); d != 5 {
			t.Errorf("viewing removed jobs: %d left of 5", d)
		}
	})

	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"", []string{"perm-1", "perm-2", "rejected-1", "unknown-1", "xss-1"}},
			{"type=sms.send", []string{"unknown-1"}},
			{"class=permanent", []string{"perm-1", "perm-2"}},
			{"class=permanent,rabbitmq:rejected", []string{"perm-1", "perm-2", "rejected-1"}},
			{"error=no+(recipient|handler)", []string{"perm-1", "perm-2", "unknown-1"}},
			{"id=perm-2&id=xss-1", []string{"perm-2", "xss-1"}},
			{"newer_than=1h", []string{"perm-1", "perm-2", "rejected-1", "unknown-1", "xss-1"}},
			{"older_than=1h", nil},
			{"older_than=30s&type=email.send&class=permanent", []string{"perm-1", "perm-2"}},
		} {
			code, body := dlqGet(t, srv.URL+qpath+"?"+tc.query)
			if code != http.StatusOK {
				t.Fatalf("%s: %d\n%s", tc.query, code, body)
			}
			if got := jobIDs(body); !slices.Equal(got, tc.want) {
				t.Errorf("%s: rows %v, want %v", tc.query, got, tc.want)
			}
			for _, id := range tc.want {
				if !strings.Contains(body, `<input type="checkbox" name="id" value="`+id+`"`) {
					t.Errorf("%s: no checkbox for %s", tc.query, id)
				}
			}
		}
		if code, body := dlqGet(t, srv.URL+qpath+"?older_than=yesterday"); code != http.StatusBadRequest || !strings.Contains(body, "older_than") {
			t.Errorf("a bad duration: %d\n%s", code, body)
		}
	})

	t.Run("paging", func(t *testing.T) {
		var seen []string
		for off := 0; off < 6; off += 2 {
			_, body := dlqGet(t, fmt.Sprintf("%s%s?limit=2&offset=%d", srv.URL, qpath, off))
			ids := jobRowRe.FindAllStringSubmatch(body, -1)
			if want := min(2, 5-off); len(ids) != want {
				t.Fatalf("offset %d: %d rows, want %d", off, len(ids), want)
			}
			for _, m := range ids {
				seen = append(seen, m[1])
			}
			if hasNext := strings.Contains(body, `rel="next"`); hasNext != (off+2 < 5) {
				t.Errorf("offset %d: next link %v", off, hasNext)
			}
		}
		slices.Sort(seen)
		if !slices.Equal(seen, []string{"perm-1", "perm-2", "rejected-1", "unknown-1", "xss-1"}) {
			t.Errorf("pages hold %v", seen)
		}
		_, body := dlqGet(t, srv.URL+qpath+"?scan=2")
		if got := attrText(t, body, `id="capped"`); !strings.Contains(got, "Stopped after 2 of 5 jobs") {
			t.Errorf("capped read: notice %q", got)
		}
		if n := len(jobRowRe.FindAllString(body, -1)); n != 2 {
			t.Errorf("capped read lists %d jobs, want 2", n)
		}
		if _, body := dlqGet(t, srv.URL+qpath); strings.Contains(body, `id="capped"`) {
			t.Error("a whole read says it stopped early")
		}
	})

	t.Run("escapes", func(t *testing.T) {
		for _, path := range []string{qpath, qpath + "/jobs/xss-1"} {
			_, body := dlqGet(t, srv.URL+path)
			if strings.Contains(body, "<script>alert") {
				t.Errorf("%s renders a job's markup as markup", path)
			}
			if !strings.Contains(body, "&lt;script&gt;alert(") {
				t.Errorf("%s does not show the job's text escaped", path)
			}
		}
	})

	t.Run("detail", func(t *testing.T) {
		code, body := dlqGet(t, srv.URL+qpath+"/jobs/perm-1")
		if code != http.StatusOK {
			t.Fatalf("%d\n%s", code, body)
		}
		for _, want := range []string{
			`<pre id="payload">{
  &#34;to&#34;: &#34;&#34;
}</pre>`,
			`data-property="message_id"><th scope="row">message_id</th><td><code>perm-1</code>`,
			`data-property="content_type"`, `data-header="warren-error-class"><th scope="row">warren-error-class</th><td><code>permanent</code>`,
			`data-attempts="3"`, "no recipient", "None: RabbitMQ did not dead-letter this job itself.",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("perm-1's page lacks %q", want)
			}
		}
		_, body = dlqGet(t, srv.URL+qpath+"/jobs/rejected-1")
		for _, want := range []string{`<tr data-reason="rejected"><td>rejected</td><td>` + p.queue + `</td>`, `data-header="x-death"`, "rabbitmq:rejected", `&#34;to&#34;: &#34;x@example.com&#34;`} {
			if !strings.Contains(body, want) {
				t.Errorf("rejected-1's page lacks %q:\n%s", want, body)
			}
		}
		if code, _ := dlqGet(t, srv.URL+qpath+"/jobs/nope"); code != http.StatusNotFound {
			t.Errorf("a missing job: %d, want 404", code)
		}
		if code, _ := dlqGet(t, srv.URL+"/dlq/"+url.PathEscape(p.queue)); code != http.StatusNotFound {
			t.Errorf("a work queue's page: %d, want 404 (the dashboard never reads work queues)", code)
		}
	})

	t.Run("export", func(t *testing.T) {
		resp, err := http.Get(srv.URL + qpath + "/export?class=permanent")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
			t.Fatalf("%s %v", resp.Status, resp.Header)
		}
		if got := recordIDs(t, b); !slices.Equal(got, []string{"perm-1", "perm-2"}) {
			t.Errorf("export holds %v", got)
		}
		waitDepth(t, p.dlq, 5)
	})
}

// attrText returns the text of the first element with tag.
func attrText(t *testing.T, body, tag string) string {
	t.Helper()
	m := regexp.MustCompile(`<[a-z]+ [^>]*` + regexp.QuoteMeta(tag) + `[^>]*>([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no element with %s", tag)
	}
	return m[1]
}

func recordIDs(t *testing.T, b []byte) []string {
	t.Helper()
	dec := deadletter.NewDecoder(strings.NewReader(string(b)))
	var ids []string
	for {
		r, err := dec.Decode()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestDLQReplay(t *testing.T) {
	p := parkJobs(t)
	srv := newDLQServer(t, Options{})
	qpath := "/dlq/" + url.PathEscape(p.dlq)
	all := []string{"perm-1", "perm-2", "rejected-1", "unknown-1", "xss-1"}

	// ledger checks that every job is in exactly one of the work queue and
	// the dead-letter queue.
	ledger := func(t *testing.T, wantBack []string) {
		t.Helper()
		waitDepth(t, p.queue, len(wantBack))
		back, parked := p.ids(t, p.queue), p.ids(t, p.dlq)
		if !slices.Equal(back, wantBack) {
			t.Errorf("work queue holds %v, want %v", back, wantBack)
		}
		both := slices.Sorted(slices.Values(append(slices.Clone(back), parked...)))
		if !slices.Equal(both, all) {
			t.Errorf("work queue %v + dead-letter queue %v: want each of %v once", back, parked, all)
		}
	}

	group := url.Values{"scope": {"group"}, "group_by": {"class"}, "group": {"permanent"}}
	t.Run("dry run moves nothing", func(t *testing.T) {
		code, body := post(t, srv.URL+qpath+"/replay", group)
		if code != http.StatusOK {
			t.Fatalf("%d\n%s", code, body)
		}
		if got := attr(t, body, `id="dry-run"`, "data-count"); got != "2" {
			t.Errorf("dry run would move %s, want 2", got)
		}
		if got := jobIDs(body); !slices.Equal(got, []string{"perm-1", "perm-2"}) {
			t.Errorf("dry run lists %v", got)
		}
		if !strings.Contains(body, ">Confirm replay</button>") || !strings.Contains(body, "queue "+p.queue) {
			t.Errorf("no confirmation, or no destination:\n%s", body)
		}
		for _, h := range []string{`name="scope" value="group"`, `name="group_by" value="class"`, `name="group" value="permanent"`, `name="confirm" value="1"`} {
			if !strings.Contains(body, h) {
				t.Errorf("the confirmation form lacks %s", h)
			}
		}
		time.Sleep(200 * time.Millisecond)
		ledger(t, nil)
	})

	t.Run("group", func(t *testing.T) {
		body := confirm(t, srv, qpath+"/replay", group)
		if m, f := attr(t, body, `id="result"`, "data-moved"), attr(t, body, `id="result"`, "data-failed"); m != "2" || f != "0" {
			t.Errorf("moved %s failed %s, want 2 and 0\n%s", m, f, body)
		}
		ledger(t, []string{"perm-1", "perm-2"})
	})

	t.Run("selected", func(t *testing.T) {
		body := confirm(t, srv, qpath+"/replay", url.Values{"scope": {"selected"}, "id": {"unknown-1"}, "type": {"ignored-by-selection"}})
		if m := attr(t, body, `id="result"`, "data-moved"); m != "1" {
			t.Errorf("moved %s, want 1", m)
		}
		ledger(t, []string{"perm-1", "perm-2", "unknown-1"})
	})

	t.Run("filtered", func(t *testing.T) {
		form := url.Values{"scope": {"filtered"}, "filter_id": {"rejected-1"}}
		code, body := post(t, srv.URL+qpath+"/replay", form)
		if code != http.StatusOK || attr(t, body, `id="dry-run"`, "data-count") != "1" {
			t.Fatalf("dry run: %d\n%s", code, body)
		}
		body = confirm(t, srv, qpath+"/replay", form)
		if m := attr(t, body, `id="result"`, "data-moved"); m != "1" {
			t.Errorf("moved %s, want 1\n%s", m, body)
		}
		ledger(t, []string{"perm-1", "perm-2", "rejected-1", "unknown-1"})
	})

	t.Run("nothing selected", func(t *testing.T) {
		if code, _ := post(t, srv.URL+qpath+"/replay", url.Values{"scope": {"selected"}}); code != http.StatusBadRequest {
			t.Errorf("replay of no job: %d, want 400", code)
		}
		if code, _ := post(t, srv.URL+"/dlq/"+url.PathEscape(p.queue)+"/replay", group); code != http.StatusBadRequest {
			t.Errorf("replay out of a work queue: %d, want 400", code)
		}
	})
}

func TestDLQPurge(t *testing.T) {
	p := parkJobs(t)
	srv := newDLQServer(t, Options{})
	qpath := "/dlq/" + url.PathEscape(p.dlq)
	form := url.Values{"scope": {"filtered"}, "type": {"email.send"}, "class": {"permanent", "error"}}

	code, body := post(t, srv.URL+qpath+"/purge", form)
	if code != http.StatusOK {
		t.Fatalf("%d\n%s", code, body)
	}
	if got := attr(t, body, `id="dry-run"`, "data-count"); got != "3" || !strings.Contains(body, ">Confirm purge</button>") {
		t.Fatalf("dry run would delete %s, want 3, with a confirmation\n%s", got, body)
	}
	waitDepth(t, p.dlq, 5)

	body = confirm(t, srv, qpath+"/purge", form)
	if d := attr(t, body, `id="result"`, "data-deleted"); d != "3" {
		t.Fatalf("deleted %s, want 3\n%s", d, body)
	}
	waitDepth(t, p.dlq, 2)
	if got := p.ids(t, p.dlq); !slices.Equal(got, []string{"rejected-1", "unknown-1"}) {
		t.Errorf("left %v", got)
	}
	link := regexp.MustCompile(`<a href="([^"]+)" download id="export">`).FindStringSubmatch(body)
	if link == nil {
		t.Fatalf("no export link:\n%s", body)
	}
	resp, err := http.Get(srv.URL + strings.ReplaceAll(link[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("export download: %s %v", resp.Status, resp.Header)
	}
	if got := recordIDs(t, b); !slices.Equal(got, []string{"perm-1", "perm-2", "xss-1"}) {
		t.Errorf("the export holds %v, want the 3 deleted", got)
	}
}

func TestDLQActionsRefused(t *testing.T) {
	p := parkJobs(t)
	qpath := "/dlq/" + url.PathEscape(p.dlq)
	form := url.Values{"scope": {"filtered"}, "confirm": {"1"}}

	t.Run("read-only", func(t *testing.T) {
		srv := newDLQServer(t, Options{ReadOnly: true})
		code, body := dlqGet(t, srv.URL+qpath)
		if code != http.StatusOK || len(jobIDs(body)) != 5 {
			t.Fatalf("read-only page: %d\n%s", code, body)
		}
		for _, b := range []string{"Replay selected", "Replay filtered", "Purge filtered", "Replay group", `type="checkbox"`} {
			if strings.Contains(body, b) {
				t.Errorf("a read-only page shows %q", b)
			}
		}
		for _, a := range []string{"/replay", "/purge"} {
			if code, _ := post(t, srv.URL+qpath+a, form); code != http.StatusForbidden {
				t.Errorf("read-only POST %s: %d, want 403", a, code)
			}
		}
	})

	t.Run("cross-origin", func(t *testing.T) {
		srv := newDLQServer(t, Options{})
		for _, a := range []string{"/replay", "/purge"} {
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+qpath+a, strings.NewReader(form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site POST %s: %s, want 403", a, resp.Status)
			}
		}
	})
	time.Sleep(200 * time.Millisecond)
	if d := brokertest.Depth(t, p.dlq); d != 5 {
		t.Errorf("refused actions changed the queue: %d jobs left of 5", d)
	}
	if d := brokertest.Depth(t, p.queue); d != 0 {
		t.Errorf("refused actions replayed %d job(s)", d)
	}
}

// TestDLQActionProgress runs an action that waits: its page refreshes
// while it runs, and closing the registry stops it and waits for it.
func TestDLQActionProgress(t *testing.T) {
	srv := newDLQServer(t, Options{})
	s := srv.Config.Handler.(*Server)
	conn, err := s.brokerConn(brokertest.Context(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	started, stopped := make(chan struct{}), make(chan error, 1)
	reg := s.dlqActions()
	a, err := reg.start(conn, "replay", selection{Queue: "q.dlq"}, func(ctx context.Context, a *dlqAction) error {
		a.progress(3, 10)
		close(started)
		<-ctx.Done()
		stopped <- ctx.Err()
		return fmt.Errorf("stopped: %w", ctx.Err())
	})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	code, body := dlqGet(t, srv.URL+"/dlq/actions/"+a.ID)
	if code != http.StatusOK || !strings.Contains(body, `<meta http-equiv="refresh" content="1">`) ||
		attr(t, body, `id="progress"`, "data-read") != "3" || attr(t, body, `id="progress"`, "data-total") != "10" {
		t.Fatalf("running action's page: %d\n%s", code, body)
	}
	if err := s.closeDLQActions(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-stopped:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the action's context ended with %v", err)
		}
	default:
		t.Fatal("closing the registry returned before the action ended")
	}
	if v := a.view(); v.Running || !strings.Contains(v.Err, "stopped") {
		t.Errorf("after close: %+v", v)
	}
	if _, err := reg.start(conn, "replay", selection{Queue: "q.dlq"}, nil); err == nil {
		t.Error("a closed registry started an action")
	}
	if code, _ := dlqGet(t, srv.URL+"/dlq/actions/nope"); code != http.StatusNotFound {
		t.Errorf("an unknown action: %d, want 404", code)
	}
}

// TestDLQActionStopsWithConnection: closing the Server's broker
// connection (Server.Close does) ends a running action.
func TestDLQActionStopsWithConnection(t *testing.T) {
	srv := newDLQServer(t, Options{})
	s := srv.Config.Handler.(*Server)
	conn, err := s.brokerConn(brokertest.Context(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	if _, err := s.dlqActions().start(conn, "purge", selection{Queue: "q.dlq"}, func(ctx context.Context, _ *dlqAction) error {
		<-ctx.Done()
		close(done)
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the action still runs after its connection closed")
	}
}
