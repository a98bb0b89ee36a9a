package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Defaults of a Daemon, also what the manifests in deploy/kubernetes/
// rely on.
const (
	// DefaultHTTPAddr is where the probes and metrics are served.
	DefaultHTTPAddr = ":8080"
	// DefaultPort is the port of DefaultHTTPAddr.
	DefaultPort = 8080
	// LivePath answers 200 while the process runs.
	LivePath = "/livez"
	// ReadyPath answers 200 when every service is ready and the daemon
	// is not draining, 503 with the reason otherwise.
	ReadyPath = "/readyz"
	// MetricsPath serves the gatherer given with WithGatherer.
	MetricsPath = "/metrics"
	// DefaultShutdownTimeout is how long the jobs in flight may take to
	// finish once the shutdown starts: the same as the pool's own default
	// (worker.DefaultShutdownTimeout, which a test holds equal), so that a
	// pool given Config.ShutdownTimeout and one left at its default agree.
	DefaultShutdownTimeout = 30 * time.Second
	// ShutdownGrace is what Run allows on top of the shutdown timeout for
	// the services to stop: a pool cancels the jobs still running at its
	// deadline, returns its prefetched jobs, sends its last acks and
	// closes its channels in that time. Give an orchestrator more than
	// the shutdown timeout plus ShutdownGrace before it kills the process
	// (Kubernetes: terminationGracePeriodSeconds).
	ShutdownGrace = 15 * time.Second
)

// httpShutdownTimeout bounds the graceful shutdown of the HTTP server: a
// probe or a scrape in progress gets this long to finish.
const httpShutdownTimeout = 5 * time.Second

// Option configures New. Options can fail: a bad value is an error from
// New, never a panic.
type Option func(*options) error

type options struct {
	httpAddr        string
	listener        net.Listener
	gatherer        prometheus.Gatherer
	log             zerolog.Logger
	shutdownTimeout time.Duration
	grace           time.Duration
	signals         <-chan os.Signal
	signalsSet      bool
	exit            func(code int)
	mounts          []mount
}

// mount is a handler WithHandler serves under a prefix.
type mount struct {
	prefix string
	h      http.Handler
}

func defaultOptions() options {
	return options{
		httpAddr:        DefaultHTTPAddr,
		log:             zerolog.Nop(),
		shutdownTimeout: DefaultShutdownTimeout,
		grace:           ShutdownGrace,
		exit:            os.Exit,
	}
}

// WithHandler serves h under prefix (as "/ui") on the daemon's HTTP
// server, beside /livez, /readyz and /metrics: for example warren's
// dashboard, built with dashboard.Options{Prefix: prefix}. The handler
// sees the whole path, prefix included. The prefix starts with / and ends
// without one, and cannot be one of the daemon's own paths.
func WithHandler(prefix string, h http.Handler) Option {
	return func(o *options) error {
		if h == nil {
			return errors.New("daemon: WithHandler: nil handler")
		}
		if !strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") || prefix == LivePath || prefix == ReadyPath || prefix == MetricsPath {
			return fmt.Errorf("daemon: WithHandler: prefix %q: start it with / and end it without one, as /ui, apart from %s, %s and %s", prefix, LivePath, ReadyPath, MetricsPath)
		}
		o.mounts = append(o.mounts, mount{prefix, h})
		return nil
	}
}

// WithConfig applies what cfg sets for the daemon itself: its HTTP
// address and shutdown timeout. It fails when cfg does not validate. The
// logger is separate (WithLogger with cfg.Logger), and so is the pool's
// shutdown timeout: give the pool worker.WithShutdownTimeout(
// cfg.ShutdownTimeout) so that both use the same deadline.
func WithConfig(cfg Config) Option {
	return func(o *options) error {
		if err := cfg.Validate(); err != nil {
			return err
		}
		o.httpAddr = cfg.HTTPAddr
		o.shutdownTimeout = cfg.ShutdownTimeout
		return nil
	}
}

// WithHTTPAddr sets the address of the HTTP server (default
// DefaultHTTPAddr). "host:0" picks a free port, which Run logs. An empty
// address disables the server: no probes, no metrics.
func WithHTTPAddr(addr string) Option {
	return func(o *options) error {
		if err := checkAddr(addr); err != nil {
			return err
		}
		o.httpAddr = addr
		o.listener = nil
		return nil
	}
}

func checkAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("daemon: HTTP address %q: %w; use host:port or :port, e.g. %s", addr, err, DefaultHTTPAddr)
	}
	return nil
}

// WithListener serves HTTP on l rather than on an address of its own;
// Run closes l when it stops serving. For tests, and for sockets handed
// over by a supervisor.
func WithListener(l net.Listener) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("daemon: WithListener: nil listener")
		}
		o.listener = l
		return nil
	}
}

// WithGatherer serves g, usually a *prometheus.Registry, on MetricsPath.
// Without it, MetricsPath is not served.
func WithGatherer(g prometheus.Gatherer) Option {
	return func(o *options) error {
		if g == nil {
			return errors.New("daemon: WithGatherer: nil gatherer")
		}
		o.gatherer = g
		return nil
	}
}

// WithLogger sets the logger (default: none). The lifecycle is logged at
// info level, a forced exit and a shutdown past its deadline at error.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// WithShutdownTimeout sets how long the services have to finish their
// work once the shutdown starts (default DefaultShutdownTimeout). Run
// waits for them up to this plus ShutdownGrace. Give a pool the same
// value with worker.WithShutdownTimeout.
func WithShutdownTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("daemon: shutdown timeout %s must not be negative", d)
		}
		o.shutdownTimeout = d
		return nil
	}
}

// WithSignals makes Run take its signals from ch instead of the process's
// SIGTERM and SIGINT: the first one starts the shutdown, the second forces
// an exit. A nil ch disables signal handling; then only ctx and the
// services stop Run. For tests, and for programs that handle signals
// themselves.
func WithSignals(ch <-chan os.Signal) Option {
	return func(o *options) error {
		o.signals = ch
		o.signalsSet = true
		return nil
	}
}

// WithForceExit sets what a second signal calls (default os.Exit), with
// 128 + the signal's number as the status. Should exit return, Run returns
// at once with an error wrapping ErrForced, without waiting for the
// services.
func WithForceExit(exit func(code int)) Option {
	return func(o *options) error {
		if exit == nil {
			return errors.New("daemon: WithForceExit: nil function")
		}
		o.exit = exit
		return nil
	}
}
