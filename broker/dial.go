package broker

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/logfield"
)

// DefaultURL is the broker a development machine runs.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// Conn is a supervised connection to a broker: to the first node of its
// URLs that answers, and, when that connection is lost (the node stopped,
// the network failed, the broker closed it), to the next that answers,
// again and again with a capped exponential backoff, until Close. It is
// safe for concurrent use.
//
// What was open on a lost connection is gone with it: channels, consumers
// and their unsettled deliveries (the broker requeues those), confirms not
// yet received. Publishers, callers and pools open what they need again on
// the new connection, and a delivery of the old one is never settled on the
// new one (its ack fails with ErrClosed). Watch the connection's state
// with an Observer (WithObserver), State and Reconnects.
type Conn struct {
	urls []string // as given, passwords included
	opts options

	mu      sync.Mutex
	sess    *session      // nil while disconnected
	up      chan struct{} // closed when sess is set; replaced when it is lost
	lastErr error         // why the last session ended
	closing bool

	done       chan struct{} // closed when the Conn is closed for good
	closeErr   error
	stop       chan struct{} // closed by Close: ends the supervisor
	reconnects atomic.Uint64
	frameMax   atomic.Int64 // negotiated by the last session; 0 before the first
	wg         sync.WaitGroup
}

// session is one AMQP connection of a Conn.
type session struct {
	amqp   *amqp.Connection
	url    string // redacted
	secret string
	index  int // in Conn.urls

	blockedMu sync.Mutex
	blocked   chan struct{} // non-nil and open while the broker blocks publishing
	done      chan struct{} // closed when this connection is gone
	err       error         // why, when the broker or the network ended it
}

// State is a Conn's state.
type State int

// States of a Conn.
const (
	Connected    State = iota + 1 // a connection is open
	Disconnected                  // the connection was lost; reconnecting
	Closed                        // closed for good (Close, or reconnection disabled)
)

func (s State) String() string {
	switch s {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Closed:
		return "closed"
	}
	return "unknown"
}

// StateChange is what an Observer is told of a change of a Conn's state.
type StateChange struct {
	// Name is the Conn's (WithName): it tells connections apart.
	Name  string
	State State
	URL   string // the node (password redacted): connected to, or lost
	Err   error  // why the connection was lost (Disconnected, Closed)
	// Reconnects counts the connections made after the first.
	Reconnects uint64
}

// Dial connects to the first of urls that answers, trying them in order,
// and keeps the connection up from then on (see Conn). The error, when
// every URL fails, lists each attempt with passwords redacted.
func Dial(ctx context.Context, urls []string, opts ...Option) (*Conn, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.name == "" {
		o.name = "warren"
	}
	if len(urls) == 0 {
		return nil, errors.New("broker: no broker URL given; pass one, e.g. " + DefaultURL)
	}
	c := &Conn{urls: slices.Clone(urls), opts: o, up: make(chan struct{}), done: make(chan struct{}), stop: make(chan struct{})}
	var errs []error
	for i, u := range urls {
		sess, err := dialOne(ctx, u, o)
		if err == nil {
			sess.index = i
			c.setSession(sess)
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.supervise()
			}()
			return c, nil
		}
		errs = append(errs, err)
		o.log.Warn().Str(logfield.URL, RedactURL(u)).Err(err).Msg("broker: connection attempt failed")
		if ctx.Err() != nil {
			// The handshake's deadline is ctx's: say so, whatever the
			// socket reported.
			errs = append(errs, ctx.Err())
			break
		}
	}
	return nil, fmt.Errorf("broker: could not connect to any of %d broker URL(s); check that RabbitMQ is running (scripts/rabbitmq.sh starts one locally) and the URL, user and password are right: %w", len(urls), errors.Join(errs...))
}

func dialOne(ctx context.Context, rawURL string, o options) (*session, error) {
	uri, err := amqp.ParseURI(rawURL)
	if err == nil {
		if _, ok := parseUserinfo(rawURL); !ok {
			err = errCutShort
		}
	}
	if err != nil {
		return nil, invalidURL(rawURL, err)
	}
	secret := uri.Password
	name := o.name
	if name == "" {
		name = "warren"
	}
	props := clientProperties(o.props)
	props.SetClientConnectionName(name)
	cfg := amqp.Config{
		Heartbeat: o.heartbeat,
		// The heartbeater reads when frames were last written and read
		// once a second, instead of being woken for each one: a wake-up
		// of a goroutine, and often of a thread, per frame sent or read
		// (WARREN-PATCH.md part 6).
		QuietHeartbeats: true,
		Properties:      props,
		Locale:          "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			dial := o.dialer
			if dial == nil {
				d := net.Dialer{Timeout: o.dialTimeout}
				dial = d.DialContext
			}
			conn, err := dial(ctx, network, addr)
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
		cfg.TLSClientConfig = clientTLS(o.tls)
	}
	ac, err := amqp.DialConfig(rawURL, cfg)
	if err != nil {
		return nil, &redactedError{msg: "broker: dial " + RedactURL(rawURL) + tlsHint(err), err: err, secret: secret}
	}
	s := &session{amqp: ac, url: RedactURL(rawURL), secret: secret, done: make(chan struct{})}
	s.watch(o.log)
	o.log.Info().Str(logfield.URL, s.url).Str(logfield.Connection, name).Msg("broker: connected")
	return s, nil
}

// tlsHint says, for a failed TLS handshake, what is wrong and what to do;
// for any other error, nothing.
func tlsHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var name x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return " (the broker's certificate is not trusted: no CA the client trusts signed it; give WithTLS a tls.Config whose RootCAs hold the CA that did, or add that CA to the system's roots, e.g. with SSL_CERT_FILE on Linux)"
	case errors.As(err, &name):
		return fmt.Sprintf(" (the broker's certificate is not valid for %q: connect with a host name it lists, or set ServerName in the tls.Config given to WithTLS to one)", name.Host)
	case strings.Contains(err.Error(), "tls: protocol version not supported"),
		strings.Contains(err.Error(), "tls: server selected unsupported protocol version"):
		// The broker's protocol_version alert (Erlang 25, RabbitMQ 3.x),
		// or the older version a newer Erlang (RabbitMQ 4) picks anyway,
		// which crypto/tls refuses itself; it has no error type for either.
		return " (the broker accepts no TLS version warren offers: enable TLS 1.2 or 1.3 on it, ssl_options.versions)"
	}
	return ""
}

// session returns the current session, or why there is none.
func (c *Conn) session() (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil {
		return c.sess, nil
	}
	return nil, c.errLocked()
}

// connected returns the current session, waiting for one while
// reconnecting, until ctx ends or the Conn is closed for good.
func (c *Conn) connected(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, up := c.sess, c.up
		if s != nil {
			c.mu.Unlock()
			return s, nil
		}
		err := c.errLocked()
		c.mu.Unlock()
		select {
		case <-c.done:
			return nil, err
		default:
		}
		select {
		case <-up:
		case <-c.done:
			return nil, c.Err()
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		}
	}
}

// waitUnblocked returns at once unless the broker has blocked publishing
// (a memory or disk alarm) or the connection is being re-established; then
// it waits until it may publish, the Conn closes or ctx ends.
func (c *Conn) waitUnblocked(ctx context.Context) error {
	for {
		s, err := c.connected(ctx)
		if err != nil {
			return err
		}
		s.blockedMu.Lock()
		ch := s.blocked
		s.blockedMu.Unlock()
		if ch == nil {
			return nil
		}
		select {
		case <-ch:
			return nil
		case <-s.done:
			// Lost while blocked: wait for the next connection.
		case <-ctx.Done():
			return fmt.Errorf("broker: the broker blocks publishing (memory or disk alarm) and the wait ended: %w", ctx.Err())
		}
	}
}

// URL is the URL of the node this connection reached last, password
// redacted.
func (c *Conn) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil {
		return c.sess.url
	}
	return RedactURL(c.urls[0])
}

// State says whether the Conn is connected, reconnecting or closed.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closing:
		return Closed
	case c.sess == nil:
		return Disconnected
	}
	return Connected
}

// Reconnects is the number of connections made after the first.
func (c *Conn) Reconnects() uint64 { return c.reconnects.Load() }

// Done is closed when the Conn is closed for good: by Close, or when its
// connection was lost and reconnection is disabled (WithoutReconnect).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is nil while connected. While reconnecting it wraps ErrDisconnected
// and why the connection was lost; once closed for good it wraps ErrClosed
// (and the broker's reason, after a failure).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil && !c.closing {
		return nil
	}
	return c.errLocked()
}

func (c *Conn) errLocked() error {
	select {
	case <-c.done:
		if c.closeErr != nil {
			return fmt.Errorf("%w: %w", ErrClosed, c.closeErr)
		}
		return ErrClosed
	default:
	}
	if c.closing {
		return ErrClosed
	}
	if c.lastErr != nil {
		return fmt.Errorf("%w: %w", ErrDisconnected, c.lastErr)
	}
	return ErrDisconnected
}

// Close closes the connection gracefully (connection.close, waiting for
// close-ok), stops reconnecting, and waits for its goroutines to end.
// Close what uses the connection (publishers, pools) first.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.closing = true
	s := c.sess
	close(c.stop)
	c.mu.Unlock()
	var err error
	if s != nil {
		err = s.amqp.Close()
		<-s.done
	}
	c.wg.Wait()
	c.mu.Lock()
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	c.mu.Unlock()
	c.notify(StateChange{State: Closed, Reconnects: c.reconnects.Load()})
	if err != nil && !errors.Is(err, amqp.ErrClosed) {
		return &redactedError{msg: "broker: close " + s.url, err: err, secret: s.secret}
	}
	return nil
}

// channel opens a channel on the current connection, at once: while
// reconnecting it fails with ErrDisconnected.
func (c *Conn) channel() (*amqp.Channel, error) {
	s, err := c.session()
	if err != nil {
		return nil, fmt.Errorf("broker: open channel: %w", err)
	}
	return s.channel()
}

// channelWait opens a channel, waiting for a connection while
// reconnecting, until ctx ends.
func (c *Conn) channelWait(ctx context.Context) (*amqp.Channel, error) {
	s, err := c.connected(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: open channel: %w", err)
	}
	return s.channel()
}

func (s *session) channel() (*amqp.Channel, error) {
	ch, err := s.amqp.Channel()
	if err != nil {
		if s.amqp.IsClosed() {
			return nil, fmt.Errorf("broker: open channel on %s: %w: %w", s.url, ErrClosed, err)
		}
		return nil, fmt.Errorf("broker: open channel on %s: %w", s.url, err)
	}
	return ch, nil
}
