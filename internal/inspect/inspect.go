// Package inspect reads what warren shows of a broker from the management
// API's queue list: a row per work queue (its counts, rates, dead-letter
// and quarantine depths) and the jobs waiting in the delay cascade. It is
// shared by `warren stats` and the dashboard, so both count alike.
package inspect

import (
	"strings"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/mgmt"
	"github.com/warrenmq/warren/topology"
)

// Row is one work queue's counts.
type Row struct {
	Name    string `json:"name"`
	Type    string `json:"type,omitempty"`
	Exists  bool   `json:"exists"`
	Ready   int64  `json:"ready"`
	Unacked int64  `json:"unacked"`
	// DeadLetterQueue is the queue's .dlq; DeadLettered its depth, nil
	// when the queue has no .dlq (it is one, or dead-letters elsewhere, or
	// the .dlq is missing).
	DeadLetterQueue string `json:"dead_letter_queue,omitempty"`
	DeadLettered    *int64 `json:"dead_lettered"`
	// Quarantined is the depth of the queue's .quarantine (jobs waiting to
	// run alone after a worker died holding them), nil without one.
	Quarantined *int64 `json:"quarantined,omitempty"`
	Consumers   int64  `json:"consumers"`
	Rates       *Rates `json:"rates"` // nil until the queue has seen a message
	// Paused: warren queue pause stopped the workers consuming it (its
	// broker.PausedMarker exists).
	Paused bool `json:"paused"`
	// BreakersOpen is how many worker pools have their circuit breaker
	// on the queue open, and consume its broker.BreakerMarker instead of
	// it (the marker's consumers). Those pools are not among Consumers:
	// of the pools taking part, BreakersOpen of Consumers+BreakersOpen
	// are open.
	BreakersOpen int64 `json:"breakers_open"`
}

// Rates are a queue's message rates per second.
type Rates struct {
	Publish float64 `json:"publish"`
	Deliver float64 `json:"deliver"`
	Ack     float64 `json:"ack"`
}

// IsQuarantine reports whether q is the quarantine queue of one of t's
// work queues (shown on that queue's row).
func IsQuarantine(t *topology.Topology, q topology.Queue) bool {
	base, ok := strings.CutSuffix(q.Name, ".quarantine")
	if !q.Derived || !ok {
		return false
	}
	w, ok := t.Queue(base)
	return ok && w.QuarantineQueue == q.Name
}

// Rows picks the queues to show: t's work queues and dead-letter queues,
// in file order, or without t every queue but warren's own (warren.*) and
// the quarantine queues (shown on their work queue's row).
func Rows(t *topology.Topology, queues []mgmt.Queue) []Row {
	byName := make(map[string]mgmt.Queue, len(queues))
	for _, q := range queues {
		byName[q.Name] = q
	}
	row := func(name, dlq string) Row {
		q, ok := byName[name]
		r := Row{Name: name, Exists: ok, DeadLetterQueue: dlq}
		if !ok {
			return r
		}
		_, r.Paused = byName[broker.PausedMarker(name)]
		if m, ok := byName[broker.BreakerMarker(name)]; ok {
			r.BreakersOpen = m.Consumers
		}
		r.Type, r.Ready, r.Unacked, r.Consumers = q.Type, q.MessagesReady, q.MessagesUnacknowledged, q.Consumers
		if s := q.MessageStats; s != nil {
			r.Rates = &Rates{Publish: rateOf(s.PublishDetails), Deliver: rateOf(s.DeliverGetDetails), Ack: rateOf(s.AckDetails)}
		}
		if d, ok := byName[dlq]; ok && dlq != "" {
			n := d.Messages
			r.DeadLettered = &n
		}
		if d, ok := byName[topology.QuarantineQueueName(name)]; ok {
			n := d.Messages
			r.Quarantined = &n
		}
		return r
	}
	rows := []Row{}
	if t != nil {
		for _, q := range t.Queues {
			if !strings.HasPrefix(q.Name, topology.ReservedPrefix) && !IsQuarantine(t, q) {
				rows = append(rows, row(q.Name, q.DeadLetterQueue))
			}
		}
		return rows
	}
	for _, q := range queues {
		if strings.HasPrefix(q.Name, topology.ReservedPrefix) {
			continue
		}
		if base, ok := strings.CutSuffix(q.Name, ".quarantine"); ok {
			if _, ok := byName[base]; ok {
				continue // shown on its work queue's row
			}
		}
		dlq := topology.DeadLetterQueueName(q.Name)
		if _, ok := byName[dlq]; !ok || strings.HasSuffix(q.Name, ".dlq") {
			dlq = ""
		}
		rows = append(rows, row(q.Name, dlq))
	}
	return rows
}

func rateOf(r *mgmt.Rate) float64 {
	if r == nil {
		return 0
	}
	return r.Rate
}

// Delay is what waits in the delay cascade: jobs retrying or scheduled,
// per level, and those whose delay ended with no queue to take them.
type Delay struct {
	// Declared is false when the vhost has no cascade (no topology was
	// applied there).
	Declared bool `json:"declared"`
	// Total is the jobs in every level: retrying or scheduled.
	Total int64 `json:"total"`
	// Levels are the levels holding jobs, longest first.
	Levels []DelayLevel `json:"levels"`
	// Unroutable is the depth of warren.delay.unroutable.
	Unroutable int64 `json:"unroutable"`
	// ByQueue (with `warren stats --by-origin`) counts the jobs read, per
	// queue they are delayed for; Sampled says how many were read.
	ByQueue []DelayOrigin `json:"by_queue,omitempty"`
	Sampled *DelaySample  `json:"sampled,omitempty"`
}

// DelayLevel is one level of the cascade holding jobs.
type DelayLevel struct {
	Queue    string `json:"queue"`
	Seconds  int64  `json:"seconds"` // how long the level holds a job
	Messages int64  `json:"messages"`
}

// DelayOrigin counts the jobs read in the cascade for one queue:
// retrying (they carry a failure), scheduled (they do not), and
// unroutable (in warren.delay.unroutable, either kind).
type DelayOrigin struct {
	Queue      string `json:"queue"`
	Retrying   int64  `json:"retrying"`
	Scheduled  int64  `json:"scheduled"`
	Unroutable int64  `json:"unroutable"`
}

// DelaySample says how many jobs of the cascade were read to count them
// per queue.
type DelaySample struct {
	Read     int64 `json:"read"`      // messages read
	Of       int64 `json:"of"`        // messages in the cascade's queues, as counted
	PerQueue int   `json:"per_queue"` // the most read from one queue
}

// DelayCounts reads the cascade's depths from the management API's queue
// list (as lagging as the rest of its counts).
func DelayCounts(queues []mgmt.Queue) *Delay {
	byName := make(map[string]mgmt.Queue, len(queues))
	for _, q := range queues {
		byName[q.Name] = q
	}
	s := &Delay{Levels: []DelayLevel{}}
	for level := topology.DelayLevels - 1; level >= 0; level-- {
		q, ok := byName[topology.DelayExchangeName(level)]
		if !ok {
			continue
		}
		s.Declared = true
		s.Total += q.Messages
		if q.Messages > 0 {
			s.Levels = append(s.Levels, DelayLevel{Queue: q.Name, Seconds: 1 << level, Messages: q.Messages})
		}
	}
	if q, ok := byName[topology.DelayUnroutable]; ok {
		s.Declared = true
		s.Unroutable = q.Messages
	}
	return s
}
