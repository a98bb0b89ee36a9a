// Package dashboard serves warren's web dashboard: queues, dead letters and
// the topology, for operators to look and act in one place.
//
// It is a plain http.Handler with server-rendered pages (html/template,
// assets embedded in the binary, no external fonts or scripts), served by
// `warren ui` and, as an option, by a worker daemon's HTTP server. It reads
// the broker through the management API and touches jobs only in
// dead-letter queues, with the same confirm-then-ack protocol as the CLI:
// it never consumes a work queue.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/mgmt"
	"github.com/warrenmq/warren/topology"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure a dashboard.
type Options struct {
	// URLs are the broker's AMQP URLs, tried in turn; the dashboard dials
	// them only to read and move dead letters.
	URLs []string
	// ManagementURL is the management API's base URL, credentials
	// included (http://user:pass@host:15672); empty: derived from the
	// first of URLs.
	ManagementURL string
	// Topology, when set, is the file the pages compare the broker with;
	// without it the dashboard lists every queue of the vhost.
	Topology *topology.Topology
	// TopologyPath is the file Topology was read from, shown on its page.
	TopologyPath string
	// ReadOnly refuses every action that changes the broker.
	ReadOnly bool
	// Token, when set, is required of every request (Authorization:
	// Bearer, or the session cookie the login page sets). `warren ui`
	// requires one when it listens beyond loopback.
	Token string
	// Prefix is the path the dashboard is mounted at ("" or "/ui"),
	// without a trailing slash.
	Prefix string
	// Logger logs the actions taken and the errors met; zero: none.
	Logger zerolog.Logger
}

// Server is the dashboard's http.Handler. Close it to release its broker
// connection.
type Server struct {
	opts  Options
	mgmt  *mgmt.Client
	pages map[string]*template.Template
	mux   *http.ServeMux
	h     http.Handler

	sessionKey [32]byte // signs the session cookie (auth.go)

	connMu sync.Mutex
	conn   *broker.Conn
}

// New returns a dashboard for the broker opts name. It does not dial:
// pages report a broker that cannot be reached.
func New(opts Options) (*Server, error) {
	if len(opts.URLs) == 0 {
		return nil, errors.New("dashboard: no broker URL: set Options.URLs (amqp://user:pass@host:5672/vhost)")
	}
	if opts.Prefix != "" && (!strings.HasPrefix(opts.Prefix, "/") || strings.HasSuffix(opts.Prefix, "/")) {
		return nil, fmt.Errorf("dashboard: prefix %q: start it with / and end it without one, as /ui", opts.Prefix)
	}
	mgmtURL := opts.ManagementURL
	if mgmtURL == "" {
		u, err := mgmt.URLFromAMQP(opts.URLs[0])
		if err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
		mgmtURL = u
	}
	vhost, err := mgmt.VhostFromAMQP(opts.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	mc, err := mgmt.New(mgmtURL, vhost)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	s := &Server{opts: opts, mgmt: mc, mux: http.NewServeMux(), sessionKey: newSessionKey()}
	if s.pages, err = parsePages(s.funcs()); err != nil {
		mc.Close()
		return nil, err
	}
	s.routes()
	s.h = s.authenticate(http.NewCrossOriginProtection().Handler(s.mux))
	if opts.Prefix != "" {
		s.h = http.StripPrefix(opts.Prefix, s.h)
	}
	return s, nil
}

// ServeHTTP serves the dashboard.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

// Close closes the dashboard's broker connection, if it dialed one.
func (s *Server) Close() error {
	actionsErr := s.closeDLQActions() // stops running replays and purges first
	s.mgmt.Close()
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn != nil {
		err := s.conn.Close()
		s.conn = nil
		return errors.Join(actionsErr, err)
	}
	return actionsErr
}

// routes registers every page. Each part of the dashboard registers its
// own in its file's routes function.
func (s *Server) routes() {
	s.mux.Handle("GET /static/", http.FileServerFS(staticFS))
	s.authRoutes()
	s.overviewRoutes()
	s.deadLetterRoutes()
}

// brokerConn returns the dashboard's AMQP connection, dialing it the first
// time (and again after it closed).
func (s *Server) brokerConn(ctx context.Context) (*broker.Conn, error) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn != nil {
		select {
		case <-s.conn.Done():
			s.conn = nil
		default:
			return s.conn, nil
		}
	}
	c, err := broker.Dial(ctx, s.opts.URLs, broker.WithName("warren-ui"), broker.WithLogger(s.opts.Logger))
	if err != nil {
		return nil, err
	}
	s.conn = c
	return c, nil
}

// action wraps a handler that changes the broker (POST): it refuses in
// read-only mode. Cross-origin requests are refused for every route by
// http.CrossOriginProtection.
func (s *Server) action(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.ReadOnly {
			s.fail(w, r, http.StatusForbidden, errors.New("the dashboard is read-only (--read-only): it changes nothing on the broker"))
			return
		}
		h(w, r)
	}
}

// page is what every page template receives.
type page struct {
	Title    string
	Nav      string // the nav entry to mark current
	Prefix   string
	ReadOnly bool
	Auth     bool // a token is required: the layout offers to log out
	Data     any
}

// render writes the page named name (templates/name.html in the layout).
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	t, ok := s.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var b strings.Builder
	p := page{Title: title, Nav: navOf(name), Prefix: s.opts.Prefix, ReadOnly: s.opts.ReadOnly, Auth: s.opts.Token != "", Data: data}
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		s.opts.Logger.Error().Err(err).Str("page", name).Msg("dashboard: render")
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// navOf names the navigation entry a page belongs to: the dead-letter
// pages (dlq_queue, dlq_job, dlq_replay…) to "dlq", a queue's page to the
// overview that lists it.
func navOf(page string) string {
	section, _, _ := strings.Cut(page, "_")
	if section == "queue" {
		return "overview"
	}
	return section
}

// fail renders an error page that says what went wrong.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	s.render(w, r, status, "error", http.StatusText(status), err.Error())
}

func (s *Server) funcs() template.FuncMap {
	return template.FuncMap{
		"path":  func(p string) string { return s.opts.Prefix + p },
		"deref": func(n *int64) int64 { return *n },
		"table": tableString,
	}
}

// parsePages parses each page of templates/ with the layout.
func parsePages(funcs template.FuncMap) (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}
