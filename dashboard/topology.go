package dashboard

import (
	"net/http"
	"sort"
	"strings"

	"github.com/warrenmq/warren/topology"
)

// topologyQueue is a work queue of the file with the queues warren
// derives for it (its .dlq and .quarantine), folded under it.
type topologyQueue struct {
	topology.Queue
	Derived []topology.Queue
}

type topologyData struct {
	Path             string
	Exchanges        []topology.Exchange
	DerivedExchanges []topology.Exchange
	Queues           []topologyQueue
	Shared           []topology.Queue // derived queues of no one queue: the delay cascade
	Bindings         []topology.Binding
	DerivedBindings  []topology.Binding
	Routes           []topology.Route
	Changes          []topology.Change
	Pending          int // changes but the extras
	DriftErr         string
}

func (s *Server) topologyPage(w http.ResponseWriter, r *http.Request) {
	t := s.opts.Topology
	if t == nil {
		s.render(w, r, http.StatusOK, "topology", "Topology", nil)
		return
	}
	d := topologyData{Path: s.opts.TopologyPath}
	for _, x := range t.Exchanges {
		if x.Derived {
			d.DerivedExchanges = append(d.DerivedExchanges, x)
		} else {
			d.Exchanges = append(d.Exchanges, x)
		}
	}
	owner := map[string]int{}
	for _, q := range t.Queues {
		if !q.Derived {
			owner[q.DeadLetterQueue] = len(d.Queues)
			owner[q.QuarantineQueue] = len(d.Queues)
			d.Queues = append(d.Queues, topologyQueue{Queue: q})
		}
	}
	delete(owner, "")
	for _, q := range t.Queues {
		if !q.Derived {
			continue
		}
		if i, ok := owner[q.Name]; ok {
			d.Queues[i].Derived = append(d.Queues[i].Derived, q)
		} else {
			d.Shared = append(d.Shared, q)
		}
	}
	for _, b := range t.Bindings {
		if b.Derived {
			d.DerivedBindings = append(d.DerivedBindings, b)
		} else {
			d.Bindings = append(d.Bindings, b)
		}
	}
	for _, rt := range t.Routes {
		d.Routes = append(d.Routes, rt)
	}
	sort.Slice(d.Routes, func(i, j int) bool { return d.Routes[i].JobType < d.Routes[j].JobType })
	live, err := s.mgmt.Live(r.Context())
	if err != nil {
		d.DriftErr = err.Error()
	} else {
		d.Changes = topology.Plan(t, live)
		for _, c := range d.Changes {
			if c.Action != topology.ActionExtra {
				d.Pending++
			}
		}
	}
	s.render(w, r, http.StatusOK, "topology", "Topology", d)
}

// tableString shows a topology table (arguments) as k=v pairs.
func tableString(t topology.Table) string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + fmtAny(t[k]))
	}
	return b.String()
}
