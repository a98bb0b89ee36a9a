// The options of Dial.

package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"
)

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
	observers    []Observer
	props        map[string]any // WithClientProperty
	dialer       func(ctx context.Context, network, addr string) (net.Conn, error)
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

// WithReconnectBackoff sets the wait after each failed reconnection
// attempt: from min, 1.5 times longer after each failure up to max
// (defaults 200ms and 15s), each wait then spread by ±50%, so a capped
// wait lasts from max/2 to 1.5×max.
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

// WithName sets the connection name shown by the management UI and
// rabbitmqctl list_connections, and given to the observers with each
// StateChange (metrics label reconnections with it). The default is
// "warren".
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

// WithDialer sets how the network connection to a broker is made (default:
// a net.Dialer bounded by WithDialTimeout and ctx): through a SOCKS proxy,
// say, or to an in-process broker in tests (warrentest). It is given the
// host and port of each URL; TLS (amqps://) and the AMQP handshake run on
// the connection it returns.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(o *options) error {
		if dial == nil {
			return errors.New("broker: WithDialer: nil dial function")
		}
		o.dialer = dial
		return nil
	}
}

// WithClientProperty adds a client property to every connection Dial
// makes: the broker keeps it with the connection, and the management API,
// `rabbitmqctl list_connections client_properties` and warren's dashboard
// (its workers page) show it. A worker daemon says which queues it
// consumes and with what concurrency:
//
//	broker.WithClientProperty("queues", "email,images"),
//	broker.WithClientProperty("concurrency", 16),
//
// value is a string, a bool or an integer. warren sets product ("warren"),
// version (warren's), platform (Go's), host and pid itself; those keys,
// capabilities and connection_name (WithName) are refused, as is an empty
// key.
func WithClientProperty(key string, value any) Option {
	return func(o *options) error {
		if key == "" {
			return errors.New("broker: WithClientProperty: empty key")
		}
		if _, ok := ownProperties[key]; ok {
			return fmt.Errorf("broker: WithClientProperty: %q is set by warren itself (product, version, platform, host, pid, capabilities; connection_name through WithName); choose another key", key)
		}
		var v any
		switch x := value.(type) {
		case string, bool, int64, int32:
			v = x
		case int:
			v = int64(x)
		case uint16:
			v = int32(x)
		case uint32:
			v = int64(x)
		default:
			return fmt.Errorf("broker: WithClientProperty %q: a %T cannot be a client property; give a string, a bool or an integer", key, value)
		}
		if o.props == nil {
			o.props = map[string]any{}
		}
		o.props[key] = v
		return nil
	}
}

// ownProperties are the client properties Dial sets itself.
var ownProperties = map[string]struct{}{
	"product": {}, "version": {}, "platform": {}, "host": {}, "pid": {},
	"capabilities": {}, "connection_name": {}, "information": {},
}
