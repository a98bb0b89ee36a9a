package rabbitnode

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Option configures a node. Options check their values: a bad one fails
// the test from Start, with every problem named.
type Option func(*options) error

type options struct {
	config       []string
	advanced     []string // Erlang terms of advanced.config, each {app, [{key, value}, ...]}
	tls          *TLSConfig
	management   bool
	startTimeout time.Duration
	cookie       string // shared by the nodes of a cluster; random otherwise
	label        string // added to the node's name (c1, c2, ... in a cluster)
	version      string // a release of Versions, or "" for the machine's rabbitmq-server
	epmd         *epmd  // the cluster's, for a node of a root filesystem; nil: the node's own
}

// defaultStartTimeout is far above the ~5 s a node takes, for machines
// that run other test binaries (and -race) at the same time.
const defaultStartTimeout = 90 * time.Second

// WithConfig adds lines to the node's rabbitmq.conf (the new-style
// format), e.g. "consumer_timeout = 5000" or
// "vm_memory_high_watermark.absolute = 200MiB". A key RabbitMQ does not
// know makes the node fail to start, and the test with it.
func WithConfig(lines ...string) Option {
	return func(o *options) error {
		var errs []error
		for _, l := range lines {
			key, _, ok := strings.Cut(l, "=")
			switch {
			case strings.ContainsAny(l, "\r\n"):
				errs = append(errs, fmt.Errorf("config line %q: one setting per line", l))
			case !ok || strings.TrimSpace(key) == "":
				errs = append(errs, fmt.Errorf("config line %q: want \"key = value\"", l))
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		o.config = append(o.config, lines...)
		return nil
	}
}

// WithAdvancedConfig adds application settings to the node's
// advanced.config, for the keys rabbitmq.conf has no name for. Each entry
// is one Erlang term {App, [{Key, Value}, ...]}, e.g.
// "{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 5000}]}"; the
// file is the list of them. A term the node cannot parse makes it fail to
// start, and the test with it.
func WithAdvancedConfig(terms ...string) Option {
	return func(o *options) error {
		var errs []error
		for _, term := range terms {
			s := strings.TrimSpace(term)
			if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
				errs = append(errs, fmt.Errorf("advanced.config term %q: want {app, [{key, value}]}", term))
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		o.advanced = append(o.advanced, terms...)
		return nil
	}
}

// TLSConfig is the amqps listener of a node. Certs makes files for it.
type TLSConfig struct {
	// CACertFile holds the certificate authorities that client
	// certificates must chain to (PEM).
	CACertFile string
	// CertFile and KeyFile are the server's certificate and private key
	// (PEM). They are copied into the node's directory, so they need only
	// be readable by the test.
	CertFile, KeyFile string
	// VerifyPeer makes the node ask for a client certificate and refuse
	// a connection without a valid one (verify_peer with
	// fail_if_no_peer_cert). When false the node does not ask
	// (verify_none).
	VerifyPeer bool
	// Versions are the protocol versions the node accepts, as RabbitMQ
	// names them: "tlsv1.3", "tlsv1.2", "tlsv1.1", "tlsv1". Empty means
	// tlsv1.3 and tlsv1.2.
	Versions []string
}

var tlsVersions = []string{"tlsv1.3", "tlsv1.2", "tlsv1.1", "tlsv1"}

// WithTLS adds an amqps listener on a free port of 127.0.0.1; TLSURL
// returns its URL.
func WithTLS(c TLSConfig) Option {
	return func(o *options) error {
		var errs []error
		for _, f := range []struct{ what, path string }{
			{"CACertFile", c.CACertFile}, {"CertFile", c.CertFile}, {"KeyFile", c.KeyFile},
		} {
			if f.path == "" {
				errs = append(errs, fmt.Errorf("TLS: %s is empty", f.what))
			} else if _, err := os.Stat(f.path); err != nil {
				errs = append(errs, fmt.Errorf("TLS: %s: %w", f.what, err))
			}
		}
		for _, v := range c.Versions {
			if !slices.Contains(tlsVersions, v) {
				errs = append(errs, fmt.Errorf("TLS: version %q is none of %s", v, strings.Join(tlsVersions, ", ")))
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		if len(c.Versions) == 0 {
			c.Versions = []string{"tlsv1.3", "tlsv1.2"}
		}
		o.tls = &c
		return nil
	}
}

// WithManagement enables the management plugin on a free port;
// ManagementURL returns its address. It adds about two seconds to the
// start.
func WithManagement() Option {
	return func(o *options) error {
		o.management = true
		return nil
	}
}

// WithStartTimeout bounds each start of the node (default 90 s).
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("start timeout %v: must be positive", d)
		}
		o.startTimeout = d
		return nil
	}
}

func withCookie(c string) Option {
	return func(o *options) error { o.cookie = c; return nil }
}

func withLabel(l string) Option {
	return func(o *options) error { o.label = l; return nil }
}

func withEpmd(e *epmd) Option {
	return func(o *options) error { o.epmd = e; return nil }
}
