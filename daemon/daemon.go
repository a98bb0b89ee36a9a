package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warrenmq/warren/internal/logfield"
)

// Service is a long-running part of a daemon, e.g. a *worker.Pool. Run
// blocks until ctx ends or the service fails, and returns nil after a
// clean stop.
type Service interface {
	Run(ctx context.Context) error
}

// ServiceFunc makes a function a Service.
type ServiceFunc func(ctx context.Context) error

// Run calls f(ctx).
func (f ServiceFunc) Run(ctx context.Context) error { return f(ctx) }

// Readier is a Service that can say whether it is ready for work: Ready
// returns nil when it is, an error saying why not otherwise.
// *worker.Pool is one.
type Readier interface {
	Ready() error
}

var (
	// ErrNotReady is wrapped by the errors of Daemon.Ready.
	ErrNotReady = errors.New("daemon: not ready")
	// ErrForced is wrapped by Run's error when a second signal forced the
	// exit and the exit function (WithForceExit) returned.
	ErrForced = errors.New("daemon: exit forced by a second signal")
	// ErrShutdownTimeout is wrapped by Run's error when services were
	// still running at the shutdown deadline (the shutdown timeout plus
	// ShutdownGrace); Run left them behind.
	ErrShutdownTimeout = errors.New("daemon: services still running at the shutdown deadline")
)

// States of a daemon.
const (
	stateNew int32 = iota
	stateRunning
	stateDraining
	stateStopped
)

// Daemon runs services with signal handling, health probes and metrics.
// Build one with New and call Run, once.
type Daemon struct {
	opts     options
	state    atomic.Int32
	started  atomic.Bool
	services []Service // set by Run before the state leaves stateNew
}

// New returns a daemon configured by opts.
func New(opts ...Option) (*Daemon, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return &Daemon{opts: o}, nil
}

// Ready returns nil while the daemon runs, is not draining, and every
// service that is a Readier is ready: what ReadyPath answers. Otherwise
// its error wraps ErrNotReady and says why, naming each service that is
// not ready.
func (d *Daemon) Ready() error {
	switch d.state.Load() {
	case stateNew:
		return fmt.Errorf("%w: not started", ErrNotReady)
	case stateDraining:
		return fmt.Errorf("%w: draining: shutting down", ErrNotReady)
	case stateStopped:
		return fmt.Errorf("%w: stopped", ErrNotReady)
	}
	var problems []error
	for i, s := range d.services {
		r, ok := s.(Readier)
		if !ok {
			continue
		}
		if err := r.Ready(); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", serviceName(i, s), err))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %w", ErrNotReady, errors.Join(problems...))
	}
	return nil
}

// Statuser is a service that has something to say beside "ok" in a
// ready answer: *worker.Pool names its paused queues.
type Statuser interface {
	Status() string
}

// status is what /readyz says when ready: "ok", then each service's
// Status, one a line.
func (d *Daemon) status() string {
	lines := []string{"ok"}
	for i, s := range d.services {
		if st, ok := s.(Statuser); ok {
			if text := st.Status(); text != "" {
				lines = append(lines, serviceName(i, s)+": "+text)
			}
		}
	}
	return strings.Join(lines, "\n")
}

func serviceName(i int, s Service) string {
	return fmt.Sprintf("service %d (%T)", i+1, s)
}

// result is what one service's Run returned.
type result struct {
	i   int
	err error
}

// Run starts the HTTP server and the services, and blocks until the
// daemon has shut down (see the package documentation for the order). It
// returns nil after a clean shutdown, whatever started it; otherwise the
// errors of the services, of the HTTP server and of the shutdown, joined.
// It fails at once, before any service starts, when the HTTP address
// cannot be listened on. A daemon runs once.
func (d *Daemon) Run(ctx context.Context, services ...Service) error {
	if len(services) == 0 {
		return errors.New("daemon: Run needs at least one service")
	}
	for i, s := range services {
		if s == nil {
			return fmt.Errorf("daemon: service %d is nil", i+1)
		}
	}
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("daemon: Run called twice; build a new daemon")
	}
	log := d.opts.log

	// The listener first: a port in use is an error before anything runs.
	ln := d.opts.listener
	if ln == nil && d.opts.httpAddr != "" {
		var err error
		ln, err = net.Listen("tcp", d.opts.httpAddr)
		if err != nil {
			d.state.Store(stateStopped)
			return fmt.Errorf("daemon: listen on %s: %w; is another process using the port? choose another with --http-addr or %s", d.opts.httpAddr, err, EnvHTTPAddr)
		}
	}

	sigs := d.opts.signals
	if !d.opts.signalsSet {
		// Buffer 2: the first signal starts the shutdown, the second
		// forces the exit; signal.Notify drops what does not fit, and a
		// third signal changes nothing.
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
		defer signal.Stop(ch)
		sigs = ch
	}

	d.services = services
	d.state.Store(stateRunning)
	defer d.state.Store(stateStopped)

	var wg sync.WaitGroup // the HTTP server's goroutine
	var srv *server
	if ln != nil {
		srv = d.serve(ln, &wg)
		log.Info().Str(logfield.Addr, ln.Addr().String()).
			Strs(logfield.Paths, srv.paths).Msg("daemon: serving http")
	}

	// The services' ctx keeps ctx's values but not its cancellation: the
	// daemon cancels it itself, after readiness has turned false.
	svcCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	results := make(chan result, len(services)) // one per service, never blocks
	for i, s := range services {
		go func() {
			results <- result{i, s.Run(svcCtx)}
		}()
	}
	log.Info().Int(logfield.Services, len(services)).Msg("daemon: running")

	var errs []error
	running := len(services)
	collect := func(r result) {
		running--
		if r.err != nil {
			errs = append(errs, fmt.Errorf("daemon: %s: %w", serviceName(r.i, services[r.i]), r.err))
		}
	}

	// Run until something starts the shutdown.
	var serveErr <-chan error
	if srv != nil {
		serveErr = srv.failed
	}
	why := ""
	for why == "" {
		select {
		case <-ctx.Done():
			why = "context ended"
		case sig, ok := <-sigs:
			if !ok {
				sigs = nil // closed: no more signals
				continue
			}
			why = "signal " + sig.String()
		case r := <-results:
			collect(r)
			why = serviceName(r.i, services[r.i]) + " stopped"
			if r.err != nil {
				why = serviceName(r.i, services[r.i]) + " failed" // the error is Run's to return
			}
		case err := <-serveErr:
			errs = append(errs, err)
			why = "http server failed"
		}
	}

	// 1. Not ready. 2. Stop the services.
	d.state.Store(stateDraining)
	log.Info().Str(logfield.Reason, why).Dur(logfield.Timeout, d.opts.shutdownTimeout).
		Msg("daemon: draining: not ready, stopping the services")
	cancel()

	// 3. Wait for them, within the deadline; a second signal cuts it short.
	deadline := time.NewTimer(d.opts.shutdownTimeout + d.opts.grace)
	defer deadline.Stop()
	for running > 0 {
		select {
		case r := <-results:
			collect(r)
		case sig, ok := <-sigs:
			if !ok {
				sigs = nil
				continue
			}
			code := exitCode(sig)
			log.Error().Str(logfield.Signal, sig.String()).Int(logfield.Status, code).
				Msg("daemon: second signal: exiting now; the jobs in flight go back to their queue")
			d.opts.exit(code)
			// exit returned (tests): stop serving, leave the services.
			if srv != nil {
				srv.close()
				wg.Wait()
			}
			return errors.Join(append(errs, fmt.Errorf("%w (%s)", ErrForced, sig))...)
		case <-deadline.C:
			errs = append(errs, fmt.Errorf("%w: %d of %d still running %s after the shutdown started; their unacked jobs go back to the queue when the process exits",
				ErrShutdownTimeout, running, len(services), d.opts.shutdownTimeout+d.opts.grace))
			running = 0
		}
	}

	// 4. The probes have answered "draining" until now; stop serving.
	if srv != nil {
		if err := srv.shutdown(); err != nil {
			errs = append(errs, err)
		}
		wg.Wait()
	}
	log.Info().Msg("daemon: stopped")
	return errors.Join(errs...)
}

// exitCode is the status a shell reports for a process killed by sig.
func exitCode(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok && s > 0 && s < 128 {
		return 128 + int(s)
	}
	return 1
}
