package mgmt

import (
	"strings"

	"github.com/warrenmq/warren/topology"
)

// Row is one queue's counts as warren shows them (warren stats' line and
// --json entry, the dashboard's overview row).
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

// Rates are a queue's message rates per second.
type Rates struct {
	Publish float64 `json:"publish"`
	Deliver float64 `json:"deliver"`
	Ack     float64 `json:"ack"`
}

// Rows picks the queues to show: t's work queues and dead-letter
// queues, or without t every queue but warren's.
func Rows(t *topology.Topology, queues []Queue) []Row {
	byName := make(map[string]Queue, len(queues))
	for _, q := range queues {
		byName[q.Name] = q
	}
	row := func(name, dlq string) Row {
		q, ok := byName[name]
		r := Row{Name: name, Exists: ok, DeadLetterQueue: dlq}
		if !ok {
			return r
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

func rateOf(r *Rate) float64 {
	if r == nil {
		return 0
	}
	return r.Rate
}
