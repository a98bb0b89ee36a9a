package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"
)

// DefaultURL is the broker a development machine runs.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// Option configures Dial. Options can fail: a bad value is an error from
// Dial, never a panic.
type Option func(*options) error

type options struct {
	name        string
	heartbeat   time.Duration
	tls         *tls.Config
	log         zerolog.Logger
	dialTimeout time.Duration
}

func defaultOptions() options {
	return options{
		heartbeat:   10 * time.Second,
		log:         zerolog.Nop(),
		dialTimeout: 15 * time.Second,
	}
}

// WithName sets the connection name shown by the management UI and
// rabbitmqctl list_connections. The default is "warren".
func WithName(name string) Option {
	return func(o *options) error {
		o.name = name
		return nil
	}
}

// WithHeartbeat sets the heartbeat interval the client proposes (default
// 10s). A dead peer is noticed after about two intervals. Zero is refused:
// without heartbeats a silently dropped connection is never noticed.
func WithHeartbeat(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Second {
			return fmt.Errorf("broker: heartbeat %v is below 1s; use at least 1s", d)
		}
		o.heartbeat = d
		return nil
	}
}

// WithTLS sets the TLS configuration used for amqps:// URLs. Without it, the
// system roots are used and the server name is taken from the URL.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) error {
		if cfg == nil {
			return errors.New("broker: WithTLS: nil *tls.Config")
		}
		o.tls = cfg
		return nil
	}
}

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// WithDialTimeout bounds each connection attempt, TCP, TLS and AMQP
// handshakes included (default 15s). The ctx given to Dial bounds the whole.
func WithDialTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("broker: dial timeout %v must be positive", d)
		}
		o.dialTimeout = d
		return nil
	}
}

// Conn is a connection to one broker node. It is safe for concurrent use.
type Conn struct {
	amqp   *amqp.Connection
	url    string // redacted
	secret string
	opts   options

	blockedMu sync.Mutex
	blocked   chan struct{} // non-nil and open while the broker blocks publishing
	done      chan struct{} // closed when the connection is gone
	closeErr  error
	wg        sync.WaitGroup
}

// Dial connects to the first of urls that answers, trying them in order.
// The error, when every URL fails, lists each attempt with passwords
// redacted.
func Dial(ctx context.Context, urls []string, opts ...Option) (*Conn, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if len(urls) == 0 {
		return nil, errors.New("broker: no broker URL given; pass one, e.g. " + DefaultURL)
	}
	var errs []error
	for _, u := range urls {
		c, err := dialOne(ctx, u, o)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		o.log.Warn().Str("url", RedactURL(u)).Err(err).Msg("broker: connection attempt failed")
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("broker: could not connect to any of %d broker URL(s); check that RabbitMQ is running (scripts/rabbitmq.sh starts one locally) and the URL, user and password are right: %w", len(urls), errors.Join(errs...))
}

func dialOne(ctx context.Context, rawURL string, o options) (*Conn, error) {
	uri, err := amqp.ParseURI(rawURL)
	if err != nil {
		return nil, &redactedError{msg: fmt.Sprintf("broker: invalid URL %s", RedactURL(rawURL)), err: err, secret: passwordOf(rawURL)}
	}
	secret := uri.Password
	name := o.name
	if name == "" {
		name = "warren"
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	cfg := amqp.Config{
		Heartbeat:  o.heartbeat,
		Properties: props,
		Locale:     "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: o.dialTimeout}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bound the TLS and AMQP handshakes; amqp091-go clears the
			// deadline once the connection is open.
			deadline := time.Now().Add(o.dialTimeout)
			if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
				deadline = dl
			}
			if err := conn.SetDeadline(deadline); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		},
	}
	if uri.Scheme == "amqps" {
		cfg.TLSClientConfig = o.tls
		if cfg.TLSClientConfig == nil {
			cfg.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	ac, err := amqp.DialConfig(rawURL, cfg)
	if err != nil {
		return nil, &redactedError{msg: "broker: dial " + RedactURL(rawURL), err: err, secret: secret}
	}
	c := &Conn{
		amqp:   ac,
		url:    RedactURL(rawURL),
		secret: secret,
		opts:   o,
		done:   make(chan struct{}),
	}
	c.watch()
	o.log.Info().Str("url", c.url).Str("connection", name).Msg("broker: connected")
	return c, nil
}

// watch follows the connection's close and blocked notifications. Its
// goroutine ends when amqp091-go closes the notification channels, which it
// does when the connection shuts down for any reason.
func (c *Conn) watch() {
	// Buffer 1: amqp091-go sends at most one close error, then closes.
	closed := c.amqp.NotifyClose(make(chan *amqp.Error, 1))
	// Buffer 4: blocked/unblocked arrive rarely; the loop drains them at once.
	blocking := c.amqp.NotifyBlocked(make(chan amqp.Blocking, 4))
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case b, ok := <-blocking:
				if !ok {
					blocking = nil
					continue
				}
				c.setBlocked(b)
			case err, ok := <-closed:
				if ok && err != nil {
					c.closeErr = &redactedError{msg: "broker: connection to " + c.url + " closed", err: err, secret: c.secret}
					c.opts.log.Warn().Str("url", c.url).Err(c.closeErr).Msg("broker: connection lost")
				}
				c.setBlocked(amqp.Blocking{Active: false})
				close(c.done)
				// Drain what amqp091-go may still deliver, so its reader never waits on us.
				for range blocking {
				}
				return
			}
		}
	}()
}

func (c *Conn) setBlocked(b amqp.Blocking) {
	c.blockedMu.Lock()
	defer c.blockedMu.Unlock()
	switch {
	case b.Active && c.blocked == nil:
		c.blocked = make(chan struct{})
		c.opts.log.Warn().Str("url", c.url).Str("reason", b.Reason).Msg("broker: publishing blocked by the broker (resource alarm)")
	case !b.Active && c.blocked != nil:
		close(c.blocked)
		c.blocked = nil
		c.opts.log.Info().Str("url", c.url).Msg("broker: publishing unblocked")
	}
}

// waitUnblocked returns at once unless the broker has blocked publishing
// (a memory or disk alarm); then it waits until the block lifts, the
// connection closes or ctx ends.
func (c *Conn) waitUnblocked(ctx context.Context) error {
	c.blockedMu.Lock()
	ch := c.blocked
	c.blockedMu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-c.done:
		return c.Err()
	case <-ctx.Done():
		return fmt.Errorf("broker: the broker blocks publishing (memory or disk alarm) and the wait ended: %w", ctx.Err())
	}
}

// URL is the URL of the node this connection reached, password redacted.
func (c *Conn) URL() string { return c.url }

// Done is closed when the connection is gone.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the connection is gone: ErrClosed after Close, the broker's
// reason after a failure, nil while it is open.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		if c.closeErr != nil {
			return fmt.Errorf("%w: %w", ErrClosed, c.closeErr)
		}
		return ErrClosed
	default:
		return nil
	}
}

// Close closes the connection gracefully (connection.close, waiting for
// close-ok) and waits for its goroutines to end. Close what uses the
// connection (publishers, pools) first.
func (c *Conn) Close() error {
	err := c.amqp.Close()
	c.wg.Wait()
	if err != nil && !errors.Is(err, amqp.ErrClosed) {
		return &redactedError{msg: "broker: close " + c.url, err: err, secret: c.secret}
	}
	return nil
}

// channel opens a channel, wrapping the error with what to do next.
func (c *Conn) channel() (*amqp.Channel, error) {
	ch, err := c.amqp.Channel()
	if err != nil {
		if c.amqp.IsClosed() {
			return nil, fmt.Errorf("broker: open channel on %s: %w: %w", c.url, ErrClosed, err)
		}
		return nil, fmt.Errorf("broker: open channel on %s: %w", c.url, err)
	}
	return ch, nil
}

// RedactURL returns u with its password replaced by "xxxxx". Unparsable
// input is redacted as a whole, since it may hold a password anyway.
func RedactURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		if i := strings.Index(u, "@"); i >= 0 {
			if j := strings.Index(u, "://"); j >= 0 && j < i {
				return u[:j+3] + "xxxxx" + u[i:]
			}
			return "xxxxx" + u[i:]
		}
		return u
	}
	if parsed.User == nil {
		return u
	}
	if _, has := parsed.User.Password(); has {
		parsed.User = url.UserPassword(parsed.User.Username(), "xxxxx")
	}
	return parsed.String()
}

// passwordOf finds the password in a URL, even one url.Parse refuses.
func passwordOf(u string) string {
	if parsed, err := url.Parse(u); err == nil {
		if parsed.User == nil {
			return ""
		}
		p, _ := parsed.User.Password()
		return p
	}
	rest := u
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	if _, p, ok := strings.Cut(rest[:at], ":"); ok {
		return p
	}
	return ""
}

// redactedError keeps the wrapped error reachable by errors.Is/As while its
// text never shows the password.
type redactedError struct {
	msg    string
	err    error
	secret string
}

func (e *redactedError) Error() string {
	return redact(e.msg+": "+e.err.Error(), e.secret)
}

func (e *redactedError) Unwrap() error { return e.err }
