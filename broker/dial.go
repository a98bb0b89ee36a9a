package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"
)

// DefaultURL is the broker a development machine runs.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// Option configures Dial. Options can fail: a bad value is an error from
// Dial, never a panic.
type Option func(*options) error

type options struct {
	name         string
	heartbeat    time.Duration
	tls          *tls.Config
	log          zerolog.Logger
	dialTimeout  time.Duration
	reconnect    bool
	reconnectMin time.Duration
	reconnectMax time.Duration
	stateHooks   []func(StateChange)
}

func defaultOptions() options {
	return options{
		heartbeat:    10 * time.Second,
		log:          zerolog.Nop(),
		dialTimeout:  15 * time.Second,
		reconnect:    true,
		reconnectMin: 200 * time.Millisecond,
		reconnectMax: 15 * time.Second,
	}
}

// WithReconnectBackoff sets the wait between reconnection rounds: from min,
// doubling (with jitter) up to max (defaults 200ms and 15s).
func WithReconnectBackoff(min, max time.Duration) Option {
	return func(o *options) error {
		if min <= 0 || max < min {
			return fmt.Errorf("broker: reconnect backoff %v..%v: want 0 < min <= max", min, max)
		}
		o.reconnectMin, o.reconnectMax = min, max
		return nil
	}
}

// WithoutReconnect makes a lost connection final: the Conn closes (Done,
// Err) and what uses it fails with ErrClosed. For tools that run once.
func WithoutReconnect() Option {
	return func(o *options) error {
		o.reconnect = false
		return nil
	}
}

// WithStateHook calls fn on each change of the Conn's state: Disconnected
// when its connection is lost, Connected when another is open, Closed at
// the end. fn runs on the Conn's supervising goroutine (or Close's): keep
// it short, and do not call Close from it. It may be given several times.
func WithStateHook(fn func(StateChange)) Option {
	return func(o *options) error {
		if fn == nil {
			return errors.New("broker: WithStateHook: nil func")
		}
		o.stateHooks = append(o.stateHooks, fn)
		return nil
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

// MinTLSVersion is the oldest TLS version warren connects with.
const MinTLSVersion = tls.VersionTLS12

// WithTLS sets the TLS configuration used for amqps:// URLs: typically
// RootCAs (the CA that signed the broker's certificate), and Certificates
// for a broker that verifies its clients (mutual TLS). Without it, the
// system roots are used. When cfg.ServerName is empty, each connection
// checks the certificate against the host of its own URL.
//
// cfg is copied, and the copy is never changed: each connection uses a
// copy of its own. A MinVersion below MinTLSVersion (zero included) is
// raised to it, TLS 1.2; a MaxVersion below it is refused, as no
// connection could then be made.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) error {
		if cfg == nil {
			return errors.New("broker: WithTLS: nil *tls.Config")
		}
		if cfg.MaxVersion != 0 && cfg.MaxVersion < MinTLSVersion {
			return fmt.Errorf("broker: WithTLS: MaxVersion is %s, below TLS 1.2, the oldest version warren connects with; leave MaxVersion zero or set it to tls.VersionTLS12 or later",
				tls.VersionName(cfg.MaxVersion))
		}
		o.tls = clientTLS(cfg)
		return nil
	}
}

// clientTLS returns a copy of cfg for one connection, with MinVersion at
// least MinTLSVersion; for a nil cfg, the default: system roots, server
// name from the URL. A copy per connection, because amqp091-go writes the
// URL's host into an empty ServerName: with a shared configuration, the
// host of the first URL dialled would be checked on every later one.
func clientTLS(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return &tls.Config{MinVersion: MinTLSVersion}
	}
	c := cfg.Clone()
	if c.MinVersion < MinTLSVersion {
		c.MinVersion = MinTLSVersion
	}
	return c
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
// with WithStateHook, State and Reconnects.
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

// StateChange is what a state hook is told.
type StateChange struct {
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
		o.log.Warn().Str("url", RedactURL(u)).Err(err).Msg("broker: connection attempt failed")
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
		cfg.TLSClientConfig = clientTLS(o.tls)
	}
	ac, err := amqp.DialConfig(rawURL, cfg)
	if err != nil {
		return nil, &redactedError{msg: "broker: dial " + RedactURL(rawURL) + tlsHint(err), err: err, secret: secret}
	}
	s := &session{amqp: ac, url: RedactURL(rawURL), secret: secret, done: make(chan struct{})}
	s.watch(o.log)
	o.log.Info().Str("url", s.url).Str("connection", name).Msg("broker: connected")
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

// watch follows the connection's close and blocked notifications. Its
// goroutine ends when amqp091-go closes the notification channels, which it
// does when the connection shuts down for any reason; s.done is closed then.
func (s *session) watch(log zerolog.Logger) {
	// Buffer 1: amqp091-go sends at most one close error, then closes.
	closed := s.amqp.NotifyClose(make(chan *amqp.Error, 1))
	// Buffer 4: blocked/unblocked arrive rarely; the loop drains them at once.
	blocking := s.amqp.NotifyBlocked(make(chan amqp.Blocking, 4))
	go func() {
		for {
			select {
			case b, ok := <-blocking:
				if !ok {
					blocking = nil
					continue
				}
				s.setBlocked(b, log)
			case err, ok := <-closed:
				if ok && err != nil {
					s.err = &redactedError{msg: "broker: connection to " + s.url + " closed", err: err, secret: s.secret}
				}
				s.setBlocked(amqp.Blocking{Active: false}, log)
				close(s.done)
				// Drain what amqp091-go may still deliver, so its reader never waits on us.
				for range blocking {
				}
				return
			}
		}
	}()
}

func (s *session) setBlocked(b amqp.Blocking, log zerolog.Logger) {
	s.blockedMu.Lock()
	defer s.blockedMu.Unlock()
	switch {
	case b.Active && s.blocked == nil:
		s.blocked = make(chan struct{})
		log.Warn().Str("url", s.url).Str("reason", b.Reason).Msg("broker: publishing blocked by the broker (resource alarm)")
	case !b.Active && s.blocked != nil:
		close(s.blocked)
		s.blocked = nil
		log.Info().Str("url", s.url).Msg("broker: publishing unblocked")
	}
}

// setSession makes s the current session.
func (c *Conn) setSession(s *session) {
	c.mu.Lock()
	c.sess = s
	c.frameMax.Store(int64(s.amqp.Config.FrameSize))
	close(c.up)
	c.mu.Unlock()
}

// supervise waits for the current session to end and dials again, until
// Close (or at once, closing the Conn for good, without reconnection).
func (c *Conn) supervise() {
	for {
		c.mu.Lock()
		s := c.sess
		c.mu.Unlock()
		select {
		case <-c.stop:
			return
		case <-s.done:
		}
		lost := s.err
		if lost == nil {
			lost = errors.New("broker: connection to " + s.url + " closed")
		}
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return
		}
		c.sess, c.up, c.lastErr = nil, make(chan struct{}), lost
		c.mu.Unlock()
		if !c.opts.reconnect {
			c.opts.log.Warn().Str("url", s.url).Err(lost).Msg("broker: connection lost; reconnection is disabled")
			c.finish(lost)
			c.notify(StateChange{State: Closed, URL: s.url, Err: lost, Reconnects: c.reconnects.Load()})
			return
		}
		c.opts.log.Warn().Str("url", s.url).Err(lost).Msg("broker: connection lost; reconnecting")
		c.notify(StateChange{State: Disconnected, URL: s.url, Err: lost, Reconnects: c.reconnects.Load()})
		next, ok := c.redial(s.index)
		if !ok {
			return // closed meanwhile
		}
		n := c.reconnects.Add(1)
		c.setSession(next)
		c.opts.log.Info().Str("url", next.url).Uint64("reconnects", n).Msg("broker: reconnected")
		c.notify(StateChange{State: Connected, URL: next.url, Reconnects: n})
	}
}

// redial tries the URLs in turn, starting after the one lost, with a
// capped exponential backoff between rounds, until one answers or Close.
func (c *Conn) redial(lost int) (*session, bool) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = c.opts.reconnectMin
	b.MaxInterval = c.opts.reconnectMax
	b.MaxElapsedTime = 0 // until Close
	b.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for attempt := 1; ; attempt++ {
		// One URL after another, the lost one last: another node of the
		// cluster is likelier to answer.
		i := (lost + attempt) % len(c.urls)
		s, err := dialOne(ctx, c.urls[i], c.opts)
		if err == nil {
			s.index = i
			c.mu.Lock()
			closing := c.closing
			c.mu.Unlock()
			if closing {
				s.amqp.Close()
				return nil, false
			}
			return s, true
		}
		wait := b.NextBackOff()
		c.opts.log.Warn().Str("url", RedactURL(c.urls[i])).Err(err).Int("attempt", attempt).Dur("retry_in", wait).Msg("broker: reconnection attempt failed")
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(wait):
		}
	}
}

func (c *Conn) notify(ch StateChange) {
	for _, h := range c.opts.stateHooks {
		h(ch)
	}
}

// finish closes the Conn for good.
func (c *Conn) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return
	default:
	}
	c.closeErr = err
	c.closing = true
	close(c.done)
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

// secretOf is the password of the current connection's URL, for redaction.
func (c *Conn) secretOf() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil {
		return c.sess.secret
	}
	return passwordOf(c.urls[0])
}

// RedactURL returns u with its password replaced by "xxxxx". A URL that
// does not parse with its user information where it belongs (a password
// holding a reserved character such as "#" or "/" that is not
// percent-encoded, say) is redacted from its scheme to its last "@", since
// it may hold a password anyway.
func RedactURL(u string) string {
	parsed, ok := parseUserinfo(u)
	if !ok {
		rest, scheme := u, ""
		if i := strings.Index(u, "://"); i >= 0 {
			rest, scheme = u[i+3:], u[:i+3]
		}
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			return scheme + "xxxxx" + rest[at:]
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

// parseUserinfo parses u, reporting false when it does not parse, or when
// an "@" after the scheme did not end up ending its user information: then
// a reserved character of the password cut the URL short (a "#" starts the
// fragment, a "/" the path), and the password sits in another part.
func parseUserinfo(u string) (*url.URL, bool) {
	parsed, err := url.Parse(u)
	if err != nil {
		return nil, false
	}
	rest := u
	if i := strings.Index(u, "://"); i >= 0 {
		rest = u[i+3:]
	}
	if parsed.User == nil && strings.Contains(rest, "@") {
		return nil, false
	}
	return parsed, true
}

// passwordOf finds the password in a URL, even one url.Parse refuses or
// splits in the wrong place.
func passwordOf(u string) string {
	if parsed, ok := parseUserinfo(u); ok {
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

// errCutShort: an "@" of the URL is not the end of its user information,
// which is then likely cut short by a reserved character of the password.
var errCutShort = errors.New(`its last "@" does not end its user information: a reserved character of the password cut it short`)

// invalidURL is the error for a URL amqp091-go refuses. It does not wrap
// the parser's error, whose text quotes the URL, password included; the
// parser's own words are kept, redacted, as they can quote pieces of the
// password too (net/url names what it took for the port, which is the
// start of a password holding a "#" or a "/").
func invalidURL(raw string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	secret := passwordOf(raw)
	msg := "broker: invalid URL " + RedactURL(raw) + ": " + redact(err.Error(), secret)
	if strings.Contains(raw, "@") && (ue != nil || strings.ContainsAny(raw, " \t") || errors.Is(err, errCutShort)) {
		msg += "; percent-encode any reserved character (: / ? # @ % or a space) in the user name and password, as net/url.UserPassword does"
	}
	return errors.New(msg)
}

// redactedError keeps the wrapped error reachable by errors.Is/As while its
// text never shows the password. msg must hold none (URLs in it redacted
// with RedactURL): only err's text is redacted, so that a user name equal
// to the password stays readable in msg.
type redactedError struct {
	msg    string
	err    error
	secret string
}

func (e *redactedError) Error() string {
	return e.msg + ": " + redact(e.err.Error(), e.secret)
}

func (e *redactedError) Unwrap() error { return e.err }
