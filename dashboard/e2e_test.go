package dashboard

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/warrenmq/warren/internal/browsertest"
)

// The scenarios the dashboard is judged by, each in a real browser against
// a real broker (world_test.go).

func TestE2EOverviewShowsTheDeadLetters(t *testing.T) {
	w := newDLQWorld(t)
	b := browserOn(t, w.srv, browsertest.Desktop)
	browserOpen(t, b, w.srv, "/", "Overview")
	b.WaitText(w.work)
	reloadUntil(t, b, w.srv.URL+"/", fmt.Sprintf("the overview to show the %d dead letters of %s", len(parkedJobs), w.work), func() bool {
		return browsertest.Eval[bool](b, fmt.Sprintf(`[...document.querySelectorAll('main tr')].some(r => r.innerText.includes(%s) && /\b%d\b/.test(r.innerText))`, strconv.Quote(w.work), len(parkedJobs)))
	})
}

func TestE2EDeadLetterPageAndGroups(t *testing.T) {
	w := newDLQWorld(t)
	b := browserOn(t, w.srv, browsertest.Desktop)
	page := w.openDLQ(b, w.srv)
	worldWaitDepth(t, b, page, len(parkedJobs))
	rows := browsertest.Eval[[]string](b, `[...document.querySelectorAll('tr[data-job-id]')].map(r => r.dataset.jobId).sort()`)
	var want []string
	for id := range w.ids {
		want = append(want, id)
	}
	sort.Strings(want)
	if !slices.Equal(rows, want) {
		t.Errorf("job rows %v, want the parked jobs %v", rows, want)
	}
	if !b.HasText("Replay selected") || !b.HasText("Replay filtered") || !b.HasText("Purge filtered") {
		t.Error("the page lacks one of Replay selected, Replay filtered, Purge filtered")
	}
	w.showGroups(b)
	groups := browsertest.Eval[[]string](b, `[...document.querySelectorAll('tr[data-group]')].map(r => r.innerText)`)
	if len(groups) != 2 {
		t.Fatalf("groups %q, want 2 (one per error)", groups)
	}
	for _, g := range []string{"smtp timeout", "template missing"} {
		if !slices.ContainsFunc(groups, func(s string) bool { return strings.Contains(s, g) }) {
			t.Errorf("no group row for %q in %q", g, groups)
		}
	}
	if n := b.Count(`tr[data-group] button`); n < 2 {
		t.Errorf("%d buttons in the group rows, want a Replay group in each", n)
	}
	w.ledger()
}

// showGroups makes the group rows visible: on the page already, or
// behind a link.
func (w *dlqWorld) showGroups(b *browsertest.Browser) {
	w.t.Helper()
	if b.Count("tr[data-group]") > 0 {
		return
	}
	for _, text := range []string{"Groups", "By error", "Group by error"} {
		if b.HasText(text) {
			b.ClickTextAndLoad(text)
			b.WaitVisible("tr[data-group]")
			return
		}
	}
	w.t.Fatal("no group rows (tr[data-group]) on the dead-letter page, nor a Groups link to them")
}

// confirm checks the dry run moved nothing, then confirms with button and
// returns the page's #result.
func (w *dlqWorld) confirm(b *browsertest.Browser, button string, inDLQ int) {
	w.t.Helper()
	b.WaitText(button)
	if got, _ := w.ledger(); len(got) != inDLQ {
		w.t.Fatalf("the dry run changed the dead-letter queue: %d jobs, want %d", len(got), inDLQ)
	}
	b.ClickTextAndLoad(button)
	b.WaitVisible("#result")
}

func TestE2EReplayGroup(t *testing.T) {
	w := newDLQWorld(t)
	b := browserOn(t, w.srv, browsertest.Desktop)
	page := w.openDLQ(b, w.srv)
	w.showGroups(b)
	// The group of smtp timeouts: three jobs.
	b.ClickTextInAndLoad("tr[data-group]", "smtp timeout", "Replay group")
	w.confirm(b, "Confirm replay", len(parkedJobs))
	if got := result(t, b, "data-moved"); got != 3 {
		t.Errorf("moved %d, want the group's 3", got)
	}
	if got := result(t, b, "data-failed"); got != 0 {
		t.Errorf("failed %d, want 0", got)
	}
	inDLQ, inWork := w.ledger()
	if !slices.Equal(inWork, w.idsOf("email.send")) || !slices.Equal(inDLQ, w.idsOf("report.render")) {
		t.Errorf("after replaying the smtp timeouts: dead letters %v, work queue %v", inDLQ, inWork)
	}
	worldWaitDepth(t, b, page, 2)
}

func TestE2EReplayFiltered(t *testing.T) {
	w := newDLQWorld(t)
	b := browserOn(t, w.srv, browsertest.Desktop)
	page := w.openDLQ(b, w.srv)
	w.filter(b, page, "report.render")
	b.ClickTextAndLoad("Replay filtered")
	if b.Count("#result[data-moved]") > 0 { // the dry run's count, if it shows one
		if got := result(t, b, "data-moved"); got != 2 {
			t.Errorf("the dry run would move %d, want 2", got)
		}
	}
	w.confirm(b, "Confirm replay", len(parkedJobs))
	if got := result(t, b, "data-moved"); got != 2 {
		t.Errorf("moved %d, want the 2 report.render jobs", got)
	}
	inDLQ, inWork := w.ledger()
	if !slices.Equal(inWork, w.idsOf("report.render")) || !slices.Equal(inDLQ, w.idsOf("email.send")) {
		t.Errorf("after replaying report.render: dead letters %v, work queue %v", inDLQ, inWork)
	}
	worldWaitDepth(t, b, page, 3)
}

// filter narrows jobs.dlq's page to the jobs of type typ: through the
// page's filter form.
func (w *dlqWorld) filter(b *browsertest.Browser, page, typ string) {
	w.t.Helper()
	u, _ := url.Parse(page)
	q := u.Query()
	q.Set("type", typ)
	u.RawQuery = q.Encode()
	b.Navigate(u.String())
	b.WaitVisible("tr[data-job-id]")
	rows := browsertest.Eval[[]string](b, `[...document.querySelectorAll('tr[data-job-id]')].map(r => r.dataset.jobId).sort()`)
	if !slices.Equal(rows, w.idsOf(typ)) {
		w.t.Fatalf("filtered by type %s: rows %v, want %v", typ, rows, w.idsOf(typ))
	}
}

func TestE2EReplaySelected(t *testing.T) {
	w := newDLQWorld(t)
	b := browserOn(t, w.srv, browsertest.Desktop)
	page := w.openDLQ(b, w.srv)
	pick := w.idsOf("email.send")[:2]
	for _, id := range pick {
		b.Click(fmt.Sprintf(`tr[data-job-id=%q] input[type=checkbox]`, id))
	}
	b.ClickTextAndLoad("Replay selected")
	w.confirm(b, "Confirm replay", len(parkedJobs))
	if got := result(t, b, "data-moved"); got != 2 {
		t.Errorf("moved %d, want the 2 selected", got)
	}
	_, inWork := w.ledger()
	if sort.Strings(pick); !slices.Equal(inWork, pick) {
		t.Errorf("work queue %v, want the selected %v", inWork, pick)
	}
	worldWaitDepth(t, b, page, 3)
}

func TestE2EPurgeFiltered(t *testing.T) {
	w := newDLQWorld(t)
	b := browserOn(t, w.srv, browsertest.Desktop)
	page := w.openDLQ(b, w.srv)
	w.filter(b, page, "email.send")
	b.ClickTextAndLoad("Purge filtered")
	w.confirm(b, "Confirm purge", len(parkedJobs))
	if got := result(t, b, "data-deleted"); got != 3 {
		t.Errorf("deleted %d, want the 3 email.send jobs", got)
	}
	inDLQ, inWork := w.ledger(w.idsOf("email.send")...)
	if len(inWork) != 0 || !slices.Equal(inDLQ, w.idsOf("report.render")) {
		t.Errorf("after purging email.send: dead letters %v, work queue %v", inDLQ, inWork)
	}
	worldWaitDepth(t, b, page, 2)
}

// TestE2EReadOnly: a read-only dashboard shows no action, and refuses an
// action forged from its own page by posting what the writable one's
// forms post.
func TestE2EReadOnly(t *testing.T) {
	w := newDLQWorld(t)
	b := browserOn(t, w.srv, browsertest.Desktop)
	w.openDLQ(b, w.srv)
	forms := browsertest.Eval[[]string](b, `[...document.querySelectorAll('form')].filter(f => f.method === 'post').map(f => new URL(f.action).pathname + '?' + new URLSearchParams(new FormData(f)).toString())`)
	if len(forms) == 0 {
		t.Fatal("the writable dashboard's dead-letter page has no POST form")
	}

	ro := w.serve(Options{ReadOnly: true})
	rb := browserOn(t, ro, browsertest.Desktop)
	w.openDLQ(rb, ro)
	for _, text := range []string{"Replay selected", "Replay filtered", "Purge filtered", "Replay group", "Confirm replay", "Confirm purge"} {
		if rb.HasText(text) {
			t.Errorf("read-only: the page shows %q", text)
		}
	}
	if n := browsertest.Eval[int](rb, `[...document.querySelectorAll('main form')].filter(f => f.method === 'post').length`); n > 0 {
		t.Errorf("read-only: %d forms that post", n)
	}
	for _, f := range forms {
		path, body, _ := strings.Cut(f, "?")
		status := browsertest.Eval[int](rb, fmt.Sprintf(`fetch(%s, {method: 'POST', body: new URLSearchParams(%s)}).then(r => r.status)`, strconv.Quote(path), strconv.Quote(body)))
		if status != http.StatusForbidden {
			t.Errorf("read-only: a forged POST %s answered %d, want 403", path, status)
		}
	}
	for _, p := range rb.TakeProblems() { // the 403s are the point
		if p.Status != http.StatusForbidden && !strings.Contains(p.Text, "403") {
			t.Errorf("read-only: %s", p)
		}
	}
	if inDLQ, inWork := w.ledger(); len(inDLQ) != len(parkedJobs) || len(inWork) != 0 {
		t.Errorf("read-only: %d dead letters and %d jobs in the work queue, want all %d and none", len(inDLQ), len(inWork), len(parkedJobs))
	}
}

// TestE2EToken: with a token, a browser without it lands on the login
// page and sees no queue; a wrong token is refused; the right one opens
// the page it asked for.
func TestE2EToken(t *testing.T) {
	w := newDLQWorld(t)
	const token = "e2e-token-8f3a"
	srv := w.serve(Options{Token: token})
	b := browserOn(t, srv, browsertest.Desktop)
	for _, path := range []string{"/", "/dlq"} {
		b.Navigate(srv.URL + path)
		if got := browsertest.Eval[string](b, "location.pathname"); got != "/login" {
			t.Fatalf("GET %s without the token lands on %s, want /login", path, got)
		}
		if text := browsertest.Eval[string](b, "document.body.innerText"); strings.Contains(text, w.work) {
			t.Errorf("GET %s without the token shows the queue %s", path, w.work)
		}
	}
	// A request for data, not a page: refused outright.
	if status := browsertest.Eval[int](b, "fetch('/dlq', {redirect: 'manual'}).then(r => r.status)"); status == http.StatusOK {
		t.Errorf("fetch /dlq without the token: %d", status)
	}
	b.TakeProblems() // the 401 just asked for

	b.Type("input[name=token]", "wrong")
	b.ClickTextAndLoad("Log in")
	b.TakeProblems() // the login page answers a wrong token 401
	if got := browsertest.Eval[string](b, "location.pathname"); got != "/login" {
		t.Fatalf("a wrong token lands on %s, want the login page again", got)
	}
	if text := browsertest.Eval[string](b, "document.body.innerText"); strings.Contains(text, w.work) {
		t.Errorf("a wrong token shows the queue %s", w.work)
	}

	b.Type("input[name=token]", token)
	if status := b.ClickTextAndLoad("Log in"); status != http.StatusOK {
		t.Fatalf("log in: status %d", status)
	}
	if got := browsertest.Eval[string](b, "location.pathname"); got != "/dlq" {
		t.Errorf("logged in, the browser is on %s, want /dlq, the page it asked for", got)
	}
	b.WaitText(w.dlq)
	w.openDLQ(b, srv)
}
