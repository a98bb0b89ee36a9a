package deadletter

import (
	"fmt"
	"maps"

	"github.com/warrenmq/warren/broker"
)

// failedAtLayout is how warren writes failure times (RFC 3339, UTC,
// milliseconds), as broker.Envelope.Message does.
const failedAtLayout = "2006-01-02T15:04:05.000Z"

// withWarrenHistory returns h with RabbitMQ's dead-letter history (x-death)
// written again as warren's failure headers, for a message published once
// more (an import): the broker's own headers are never sent back (see
// broker.BrokerHeader), since RabbitMQ 3.x would take a later trip through
// a queue the message left before for a dead-letter cycle, and RabbitMQ 4
// ignores them. The class, error, times and origin an operator sees are
// kept. h is returned as it is when warren's headers already say why the
// job failed, or when it has no x-death; otherwise a copy is changed.
func withWarrenHistory(h broker.Table) broker.Table {
	if _, ok := h[broker.HeaderErrorClass]; ok {
		return h
	}
	deaths := broker.Deaths(h)
	if len(deaths) == 0 {
		return h
	}
	last, first := deaths[0], deaths[len(deaths)-1]
	out := maps.Clone(h)
	out[broker.HeaderErrorClass] = rabbitPrefix + last.Reason
	out[broker.HeaderError] = fmt.Sprintf("dead-lettered by RabbitMQ (%s) from queue %q", last.Reason, last.Queue)
	if !first.Time.IsZero() {
		out[broker.HeaderFirstFailedAt] = first.Time.UTC().Format(failedAtLayout)
	}
	if !last.Time.IsZero() {
		out[broker.HeaderFailedAt] = last.Time.UTC().Format(failedAtLayout)
	}
	out[broker.HeaderOriginExchange] = last.Exchange
	out[broker.HeaderOriginQueue] = last.Queue
	key := ""
	if len(last.RoutingKeys) > 0 {
		key = last.RoutingKeys[0]
	}
	out[broker.HeaderOriginRoutingKey] = key
	return out
}
