package broker

import (
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Death is one entry of the x-death header RabbitMQ adds when it
// dead-letters a message itself (not when warren parks a job: warren's
// reasons are in Failure). The newest comes first.
type Death struct {
	// Reason is RabbitMQ's: "rejected" (nacked without requeue),
	// "expired" (message or queue TTL), "maxlen" (queue length limit),
	// "delivery_limit" (a quorum queue's delivery limit: the job crashed
	// or was returned too often).
	Reason      string
	Queue       string // the queue it was dead-lettered from
	Exchange    string // the exchange it had been published to
	RoutingKeys []string
	Count       int64 // how many times it was dead-lettered from Queue for Reason
	Time        time.Time
}

// Deaths reads the x-death header of a message's headers (Envelope.Headers
// keeps it), newest first. Entries it cannot read are skipped.
func Deaths(headers map[string]any) []Death {
	raw, ok := headers["x-death"].([]any)
	if !ok {
		return nil
	}
	var out []Death
	for _, el := range raw {
		var t map[string]any
		switch m := el.(type) {
		case Table:
			t = m
		case map[string]any:
			t = m
		case amqp.Table: // headers as amqp091-go read them
			t = m
		default:
			continue
		}
		d := Death{}
		d.Reason, _ = stringOf(t["reason"])
		d.Queue, _ = stringOf(t["queue"])
		d.Exchange, _ = stringOf(t["exchange"])
		if keys, ok := t["routing-keys"].([]any); ok {
			for _, k := range keys {
				if s, ok := stringOf(k); ok {
					d.RoutingKeys = append(d.RoutingKeys, s)
				}
			}
		}
		if n, err := headerInt("count", t["count"], 0, 1<<62); err == nil {
			d.Count = int64(n)
		}
		if ts, ok := t["time"].(time.Time); ok {
			d.Time = ts.UTC()
		}
		out = append(out, d)
	}
	return out
}

// BrokerHeader reports whether a header is one the broker writes on a
// message it delivers, which a client must not send back when it
// publishes the message again. Publishing never writes them:
//
//   - x-death, x-first-death-*, x-last-death-*: RabbitMQ's dead-letter
//     history. RabbitMQ 3.x honours one a client sends, so a job delayed
//     again through a cascade level it expired from before is taken for a
//     dead-letter cycle and dropped (or, in a quorum queue, kept for ever);
//     RabbitMQ 4.x ignores it. warren keeps its own history in warren-*
//     headers.
//   - x-delivery-count: a quorum queue's count of the delivery being
//     settled, not of the copy.
//   - x-received-from: federation's and the shovel's loop detection.
//   - CC, BCC: sender-selected routing keys, which would route copies of
//     the job to other queues again (RabbitMQ strips BCC, not CC).
//
// Names are matched exactly, as RabbitMQ writes them.
func BrokerHeader(name string) bool {
	switch name {
	case "x-death", "x-delivery-count", "x-received-from", "CC", "BCC":
		return true
	}
	return strings.HasPrefix(name, "x-first-death-") || strings.HasPrefix(name, "x-last-death-")
}

// withoutBrokerHeaders returns h without the headers BrokerHeader names,
// h itself when it has none.
func withoutBrokerHeaders(h amqp.Table) amqp.Table {
	n := 0
	for k := range h {
		if BrokerHeader(k) {
			n++
		}
	}
	if n == 0 {
		return h
	}
	out := make(amqp.Table, len(h)-n)
	for k, v := range h {
		if !BrokerHeader(k) {
			out[k] = v
		}
	}
	return out
}
