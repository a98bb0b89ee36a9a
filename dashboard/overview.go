package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/warrenmq/warren/internal/inspect"
	"github.com/warrenmq/warren/internal/mgmt"
)

// overviewRoutes registers the overview, queue, workers and topology pages.
func (s *Server) overviewRoutes() {
	s.mux.HandleFunc("GET /{$}", s.overview)
	s.mux.HandleFunc("GET /api/overview", s.overviewJSON)
	s.mux.HandleFunc("GET /queues/{name}", s.queuePage)
	s.mux.HandleFunc("POST /queues/{name}/{action}", s.action(s.queuePause))
	s.mux.HandleFunc("GET /workers", s.workers)
	s.mux.HandleFunc("GET /topology", s.topologyPage)
}

// counts is what the overview shows of the queues, and what
// /api/overview answers: read with one call to the management API.
type counts struct {
	Queues []inspect.Row  `json:"queues"`
	Delay  *inspect.Delay `json:"delay"`
	Read   time.Time      `json:"read"`
}

// readCounts reads every queue's counts with one call to the management
// API (GET /api/queues/{vhost}?columns=…).
func (s *Server) readCounts(ctx context.Context) (*counts, error) {
	queues, err := s.mgmt.QueueCounts(ctx)
	if err != nil {
		return nil, err
	}
	return &counts{Queues: s.workRows(inspect.Rows(s.opts.Topology, queues)), Delay: inspect.DelayCounts(queues), Read: time.Now().UTC()}, nil
}

// workRows keeps the work queues' rows: a dead-letter queue is shown on
// its work queue's row, and on the dead-letter pages.
func (s *Server) workRows(rows []inspect.Row) []inspect.Row {
	return slices.DeleteFunc(rows, func(r inspect.Row) bool {
		if t := s.opts.Topology; t != nil {
			q, ok := t.Queue(r.Name)
			return ok && q.Derived
		}
		return strings.HasSuffix(r.Name, ".dlq")
	})
}

// brokerState is the overview's broker section.
type brokerState struct {
	Management string // its URL, password masked
	Vhost      string
	Nodes      []mgmt.Node
	NodesErr   string
	AMQP       bool
	AMQPErr    string
}

type overviewData struct {
	*counts
	Broker       brokerState
	TopologyPath string
	Refresh      int // milliseconds between refreshes
}

// refreshEvery is how often app.js refreshes the counts; the management
// API itself refreshes them every 5 s by default.
const refreshEvery = 2 * time.Second

func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	c, err := s.readCounts(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	d := overviewData{counts: c, TopologyPath: s.opts.TopologyPath, Refresh: int(refreshEvery / time.Millisecond)}
	d.Broker = s.brokerState(r.Context())
	s.render(w, r, http.StatusOK, "overview", "Overview", d)
}

// brokerState reads the nodes from the management API and checks that
// the broker's AMQP port answers, each within a few seconds.
func (s *Server) brokerState(ctx context.Context) brokerState {
	b := brokerState{Management: s.mgmt.URL(), Vhost: s.mgmt.Vhost()}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nodes, err := s.mgmt.Nodes(ctx)
	if err != nil {
		b.NodesErr = err.Error()
	}
	b.Nodes = nodes
	if _, err := s.brokerConn(ctx); err != nil {
		b.AMQPErr = err.Error()
	} else {
		b.AMQP = true
	}
	return b
}

func (s *Server) overviewJSON(w http.ResponseWriter, r *http.Request) {
	c, err := s.readCounts(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(c)
}
