package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
)

// dryRunShown is the most jobs a confirmation page lists; its counts cover
// them all.
const dryRunShown = 200

// confirmView is what a confirmation page (a dry run) shows.
type confirmView struct {
	Sel     selection
	Hidden  []kv // the form fields to post again, with confirm=1
	Count   int
	Total   int
	Jobs    []movedRow
	More    int // matching jobs not listed
	Failed  []failedRow
	Back    string // the queue's page with the filter, unprefixed
	Action  string // where the confirmation posts, unprefixed
	Capped  bool
	IsPurge bool
}

type movedRow struct {
	ID, Type, Class, Error, Destination string
}

type failedRow struct {
	ID, Type, Reason string
}

// hiddenFields are the fields that post sel again.
func hiddenFields(sel selection) []kv {
	var out []kv
	for _, k := range filterFields {
		for _, v := range sel.Form[k] {
			out = append(out, kv{k, v})
		}
	}
	for _, v := range sel.Form["id"] {
		out = append(out, kv{"filter_id", v})
	}
	out = append(out, kv{"scope", sel.Scope})
	if sel.Scope == "group" {
		out = append(out, kv{"group_by", sel.GroupBy}, kv{"group", sel.Group})
	}
	for _, id := range sel.IDs {
		out = append(out, kv{"id", id})
	}
	return out
}

func backLink(sel selection) string {
	p := queuePath(sel.Queue)
	if len(sel.Form) > 0 {
		p += "?" + sel.Form.Encode()
	}
	return p
}

func destination(exchange, key string) string {
	if exchange == "" {
		return "queue " + key
	}
	return fmt.Sprintf("exchange %s, key %s", exchange, key)
}

// actionRequest reads the selection an action's form posts and connects
// to the broker; on an error it answers the request itself and returns
// false.
func (s *Server) actionRequest(w http.ResponseWriter, r *http.Request) (selection, *broker.Conn, bool) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return selection{}, nil, false
	}
	sel, err := parseSelection(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return selection{}, nil, false
	}
	conn, err := s.dial(r)
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return selection{}, nil, false
	}
	return sel, conn, true
}

// started sends the browser to the progress page of the action a, or
// answers err when it could not start.
func (s *Server) started(w http.ResponseWriter, r *http.Request, sel selection, a *dlqAction, err error) {
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	s.opts.Logger.Info().Str("queue", sel.Queue).Str("action", a.ID).Str("kind", a.Kind).Msg("dashboard: dead-letter action started")
	http.Redirect(w, r, s.opts.Prefix+"/dlq/actions/"+a.ID, http.StatusSeeOther)
}

// dlqReplay shows what a replay would move (a dry run), and replays once
// the form is posted again with confirm=1.
func (s *Server) dlqReplay(w http.ResponseWriter, r *http.Request) {
	sel, conn, ok := s.actionRequest(w, r)
	if !ok {
		return
	}
	if r.PostFormValue("confirm") != "1" {
		sum, err := deadletter.Replay(r.Context(), conn, nil, sel.Queue, deadletter.ReplayOptions{Filter: sel.Filter, DryRun: true})
		if err != nil {
			s.fail(w, r, http.StatusBadGateway, err)
			return
		}
		v := confirmView{Sel: sel, Hidden: hiddenFields(sel), Count: len(sum.Moved), Total: sum.Total, Back: backLink(sel), Action: queuePath(sel.Queue) + "/replay", Capped: sum.Total >= deadletter.DefaultMax}
		for i, m := range sum.Moved {
			if i >= dryRunShown {
				v.More = len(sum.Moved) - i
				break
			}
			v.Jobs = append(v.Jobs, movedRow{m.Entry.Envelope.ID, m.Entry.Envelope.Type, m.Entry.Class, m.Entry.FirstLine(), destination(m.Exchange, m.RoutingKey)})
		}
		for _, f := range sum.Failed {
			v.Failed = append(v.Failed, failedRow{f.Entry.Envelope.ID, f.Entry.Envelope.Type, f.Err.Error()})
		}
		s.render(w, r, http.StatusOK, "dlq_replay", "Replay from "+sel.Queue+": dry run", v)
		return
	}
	a, err := s.dlqActions().start(conn, "replay", sel, func(ctx context.Context, a *dlqAction) error {
		pub, err := broker.NewSender(conn, broker.WithAppID("warren-ui"))
		if err != nil {
			return err
		}
		defer pub.Close(context.WithoutCancel(ctx))
		sum, err := deadletter.Replay(ctx, conn, pub, sel.Queue, deadletter.ReplayOptions{Filter: sel.Filter, Progress: a.progress})
		a.mu.Lock()
		defer a.mu.Unlock()
		a.Moved, a.Skipped = len(sum.Moved), sum.Skipped
		for _, f := range sum.Failed {
			a.Failures = append(a.Failures, failedRow{f.Entry.Envelope.ID, f.Entry.Envelope.Type, f.Err.Error()})
		}
		return err
	})
	s.started(w, r, sel, a, err)
}

// dlqPurge shows what a purge would delete, and purges once the form is
// posted again with confirm=1: each job is written to an export file,
// kept by the dashboard and offered as a download, before it is deleted.
func (s *Server) dlqPurge(w http.ResponseWriter, r *http.Request) {
	sel, conn, ok := s.actionRequest(w, r)
	if !ok {
		return
	}
	if r.PostFormValue("confirm") != "1" {
		v := confirmView{Sel: sel, Hidden: hiddenFields(sel), Back: backLink(sel), Action: queuePath(sel.Queue) + "/purge", IsPurge: true}
		now := time.Now()
		bs, err := deadletter.BrowseWith(r.Context(), conn, sel.Queue, deadletter.BrowseOptions{}, func(e deadletter.Entry) bool {
			if sel.Filter.Match(e, now) {
				if v.Count < dryRunShown {
					v.Jobs = append(v.Jobs, movedRow{ID: e.Envelope.ID, Type: e.Envelope.Type, Class: e.Class, Error: e.FirstLine()})
				}
				v.Count++
			}
			return true
		})
		if err != nil {
			s.fail(w, r, http.StatusBadGateway, err)
			return
		}
		v.Total, v.Capped, v.More = bs.Total, bs.Capped, v.Count-len(v.Jobs)
		s.render(w, r, http.StatusOK, "dlq_purge", "Purge from "+sel.Queue+": dry run", v)
		return
	}
	reg := s.dlqActions()
	a, err := reg.start(conn, "purge", sel, func(ctx context.Context, a *dlqAction) error {
		dir, err := reg.dir()
		if err != nil {
			return err
		}
		f, err := os.CreateTemp(dir, "purge-*.ndjson")
		if err != nil {
			return fmt.Errorf("create the export file: %w; nothing deleted", err)
		}
		enc := deadletter.NewEncoder(f)
		deleted, kept, err := deadletter.PurgeRecords(ctx, conn, sel.Queue, sel.Filter, func(rec deadletter.Record) error {
			if err := enc.Encode(rec); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return fmt.Errorf("sync %s: %w", f.Name(), err)
			}
			a.mu.Lock()
			a.Deleted++ // written; deleted next
			a.mu.Unlock()
			return nil
		})
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the export file: %w", cerr)
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.Deleted, a.Skipped, a.Export = deleted, kept, f.Name()
		if err != nil {
			return fmt.Errorf("%w (the %d job(s) deleted are in the export)", err, deleted)
		}
		return nil
	})
	s.started(w, r, sel, a, err)
}

// dlqExport streams the jobs of a dead-letter queue that match the
// request's filter in the export format, as an attachment. It leaves the
// jobs in place.
func (s *Server) dlqExport(w http.ResponseWriter, r *http.Request, queue string) {
	if !isDeadLetterQueue(queue) {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("%q is not a dead-letter queue", queue))
		return
	}
	f, _, err := parseFilter(r.URL.Query(), "id")
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	conn, err := s.dial(r)
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	// Written to a file first: an error after the first byte could no
	// longer be a status, and a download that exists is whole.
	tmp, err := os.CreateTemp("", "warren-export-*.ndjson")
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, fmt.Errorf("create a temporary file: %w", err))
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := deadletter.Export(r.Context(), conn, queue, tmp, deadletter.ExportOptions{Filter: f}); err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	if _, err := tmp.Seek(0, 0); err != nil {
		s.fail(w, r, http.StatusInternalServerError, err)
		return
	}
	name := strings.NewReplacer("/", "_", `"`, "_", "\\", "_").Replace(queue) + "-" + time.Now().UTC().Format("20060102T150405Z") + ".ndjson"
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	http.ServeContent(w, r, name, time.Time{}, tmp)
}

// dlqAction is one replay or purge run by the dashboard.
type dlqAction struct {
	ID    string
	Kind  string // "replay" or "purge"
	Queue string
	Back  string

	mu       sync.Mutex
	Started  time.Time
	Ended    time.Time // zero while it runs
	Read     int
	Total    int
	Moved    int
	Skipped  int
	Deleted  int
	Failures []failedRow
	Err      string
	Export   string // the purge's export file
}

func (a *dlqAction) progress(read, total int) {
	a.mu.Lock()
	a.Read, a.Total = read, total
	a.mu.Unlock()
}

// actionView is a copy of an action, for its page.
type actionView struct {
	ID, Kind, Queue, Back, Err string
	Running                    bool
	Read, Total                int
	Moved, Skipped, Deleted    int
	Failed                     int
	Failures                   []failedRow
	Download                   string // the purge's export, "" when none
	Took                       string
}

func (a *dlqAction) view() actionView {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := actionView{ID: a.ID, Kind: a.Kind, Queue: a.Queue, Back: a.Back, Err: a.Err, Running: a.Ended.IsZero(),
		Read: a.Read, Total: a.Total, Moved: a.Moved, Skipped: a.Skipped, Deleted: a.Deleted,
		Failed: len(a.Failures), Failures: append([]failedRow(nil), a.Failures...)}
	if a.Export != "" && !v.Running {
		v.Download = downloadPath(a.ID)
	}
	if !v.Running {
		v.Took = a.Ended.Sub(a.Started).Round(time.Millisecond).String()
	}
	return v
}

// dlqActionRegistry runs the dashboard's actions, each in a goroutine it
// owns, and keeps their results and export files until it is closed.
type dlqActionRegistry struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	actions map[string]*dlqAction
	order   []string // oldest first, to forget the oldest
	tmp     string   // the export files' directory, made on first use
	closed  bool
}

// maxActions is how many finished actions are remembered.
const maxActions = 100

var (
	registriesMu sync.Mutex
	registries   = map[*Server]*dlqActionRegistry{}
)

// dlqActions returns s's action registry, made on first use.
func (s *Server) dlqActions() *dlqActionRegistry {
	registriesMu.Lock()
	defer registriesMu.Unlock()
	reg, ok := registries[s]
	if !ok {
		ctx, cancel := context.WithCancel(context.Background())
		reg = &dlqActionRegistry{ctx: ctx, cancel: cancel, actions: map[string]*dlqAction{}}
		registries[s] = reg
	}
	return reg
}

// closeDLQActions stops s's running actions, waits for them and removes
// their export files. Closing the Server's broker connection stops them
// too (see start); this also waits.
func (s *Server) closeDLQActions() error {
	registriesMu.Lock()
	reg := registries[s]
	delete(registries, s)
	registriesMu.Unlock()
	if reg == nil {
		return nil
	}
	return reg.Close()
}

// Close stops every running action (a replay or purge interrupted leaves
// the jobs it had not moved parked), waits for them, and removes the
// export files.
func (g *dlqActionRegistry) Close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.tmp != "" {
		return os.RemoveAll(g.tmp)
	}
	return nil
}

func (g *dlqActionRegistry) dir() (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.tmp == "" {
		d, err := os.MkdirTemp("", "warren-ui-")
		if err != nil {
			return "", fmt.Errorf("create a directory for export files: %w; nothing deleted", err)
		}
		g.tmp = d
	}
	return g.tmp, nil
}

// start runs fn in a goroutine the registry owns. Its context ends when
// the registry closes or conn does (Server.Close closes it).
func (g *dlqActionRegistry) start(conn *broker.Conn, kind string, sel selection, fn func(context.Context, *dlqAction) error) (*dlqAction, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	a := &dlqAction{ID: hex.EncodeToString(b[:]), Kind: kind, Queue: sel.Queue, Back: backLink(selection{Queue: sel.Queue, Form: sel.Form}), Started: time.Now()}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errors.New("the dashboard is shutting down; try again once it is back")
	}
	g.actions[a.ID] = a
	g.order = append(g.order, a.ID)
	g.forgetLocked()
	ctx, cancel := context.WithCancel(g.ctx)
	g.wg.Add(2)
	go func() { // ends the action when the connection closes
		defer g.wg.Done()
		select {
		case <-conn.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer g.wg.Done()
		defer cancel()
		err := fn(ctx, a)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.Ended = time.Now()
		if err != nil {
			a.Err = err.Error()
		}
	}()
	return a, nil
}

// forgetLocked drops the oldest finished actions past maxActions, and
// their export files.
func (g *dlqActionRegistry) forgetLocked() {
	for i := 0; len(g.order) > maxActions && i < len(g.order); {
		a := g.actions[g.order[i]]
		a.mu.Lock()
		done, export := !a.Ended.IsZero(), a.Export
		a.mu.Unlock()
		if !done {
			i++
			continue
		}
		if export != "" {
			os.Remove(export)
		}
		delete(g.actions, a.ID)
		g.order = append(g.order[:i], g.order[i+1:]...)
	}
}

func (g *dlqActionRegistry) get(id string) *dlqAction {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.actions[id]
}

// dlqAction shows an action's progress, refreshed every second while it
// runs, then its summary; ?download=export downloads a purge's export.
func (s *Server) dlqAction(w http.ResponseWriter, r *http.Request, id string) {
	a := s.dlqActions().get(id)
	if a == nil {
		s.fail(w, r, http.StatusNotFound, fmt.Errorf("no action %s: the dashboard keeps the last %d, until it restarts", id, maxActions))
		return
	}
	if r.URL.Query().Get("download") == "export" {
		a.mu.Lock()
		path, running := a.Export, a.Ended.IsZero()
		a.mu.Unlock()
		if path == "" || running {
			s.fail(w, r, http.StatusNotFound, errors.New("this action has no export file (yet)"))
			return
		}
		name := strings.NewReplacer("/", "_", `"`, "_").Replace(a.Queue) + "-purged-" + filepath.Base(path)
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		http.ServeFile(w, r, path)
		return
	}
	v := a.view()
	title := fmt.Sprintf("%s of %s", strings.ToUpper(v.Kind[:1])+v.Kind[1:], v.Queue)
	s.render(w, r, http.StatusOK, "dlq_action", title, v)
}

// downloadPath is the path of an action's export download.
func downloadPath(id string) string {
	return "/dlq/actions/" + url.PathEscape(id) + "?download=export"
}
