package mgmt

import (
	"context"
	"errors"
	"net/url"
)

// Message is a message as the management API's get-messages returns it:
// where it was published and its properties. The payload is not kept.
type Message struct {
	Exchange    string `json:"exchange"`
	RoutingKey  string `json:"routing_key"`
	Redelivered bool   `json:"redelivered"`
	Properties  struct {
		MessageID string         `json:"message_id"`
		Type      string         `json:"type"`
		Headers   map[string]any `json:"headers"`
	} `json:"properties"`
}

// PeekMessages reads up to count messages from the head of queue without
// taking them (POST /api/queues/{vhost}/{queue}/get, ackmode
// ack_requeue_true): the broker hands them out and puts them back, in
// order. It reads what is ready, not what consumers hold. Each one read is
// marked redelivered in the queue, and counted as delivered in its
// statistics.
func (c *Client) PeekMessages(ctx context.Context, queue string, count int) ([]Message, error) {
	if count <= 0 {
		return nil, errors.New("mgmt: PeekMessages: count must be positive")
	}
	req := struct {
		Count    int    `json:"count"`
		Ackmode  string `json:"ackmode"`
		Encoding string `json:"encoding"`
		Truncate int    `json:"truncate"`
	}{count, "ack_requeue_true", "auto", 1}
	var out []Message
	if err := c.do(ctx, "POST", c.vhostPath("queues")+"/"+url.PathEscape(queue)+"/get", req, &out); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Properties.Headers = normalizeTable(out[i].Properties.Headers)
	}
	return out, nil
}
