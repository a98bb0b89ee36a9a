package mgmt

import (
	"context"
	"encoding/json"
	"net/url"
)

// Connection is a client connection as the management API describes it,
// with the properties the client sent when it connected (warren's:
// connection_name, host, pid, version, queues, concurrency).
type Connection struct {
	Name             string         `json:"name"`
	User             string         `json:"user"`
	PeerHost         string         `json:"peer_host"`
	PeerPort         int            `json:"peer_port"`
	State            string         `json:"state"`
	Channels         int64          `json:"channels"`
	ConnectedAt      int64          `json:"connected_at"` // milliseconds since the epoch
	ClientProperties map[string]any `json:"client_properties"`
}

// Connections lists the virtual host's client connections
// (GET /api/vhosts/{vhost}/connections).
func (c *Client) Connections(ctx context.Context) ([]Connection, error) {
	var out []Connection
	if err := c.get(ctx, "/api/vhosts/"+url.PathEscape(c.vhost)+"/connections", &out); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].ClientProperties = normalizeTable(out[i].ClientProperties)
	}
	return out, nil
}

// Consumer is a consumer of one of the virtual host's queues.
type Consumer struct {
	Tag           string                `json:"consumer_tag"`
	Prefetch      int64                 `json:"prefetch_count"`
	AckRequired   bool                  `json:"ack_required"`
	Queue         struct{ Name string } `json:"queue"`
	ChannelDetail ChannelDetails        `json:"channel_details"`
}

// ChannelDetails name a consumer's channel and its connection; empty when
// the API does not know them (it sends [] then).
type ChannelDetails struct {
	Name           string `json:"name"`
	ConnectionName string `json:"connection_name"`
}

// UnmarshalJSON reads the object, or the empty list the API sends for
// unknown details.
func (d *ChannelDetails) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		*d = ChannelDetails{}
		return nil
	}
	type plain ChannelDetails
	return json.Unmarshal(b, (*plain)(d))
}

// Consumers lists the virtual host's consumers (GET /api/consumers/{vhost}).
func (c *Client) Consumers(ctx context.Context) ([]Consumer, error) {
	var out []Consumer
	if err := c.get(ctx, c.vhostPath("consumers"), &out); err != nil {
		return nil, err
	}
	return out, nil
}
