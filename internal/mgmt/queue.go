package mgmt

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

// QueueDetail is one queue with what only its own page shows: the policy
// in effect, its consumers, and its rates' samples.
type QueueDetail struct {
	Queue
	// EffectivePolicy is the definition of the policy in effect, if any.
	EffectivePolicy map[string]any  `json:"effective_policy_definition"`
	ConsumerDetails []QueueConsumer `json:"consumer_details"`
}

// QueueConsumer is a consumer of a queue.
type QueueConsumer struct {
	Tag           string         `json:"consumer_tag"`
	Prefetch      int64          `json:"prefetch_count"`
	AckRequired   bool           `json:"ack_required"`
	ChannelDetail ChannelDetails `json:"channel_details"`
}

// QueueDetail reads one queue (GET /api/queues/{vhost}/{name}) with its
// rates sampled every step over the last age (msg_rates_age and
// msg_rates_incr, in seconds); with age zero, without samples (the API
// refuses an age of 0).
func (c *Client) QueueDetail(ctx context.Context, name string, age, step time.Duration) (*QueueDetail, error) {
	path := c.vhostPath("queues") + "/" + url.PathEscape(name)
	if age > 0 {
		path += fmt.Sprintf("?msg_rates_age=%d&msg_rates_incr=%d", int(age.Seconds()), max(1, int(step.Seconds())))
	}
	var out QueueDetail
	if err := c.get(ctx, path, &out); err != nil {
		return nil, err
	}
	out.Arguments = normalizeTable(out.Arguments)
	out.EffectivePolicy = normalizeTable(out.EffectivePolicy)
	return &out, nil
}
