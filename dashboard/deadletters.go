package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/internal/jsonwire"
)

// unroutableQueue is where the delay cascade parks what it cannot route:
// the dashboard treats it as a dead-letter queue.
const unroutableQueue = "warren.delay.unroutable"

// isDeadLetterQueue says whether the dashboard may read and move the
// messages of queue: only dead-letter queues, never a work queue.
func isDeadLetterQueue(queue string) bool {
	return strings.HasSuffix(queue, ".dlq") || queue == unroutableQueue
}

// deadLetterRoutes registers the dead-letter pages and actions. The
// three-segment GET routes share one handler (dlqSub): /dlq/actions/{id}
// and /dlq/{queue}/export would otherwise be ambiguous patterns.
func (s *Server) deadLetterRoutes() {
	s.mux.HandleFunc("GET /dlq", s.dlqIndex)
	s.mux.HandleFunc("GET /dlq/{$}", s.dlqIndex)
	s.mux.HandleFunc("GET /dlq/{queue}", s.dlqQueue)
	s.mux.HandleFunc("GET /dlq/{queue}/{sub}", s.dlqSub)
	s.mux.HandleFunc("GET /dlq/{queue}/jobs/{id}", s.dlqJob)
	s.mux.HandleFunc("POST /dlq/{queue}/replay", s.action(s.dlqReplay))
	s.mux.HandleFunc("POST /dlq/{queue}/purge", s.action(s.dlqPurge))
}

// dlqSub serves /dlq/actions/{id} (an action's progress) and
// /dlq/{queue}/export (a download of the filtered jobs).
func (s *Server) dlqSub(w http.ResponseWriter, r *http.Request) {
	queue, sub := r.PathValue("queue"), r.PathValue("sub")
	switch {
	case queue == "actions":
		s.dlqAction(w, r, sub)
	case sub == "export":
		s.dlqExport(w, r, queue)
	default:
		http.NotFound(w, r)
	}
}

// dlqRow is one dead-letter queue on /dlq.
type dlqRow struct {
	Name  string
	Depth int64
	URL   string
}

func (s *Server) dlqIndex(w http.ResponseWriter, r *http.Request) {
	queues, err := s.mgmt.Queues(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, fmt.Errorf("list the queues through the management API: %w; check that its plugin is enabled and the URL is right", err))
		return
	}
	var rows []dlqRow
	for _, q := range queues {
		if isDeadLetterQueue(q.Name) {
			rows = append(rows, dlqRow{Name: q.Name, Depth: q.Messages, URL: queuePath(q.Name)})
		}
	}
	slices.SortFunc(rows, func(a, b dlqRow) int { return strings.Compare(a.Name, b.Name) })
	s.render(w, r, http.StatusOK, "dlq", "Dead letters", rows)
}

// queuePath is the path of a dead-letter queue's page, unprefixed.
func queuePath(queue string) string { return "/dlq/" + url.PathEscape(queue) }

// selection is what an action works on: the filter as the request gave
// it (to carry it on to the next form), and as parsed.
type selection struct {
	Queue  string
	Form   url.Values // the filter's fields, as given
	Filter deadletter.Filter
	// Scope is "selected" (Filter.IDs are the checked jobs), "group"
	// (GroupBy and Group narrow the filter) or "filtered".
	Scope   string
	GroupBy string
	Group   string
	IDs     []string // the checked jobs, for scope "selected"
}

// filterFields are the form fields of a filter, as `warren dlq list`
// names its flags. The job-id filter is "id" on a page's filter form and
// "filter_id" in an action's form, where "id" is a checked job.
var filterFields = []string{"type", "class", "error", "older_than", "newer_than"}

// listValues splits repeatable, comma-separated fields, as the CLI's
// string-slice flags do.
func listValues(vs []string) []string {
	var out []string
	for _, v := range vs {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// parseFilter reads a filter from form; idField names its job-id field.
// It returns the fields given too, the job ids as "id".
func parseFilter(form url.Values, idField string) (deadletter.Filter, url.Values, error) {
	kept := url.Values{}
	for _, k := range filterFields {
		for _, v := range form[k] {
			if v != "" {
				kept.Add(k, v)
			}
		}
	}
	for _, v := range form[idField] {
		if v != "" {
			kept.Add("id", v)
		}
	}
	re, err := deadletter.ErrorPattern(kept.Get("error"))
	if err != nil {
		return deadletter.Filter{}, nil, fmt.Errorf("error text: %w", err)
	}
	f := deadletter.Filter{Types: listValues(kept["type"]), Classes: listValues(kept["class"]), IDs: listValues(kept["id"]), Error: re}
	for _, d := range []struct {
		field string
		to    *time.Duration
	}{{"older_than", &f.OlderThan}, {"newer_than", &f.NewerThan}} {
		v := kept.Get(d.field)
		if v == "" {
			continue
		}
		n, err := time.ParseDuration(v)
		if err != nil || n < 0 {
			return deadletter.Filter{}, nil, fmt.Errorf("%s %q: give a positive duration, e.g. 2h or 30m", d.field, v)
		}
		*d.to = n
	}
	return f, kept, nil
}

// groupFilter narrows f to the group key of by: a group by error holds
// the jobs whose error's first line is key (it replaces f's error text).
func groupFilter(f deadletter.Filter, by deadletter.GroupBy, key string) (deadletter.Filter, error) {
	switch by {
	case deadletter.ByType:
		f.Types = []string{key}
	case deadletter.ByClass:
		f.Classes = []string{key}
	case deadletter.ByError:
		f.Error = regexp.MustCompile(`\A` + regexp.QuoteMeta(key) + `(?:\n|\z)`)
	default:
		return f, fmt.Errorf("cannot group by %q: use error, type or class", by)
	}
	return f, nil
}

// parseSelection reads what an action works on from a POSTed form.
func parseSelection(r *http.Request) (selection, error) {
	sel := selection{Queue: r.PathValue("queue"), Scope: r.PostFormValue("scope")}
	if !isDeadLetterQueue(sel.Queue) {
		return sel, fmt.Errorf("%q is not a dead-letter queue: the dashboard moves jobs only out of <queue>.dlq and %s", sel.Queue, unroutableQueue)
	}
	f, kept, err := parseFilter(r.PostForm, "filter_id")
	if err != nil {
		return sel, err
	}
	sel.Filter, sel.Form = f, kept
	switch sel.Scope {
	case "selected":
		sel.IDs = listValues(r.PostForm["id"])
		if len(sel.IDs) == 0 {
			return sel, errors.New("no job selected: check the jobs to act on, or use the filtered or group actions")
		}
		sel.Filter = deadletter.Filter{IDs: sel.IDs}
	case "group":
		sel.GroupBy, sel.Group = r.PostFormValue("group_by"), r.PostFormValue("group")
		if sel.Filter, err = groupFilter(sel.Filter, deadletter.GroupBy(sel.GroupBy), sel.Group); err != nil {
			return sel, err
		}
	case "filtered":
	default:
		return sel, fmt.Errorf("scope %q: the form says selected, group or filtered", sel.Scope)
	}
	return sel, nil
}

// Paging of a queue's list.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// dlqView is what /dlq/{queue} shows.
type dlqView struct {
	Queue     string
	Form      url.Values // the filter as given
	Filtered  bool
	GroupBy   string
	Groups    []deadletter.Group
	Summary   deadletter.BrowseSummary
	Matched   int
	Jobs      []jobRow
	Offset    int
	Limit     int
	Scan      int    // the most jobs read (0: deadletter.DefaultMax)
	Prev      string // the previous and next page's query, "" when none
	Next      string
	ExportURL string // the download of the filtered jobs, unprefixed
	// The filter form's values, and the choices of group by.
	Types, Classes, IDs string
	GroupKeys           []string
	// URLs of the page and its actions, unprefixed.
	URL, ReplayURL, PurgeURL string
	From, To                 int // the jobs shown, 1-based
}

// jobRow is one job in a list.
type jobRow struct {
	ID, Type, Class, Error, Origin string
	URL                            string // the job's page, unprefixed
	Attempts                       int
	Failed                         string
	Payload                        string
}

func newJobRow(queue string, e deadletter.Entry, now time.Time) jobRow {
	row := jobRow{URL: queuePath(queue) + "/jobs/" + url.PathEscape(e.Envelope.ID), ID: e.Envelope.ID, Type: e.Envelope.Type,
		Class: e.Class, Error: e.FirstLine(), Origin: e.Origin.Queue, Attempts: e.Attempts, Failed: "-"}
	if !e.LastFailed.IsZero() {
		row.Failed = now.Sub(e.LastFailed).Round(time.Second).String() + " ago"
	}
	b, _ := json.Marshal(payloadValue(e.Envelope))
	row.Payload = shorten(string(b), 80)
	return row
}

// shorten cuts s to n runes, on one line.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func intParam(form url.Values, key string, def, lo, hi int) (int, error) {
	v := form.Get(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %q: give a number from %d to %d", key, v, lo, hi)
	}
	return n, nil
}

func (s *Server) dlqQueue(w http.ResponseWriter, r *http.Request) {
	queue := r.PathValue("queue")
	if !isDeadLetterQueue(queue) {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("%q is not a dead-letter queue: the dashboard reads <queue>.dlq and %s; see the list of dead letters", queue, unroutableQueue))
		return
	}
	q := r.URL.Query()
	f, kept, err := parseFilter(q, "id")
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	v := dlqView{Queue: queue, Form: kept, Filtered: len(kept) > 0, GroupBy: q.Get("group_by"),
		Types: strings.Join(kept["type"], ","), Classes: strings.Join(kept["class"], ","), IDs: strings.Join(kept["id"], ","),
		GroupKeys: []string{string(deadletter.ByError), string(deadletter.ByClass), string(deadletter.ByType)},
		URL:       queuePath(queue), ReplayURL: queuePath(queue) + "/replay", PurgeURL: queuePath(queue) + "/purge", ExportURL: queuePath(queue) + "/export"}
	if len(kept) > 0 {
		v.ExportURL += "?" + kept.Encode()
	}
	if v.GroupBy == "" {
		v.GroupBy = string(deadletter.ByError)
	}
	grouper, err := deadletter.NewGrouper(deadletter.GroupBy(v.GroupBy))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("group_by: %w", err))
		return
	}
	if v.Limit, err = intParam(q, "limit", defaultLimit, 1, maxLimit); err == nil {
		v.Offset, err = intParam(q, "offset", 0, 0, deadletter.DefaultMax)
	}
	if err == nil {
		v.Scan, err = intParam(q, "scan", 0, 0, deadletter.DefaultMax)
	}
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	conn, err := s.dial(r)
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	now := time.Now()
	v.Summary, err = deadletter.BrowseWith(r.Context(), conn, queue, deadletter.BrowseOptions{Max: v.Scan}, func(e deadletter.Entry) bool {
		if !f.Match(e, now) {
			return true
		}
		grouper.Add(e)
		if v.Matched >= v.Offset && len(v.Jobs) < v.Limit {
			v.Jobs = append(v.Jobs, newJobRow(queue, e, now))
		}
		v.Matched++
		return true
	})
	if err != nil {
		s.fail(w, r, browseStatus(err), err)
		return
	}
	v.Groups = grouper.Groups()
	if len(v.Jobs) > 0 {
		v.From, v.To = v.Offset+1, v.Offset+len(v.Jobs)
	}
	page := func(off int) string {
		p := url.Values{}
		for k, vs := range kept {
			p[k] = vs
		}
		p.Set("group_by", v.GroupBy)
		p.Set("limit", strconv.Itoa(v.Limit))
		p.Set("offset", strconv.Itoa(off))
		if v.Scan > 0 {
			p.Set("scan", strconv.Itoa(v.Scan))
		}
		return "?" + p.Encode()
	}
	if v.Offset > 0 {
		v.Prev = page(max(v.Offset-v.Limit, 0))
	}
	if v.Offset+v.Limit < v.Matched {
		v.Next = page(v.Offset + v.Limit)
	}
	s.render(w, r, http.StatusOK, "dlq_queue", queue, v)
}

// browseStatus is the status of a page whose read of a queue failed.
func browseStatus(err error) int {
	if errors.Is(err, broker.ErrNoQueue) {
		return http.StatusNotFound
	}
	return http.StatusBadGateway
}

// jobView is what /dlq/{queue}/jobs/{id} shows.
type jobView struct {
	Queue      string
	Back       string // the queue's page, unprefixed
	Entry      deadletter.Entry
	Payload    string
	Properties []kv
	Headers    []kv
}

type kv struct{ Key, Value string }

func (s *Server) dlqJob(w http.ResponseWriter, r *http.Request) {
	queue, id := r.PathValue("queue"), r.PathValue("id")
	if !isDeadLetterQueue(queue) {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("%q is not a dead-letter queue", queue))
		return
	}
	conn, err := s.dial(r)
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	var found *deadletter.Entry
	if _, err := deadletter.Browse(r.Context(), conn, queue, func(e deadletter.Entry) bool {
		if e.Envelope.ID == id {
			found = &e
			return false
		}
		return true
	}); err != nil {
		s.fail(w, r, browseStatus(err), err)
		return
	}
	if found == nil {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("no job %s in %s (replayed or purged meanwhile?); see the queue's list", id, queue))
		return
	}
	s.render(w, r, http.StatusOK, "dlq_job", "Job "+id, newJobView(queue, *found))
}

func newJobView(queue string, e deadletter.Entry) jobView {
	env := e.Envelope
	v := jobView{Queue: queue, Back: queuePath(queue), Entry: e}
	b, err := json.MarshalIndent(payloadValue(env), "", "  ")
	if err != nil {
		b = []byte(err.Error())
	}
	v.Payload = string(b)
	props := map[string]string{
		"message_id": env.ID, "type": env.Type, "content_type": env.ContentType, "app_id": env.AppID,
		"correlation_id": env.CorrelationID, "reply_to": env.ReplyTo, "expiration": env.Expiration,
	}
	if !env.Timestamp.IsZero() {
		props["timestamp"] = env.Timestamp.Format(time.RFC3339)
	}
	if env.Priority > 0 {
		props["priority"] = strconv.Itoa(int(env.Priority))
	}
	v.Properties = sortedKV(props)
	headers := map[string]string{}
	for k, val := range env.Message().Headers {
		headers[k] = jsonText(val)
	}
	for k, val := range env.Headers { // the broker's own too (x-death, …)
		headers[k] = jsonText(val)
	}
	v.Headers = sortedKV(headers)
	return v
}

func sortedKV(m map[string]string) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		if v != "" {
			out = append(out, kv{k, v})
		}
	}
	slices.SortFunc(out, func(a, b kv) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// jsonText is v as compact JSON (a string as it is).
func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(jsonwire.Plain(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// payloadValue returns env's payload as plain JSON values.
func payloadValue(env *broker.Envelope) any { return jsonwire.Payload(env.Body, env.Decode) }

// dial returns the dashboard's broker connection.
func (s *Server) dial(r *http.Request) (*broker.Conn, error) {
	conn, err := s.brokerConn(r.Context())
	if err != nil {
		return nil, fmt.Errorf("connect to the broker: %w; check that it runs and the URL is right", err)
	}
	return conn, nil
}
