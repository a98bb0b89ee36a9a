package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// ErrUnreachable is returned, wrapped, when nothing answers at the
// management API's URL.
var ErrUnreachable = errors.New("mgmt: the management API does not answer")

// ErrUnknownURL is returned, wrapped, by URLFromAMQP for a broker URL on
// another port than AMQP's standard one: such a broker is another node
// (a private one, a second broker on the machine), whose management API
// is not where the standard port's is. Its URL must be given.
var ErrUnknownURL = errors.New("mgmt: the management API's URL cannot be derived from the broker URL")

// StatusError is an answer of the management API other than a success
// (2xx).
type StatusError struct {
	Method string
	Path   string // e.g. "/api/queues/%2F"
	Status int    // e.g. 401
	// Reason is the API's own explanation ("reason" in its JSON answer),
	// or the start of the body.
	Reason string
	// Hint says what to do; may be empty.
	Hint string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("mgmt: %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Client reads one virtual host through the management HTTP API. Its
// methods are safe for concurrent use; Close it when done.
type Client struct {
	base     string // scheme://host:port[/prefix], without credentials or trailing slash
	shown    string // the URL with the password masked, for messages
	user     string
	password string
	vhost    string
	http     *http.Client
	own      bool // http is the client's own, closed by Close
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient sets the HTTP client, which Close leaves open. By
// default the Client has its own, with http.DefaultTransport's settings.
// Bound each call with its context rather than the client's Timeout.
func WithHTTPClient(h *http.Client) Option {
	return func(c *Client) error {
		if h == nil {
			return errors.New("mgmt: WithHTTPClient: nil client")
		}
		c.http, c.own = h, false
		return nil
	}
}

// WithCredentials sets the user and password used when the URL gives none;
// default guest/guest, as for AMQP.
func WithCredentials(user, password string) Option {
	return func(c *Client) error {
		if user == "" {
			return errors.New("mgmt: WithCredentials: empty user")
		}
		if c.user == "" {
			c.user, c.password = user, password
		}
		return nil
	}
}

// New returns a client of the management API at baseURL, e.g.
// "http://guest:guest@127.0.0.1:15672" (a path, for an API behind a
// proxy, is kept as a prefix), for the virtual host vhost ("/" when empty).
func New(baseURL, vhost string, opts ...Option) (*Client, error) {
	u, err := parseURL(baseURL)
	if err != nil {
		return nil, fmt.Errorf("mgmt: invalid management URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("mgmt: management URL %s: want http:// or https://", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("mgmt: management URL %s has no host", u.Redacted())
	}
	if vhost == "" {
		vhost = "/"
	}
	c := &Client{vhost: vhost}
	if u.User != nil {
		c.user = u.User.Username()
		c.password, _ = u.User.Password()
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.user == "" {
		c.user, c.password = "guest", "guest"
	}
	if c.http == nil {
		c.http = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		c.own = true
	}
	shown := *u
	shown.User = url.UserPassword(c.user, c.password)
	c.shown = strings.TrimSuffix(shown.Redacted(), "/")
	u.User = nil
	u.RawQuery, u.Fragment = "", ""
	c.base = strings.TrimSuffix(u.String(), "/")
	return c, nil
}

// Close closes the idle connections of the client's own HTTP client, and
// with them their goroutines. It does not interrupt calls in progress.
func (c *Client) Close() {
	if c.own {
		c.http.CloseIdleConnections()
	}
}

// URL returns the API's base URL with the password masked
// ("http://guest:xxxxx@127.0.0.1:15672"), for messages.
func (c *Client) URL() string { return c.shown }

// Vhost returns the virtual host the client reads.
func (c *Client) Vhost() string { return c.vhost }

// get fetches path (e.g. "/api/queues/%2F") and decodes the JSON answer
// into v, numbers in interface values as json.Number.
func (c *Client) get(ctx context.Context, path string, v any) error {
	return c.do(ctx, http.MethodGet, path, nil, v)
}

// do sends a request with in, if not nil, as its JSON body, and decodes
// the JSON answer into out, if not nil, numbers in interface values as
// json.Number. Any 2xx status is a success.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("mgmt: %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("mgmt: %s %s: %w", method, path, err)
	}
	req.SetBasicAuth(c.user, c.password)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("mgmt: %s %s at %s: %w", method, path, c.shown, ctx.Err())
		}
		var op *net.OpError
		if errors.As(err, &op) {
			return fmt.Errorf("%w at %s (%v): enable it with `rabbitmq-plugins enable rabbitmq_management`, "+
				"or give its URL with --management-url (env WARREN_MANAGEMENT_URL)", ErrUnreachable, c.shown, op)
		}
		return fmt.Errorf("mgmt: %s %s at %s: %w", method, path, c.shown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := c.statusError(path, resp).(*StatusError)
		e.Method = method
		return e
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("mgmt: %s %s at %s: the answer is not the management API's JSON (is this the management API's URL?): %w", method, path, c.shown, err)
	}
	return nil
}

func (c *Client) statusError(path string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &StatusError{Method: http.MethodGet, Path: path, Status: resp.StatusCode}
	var answer struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(body, &answer) == nil && (answer.Reason != "" || answer.Error != "") {
		e.Reason = answer.Reason
		if e.Reason == "" {
			e.Reason = answer.Error
		}
	} else {
		e.Reason = strings.TrimSpace(string(body))
		if len(e.Reason) > 200 {
			e.Reason = e.Reason[:200] + "…"
		}
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		e.Hint = fmt.Sprintf("check the user and password in the broker URL or --management-url (%s), and that user %q has the management tag", c.shown, c.user)
	case http.StatusNotFound:
		e.Hint = fmt.Sprintf("check that virtual host %q exists (it is the broker URL's path) and that %s is the management API", c.vhost, c.shown)
	}
	return e
}

// parseURL parses raw. Its errors never show the URL, which may hold a
// password; when raw has user information, nor the parser's words, which
// can quote a piece of the password (what url.Parse took for a port, when
// a "#" or a "/" in the password, not percent-encoded, cut the URL short).
// A URL whose "@" does not end its user information, cut short in the same
// way but parsed, is refused too: its password would be in the path or
// fragment, shown in messages.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err == nil && (u.User != nil || !strings.Contains(raw, "@")) {
		return u, nil
	}
	if strings.Contains(raw, "@") {
		return nil, errors.New("it does not parse as a URL with a user and password; percent-encode any reserved character (: / ? # @ % or a space) in them, as net/url.UserPassword does")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return nil, ue.Err
	}
	return nil, err
}

func (c *Client) vhostPath(collection string) string {
	return "/api/" + collection + "/" + url.PathEscape(c.vhost)
}

// Exchange is an exchange as the management API describes it.
type Exchange struct {
	Name       string         `json:"name"`
	Vhost      string         `json:"vhost"`
	Type       string         `json:"type"`
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Internal   bool           `json:"internal"`
	Arguments  map[string]any `json:"arguments"`
}

// Queue is a queue as the management API describes it, with the counts
// and rates warren shows. The counts lag the queue by up to the broker's
// statistics interval (5 seconds by default).
type Queue struct {
	Name       string         `json:"name"`
	Vhost      string         `json:"vhost"`
	Type       string         `json:"type"` // "classic", "quorum", "stream"
	Durable    bool           `json:"durable"`
	AutoDelete bool           `json:"auto_delete"`
	Exclusive  bool           `json:"exclusive"`
	Arguments  map[string]any `json:"arguments"`
	// Policy is the name of the policy that applies, if any.
	Policy string `json:"policy"`
	State  string `json:"state"`
	// Messages is MessagesReady + MessagesUnacknowledged.
	Messages               int64 `json:"messages"`
	MessagesReady          int64 `json:"messages_ready"`
	MessagesUnacknowledged int64 `json:"messages_unacknowledged"`
	Consumers              int64 `json:"consumers"`
	// MessageStats is nil until the queue has seen a message.
	MessageStats *MessageStats `json:"message_stats"`
}

// MessageStats are a queue's message counters since it started, each with
// its rate over the last sampling period.
type MessageStats struct {
	Publish        int64 `json:"publish"`
	PublishDetails *Rate `json:"publish_details"`
	// DeliverGet counts every delivery: to consumers, with or without
	// acks, and basic.get.
	DeliverGet        int64 `json:"deliver_get"`
	DeliverGetDetails *Rate `json:"deliver_get_details"`
	Ack               int64 `json:"ack"`
	AckDetails        *Rate `json:"ack_details"`
	Redeliver         int64 `json:"redeliver"`
	RedeliverDetails  *Rate `json:"redeliver_details"`
}

// Rate is a counter's rate per second.
type Rate struct {
	Rate float64 `json:"rate"`
	// Samples are the counter's values over time, newest first; only
	// QueueDetail asks for them.
	Samples []Sample `json:"samples,omitempty"`
}

// Sample is a counter's value at a time.
type Sample struct {
	Sample    int64 `json:"sample"`
	Timestamp int64 `json:"timestamp"` // milliseconds since the epoch
}

// Binding is a binding as the management API describes it. Source "" is
// the default exchange, whose implicit bindings the API lists too.
type Binding struct {
	Source          string         `json:"source"`
	Vhost           string         `json:"vhost"`
	Destination     string         `json:"destination"`
	DestinationType string         `json:"destination_type"` // "queue" or "exchange"
	RoutingKey      string         `json:"routing_key"`
	Arguments       map[string]any `json:"arguments"`
}

// Exchanges lists the virtual host's exchanges (GET /api/exchanges/{vhost}),
// RabbitMQ's own included.
func (c *Client) Exchanges(ctx context.Context) ([]Exchange, error) {
	var out []Exchange
	if err := c.get(ctx, c.vhostPath("exchanges"), &out); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Arguments = normalizeTable(out[i].Arguments)
	}
	return out, nil
}

// Queues lists the virtual host's queues (GET /api/queues/{vhost}).
func (c *Client) Queues(ctx context.Context) ([]Queue, error) {
	var out []Queue
	if err := c.get(ctx, c.vhostPath("queues"), &out); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Arguments = normalizeTable(out[i].Arguments)
	}
	return out, nil
}

// queueCountColumns are the fields QueueCounts asks for.
var queueCountColumns = strings.Join([]string{
	"name", "type", "messages", "messages_ready", "messages_unacknowledged", "consumers",
	"message_stats.publish_details.rate", "message_stats.deliver_get_details.rate", "message_stats.ack_details.rate",
}, ",")

// QueueCounts lists the virtual host's queues with only their names,
// types, counts and rates (GET /api/queues/{vhost}?columns=…): one call,
// lighter than Queues, for views that refresh.
func (c *Client) QueueCounts(ctx context.Context) ([]Queue, error) {
	var out []Queue
	if err := c.get(ctx, c.vhostPath("queues")+"?columns="+url.QueryEscape(queueCountColumns), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Bindings lists the virtual host's bindings (GET /api/bindings/{vhost}),
// the default exchange's included.
func (c *Client) Bindings(ctx context.Context) ([]Binding, error) {
	var out []Binding
	if err := c.get(ctx, c.vhostPath("bindings"), &out); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Arguments = normalizeTable(out[i].Arguments)
	}
	return out, nil
}
