package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/daemon"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childDaemon())
	}
	os.Exit(brokertest.MainWithLeakCheck(m))
}

// fixture is one test's topology, an exchange and a classic work queue
// that the job type "slow" is routed to, and connections to the broker.
type fixture struct {
	queue string
	yaml  string
	topo  *topology.Topology
	conn  *broker.Conn // consuming
	pub   *broker.Publisher
	snd   *broker.Sender // the pool's, on the publishing connection
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{queue: brokertest.Name(t, "q")}
	exchange := brokertest.Name(t, "x")
	f.yaml = fmt.Sprintf(`version: 1
exchanges:
  %[1]s: {type: direct}
queues:
  %[2]s:
    type: classic
bindings:
  - exchange: %[1]s
    queue: %[2]s
    routing_key: slow
routes:
  slow: {exchange: %[1]s}
`, exchange, f.queue)
	f.topo = topotest.Apply(t, f.yaml)
	f.conn = testkit.Dial(t, "daemon-test-consume")
	pubConn := testkit.Dial(t, "daemon-test-publish")
	pub, err := broker.NewPublisher(pubConn, broker.WithRouter(f.topo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	snd, err := broker.NewSender(pubConn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snd.Close(context.Background()) })
	f.pub, f.snd = pub, snd
	return f
}

// publish publishes one "slow" job and returns its id.
func (f *fixture) publish(t *testing.T) string {
	t.Helper()
	jobs := []broker.Job{{Type: "slow", Payload: 1}}
	if err := f.pub.PublishBatch(brokertest.Context(t, 60*time.Second), jobs); err != nil {
		t.Fatalf("publish: %v", err)
	}
	return jobs[0].ID
}

// client asks the daemon's endpoints; without keep-alives, so that no
// connection outlives a test.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get returns the status and body of GET url.
func get(url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// mustGet is get, failing t on a transport error.
func mustGet(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return code, body
}

// waitStatus polls url until it answers want, and returns the body.
func waitStatus(t *testing.T, url string, want int, timeout time.Duration) string {
	t.Helper()
	var code int
	var body string
	var err error
	testkit.WaitFor(t, timeout, fmt.Sprintf("GET %s to answer %d", url, want), func() bool {
		code, body, err = get(url)
		return err == nil && code == want
	})
	return body
}

func listen(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "http://" + ln.Addr().String()
}

// gate is a service whose readiness and end the test controls.
type gate struct {
	mu       sync.Mutex
	notReady error
	err      error         // what Run returns when its ctx ends
	release  chan struct{} // non-nil: Run ignores its ctx and returns when this closes
	ran      chan struct{} // closed when Run starts
	done     chan struct{} // closed when Run returns
	ctxErr   error         // the ctx's error when Run returned
}

func newGate() *gate {
	return &gate{ran: make(chan struct{}), done: make(chan struct{})}
}

func (g *gate) Run(ctx context.Context) error {
	close(g.ran)
	defer close(g.done)
	if g.release != nil {
		<-g.release
		return nil
	}
	<-ctx.Done()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ctxErr = ctx.Err()
	return g.err
}

func (g *gate) Ready() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.notReady
}

func (g *gate) setNotReady(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notReady = err
}

// runDaemon starts d.Run and returns a channel of its result.
func runDaemon(ctx context.Context, d *daemon.Daemon, services ...daemon.Service) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx, services...) }()
	return errc
}

// TestProbesAndDrain runs a pool and another service under a daemon: the
// probes and metrics answer; /readyz follows the services' readiness; on
// SIGTERM (from an injected channel) readiness turns false while a slow
// job in flight finishes, and Run returns nil once it is acked.
func TestProbesAndDrain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	started := make(chan string, 1)
	release := make(chan struct{})
	mux := worker.NewMux()
	mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
		started <- job.ID
		<-release // ignores ctx: the shutdown timeout is long enough
		return nil
	})
	jobs := prometheus.NewCounter(prometheus.CounterOpts{Name: "daemon_test_jobs_total", Help: "Jobs settled."})
	registry := prometheus.NewRegistry()
	registry.MustRegister(jobs)
	outcomes := make(chan worker.Outcome, 10)
	pool, err := worker.NewPool(f.conn, f.topo, mux, worker.WithSender(f.snd),
		worker.WithShutdownTimeout(2*time.Minute),
		worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) { jobs.Inc(); outcomes <- o })))
	if err != nil {
		t.Fatal(err)
	}
	other := newGate()

	ln, base := listen(t)
	sigs := make(chan os.Signal, 2)
	d, err := daemon.New(daemon.WithListener(ln), daemon.WithSignals(sigs), daemon.WithGatherer(registry),
		daemon.WithShutdownTimeout(2*time.Minute), daemon.WithLogger(zerolog.New(zerolog.NewTestWriter(t))))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Ready(); !errors.Is(err, daemon.ErrNotReady) {
		t.Errorf("before Run: Ready = %v, want ErrNotReady", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := runDaemon(ctx, d, pool, other)
	free := sync.OnceFunc(func() { close(release) })
	returned := false
	defer func() {
		if !returned { // a failed test: stop the daemon and wait for it
			cancel()
			free()
			<-errc
		}
	}()

	waitStatus(t, base+daemon.ReadyPath, http.StatusOK, 30*time.Second)
	if code, body := mustGet(t, base+daemon.LivePath); code != http.StatusOK {
		t.Errorf("%s: %d %q, want 200", daemon.LivePath, code, body)
	}
	if code, body := mustGet(t, base+daemon.MetricsPath); code != http.StatusOK || !strings.Contains(body, "daemon_test_jobs_total 0") {
		t.Errorf("%s: %d, want 200 with daemon_test_jobs_total 0; got:\n%s", daemon.MetricsPath, code, body)
	}

	// A service that is not ready makes the daemon not ready, and says why.
	other.setNotReady(errors.New("warming the cache"))
	code, body := mustGet(t, base+daemon.ReadyPath)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "warming the cache") {
		t.Errorf("%s with a service not ready: %d %q, want 503 with the reason", daemon.ReadyPath, code, body)
	}
	if err := d.Ready(); !errors.Is(err, daemon.ErrNotReady) {
		t.Errorf("Ready = %v, want ErrNotReady", err)
	}
	other.setNotReady(nil)
	waitStatus(t, base+daemon.ReadyPath, http.StatusOK, 10*time.Second)

	// SIGTERM with a job in flight: not ready, still alive, the job finishes.
	id := f.publish(t)
	if got := testkit.Recv(t, started, 30*time.Second, "the job to start"); got != id {
		t.Fatalf("job %s started, want %s", got, id)
	}
	sigs <- syscall.SIGTERM
	body = waitStatus(t, base+daemon.ReadyPath, http.StatusServiceUnavailable, 30*time.Second)
	if !strings.Contains(body, "draining") {
		t.Errorf("%s while draining: %q, want it to say draining", daemon.ReadyPath, body)
	}
	if code, _ := mustGet(t, base+daemon.LivePath); code != http.StatusOK {
		t.Errorf("%s while draining: %d, want 200: a liveness probe must not restart a draining worker", daemon.LivePath, code)
	}
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v with a job in flight", err)
	default:
	}
	free()
	err = testkit.Recv(t, errc, 60*time.Second, "Run to return")
	returned = true
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if o := testkit.Recv(t, outcomes, 10*time.Second, "the job's outcome"); o.JobID != id || o.Status != worker.Succeeded {
		t.Errorf("outcome %s %s, want %s succeeded", o.JobID, o.Status, id)
	}
	// The pool closed its channels: a job left unacked would be back.
	if n := brokertest.Depth(t, f.queue); n != 0 {
		t.Errorf("%d jobs in the queue after the drain, want 0: the job was not acked", n)
	}
	if !errors.Is(other.ctxErr, context.Canceled) {
		t.Errorf("the other service's ctx: %v, want cancelled", other.ctxErr)
	}
	if err := d.Ready(); !errors.Is(err, daemon.ErrNotReady) {
		t.Errorf("after Run: Ready = %v, want ErrNotReady", err)
	}
	if _, _, err := get(base + daemon.LivePath); err == nil {
		t.Error("the HTTP server still answers after Run returned")
	}
}

// TestRunStops: whatever starts the shutdown, the other services' ctx
// ends and Run returns what the services returned.
func TestRunStops(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	// stopper starts the shutdown, given the daemon's ctx and signals.
	type stopper func(cancel context.CancelFunc, sigs chan<- os.Signal)
	for _, tc := range []struct {
		name    string
		service func() (daemon.Service, stopper)
		wantErr error
	}{
		{
			name: "the context ends",
			service: func() (daemon.Service, stopper) {
				return newGate(), func(cancel context.CancelFunc, _ chan<- os.Signal) { cancel() }
			},
		},
		{
			name: "SIGTERM",
			service: func() (daemon.Service, stopper) {
				return newGate(), func(_ context.CancelFunc, sigs chan<- os.Signal) { sigs <- syscall.SIGTERM }
			},
		},
		{
			name: "a service returns nil",
			service: func() (daemon.Service, stopper) {
				g := newGate()
				g.release = make(chan struct{})
				return g, func(context.CancelFunc, chan<- os.Signal) { close(g.release) }
			},
		},
		{
			name: "a service fails",
			service: func() (daemon.Service, stopper) {
				return failing{boom}, func(context.CancelFunc, chan<- os.Signal) {}
			},
			wantErr: boom,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			svc, stop := tc.service()
			other := newGate()
			sigs := make(chan os.Signal, 2)
			d, err := daemon.New(daemon.WithHTTPAddr(""), daemon.WithSignals(sigs))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := runDaemon(ctx, d, svc, other)
			testkit.Recv(t, other.ran, 10*time.Second, "the services to start")
			stop(cancel, sigs)
			err = testkit.Recv(t, errc, 30*time.Second, "Run to return")
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("Run = %v, want nil", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("Run = %v, want %v", err, tc.wantErr)
			}
			testkit.Recv(t, other.done, 10*time.Second, "the other service to return")
			if !errors.Is(other.ctxErr, context.Canceled) {
				t.Errorf("the other service's ctx: %v, want cancelled", other.ctxErr)
			}
		})
	}
}

// failing is a service that fails at once.
type failing struct{ err error }

func (f failing) Run(context.Context) error { return f.err }

// TestSecondSignalForcesExit: a second signal during the drain calls the
// exit function with 128 + the signal number, without waiting for the
// services.
func TestSecondSignalForcesExit(t *testing.T) {
	t.Parallel()
	svc := newGate()
	svc.release = make(chan struct{}) // ignores its ctx: the drain would last
	defer func() {
		close(svc.release)
		<-svc.done
	}()
	sigs := make(chan os.Signal, 2)
	codes := make(chan int, 1)
	d, err := daemon.New(daemon.WithHTTPAddr(""), daemon.WithSignals(sigs),
		daemon.WithForceExit(func(code int) { codes <- code }))
	if err != nil {
		t.Fatal(err)
	}
	errc := runDaemon(context.Background(), d, svc)
	testkit.Recv(t, svc.ran, 10*time.Second, "the service to start")
	sigs <- syscall.SIGTERM
	testkit.WaitFor(t, 10*time.Second, "the daemon to drain", func() bool {
		err := d.Ready()
		return err != nil && strings.Contains(err.Error(), "draining")
	})
	sigs <- os.Interrupt
	if code := testkit.Recv(t, codes, 10*time.Second, "the forced exit"); code != 130 {
		t.Errorf("exit status %d, want 130 (128 + SIGINT)", code)
	}
	if err := testkit.Recv(t, errc, 10*time.Second, "Run to return"); !errors.Is(err, daemon.ErrForced) {
		t.Errorf("Run = %v, want ErrForced", err)
	}
}

// TestShutdownDeadline: Run gives up on a service that outlives the
// shutdown timeout plus the grace period.
func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	svc := newGate()
	svc.release = make(chan struct{})
	defer func() {
		close(svc.release)
		<-svc.done
	}()
	d, err := daemon.New(daemon.WithHTTPAddr(""), daemon.WithSignals(nil),
		daemon.WithShutdownTimeout(0), daemon.WithGrace(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := runDaemon(ctx, d, svc)
	testkit.Recv(t, svc.ran, 10*time.Second, "the service to start")
	cancel()
	if err := testkit.Recv(t, errc, 30*time.Second, "Run to return"); !errors.Is(err, daemon.ErrShutdownTimeout) {
		t.Errorf("Run = %v, want ErrShutdownTimeout", err)
	}
}

// TestListenFails: a port in use is an error before any service starts.
func TestListenFails(t *testing.T) {
	t.Parallel()
	ln, _ := listen(t)
	defer ln.Close()
	d, err := daemon.New(daemon.WithHTTPAddr(ln.Addr().String()), daemon.WithSignals(nil))
	if err != nil {
		t.Fatal(err)
	}
	svc := newGate()
	err = d.Run(context.Background(), svc)
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run = %v, want a listen error", err)
	}
	select {
	case <-svc.ran:
		t.Error("the service ran")
	default:
	}
	if err := d.Run(context.Background(), svc); err == nil {
		t.Error("a second Run succeeded")
	}
}

// TestMetricsNeedAGatherer: without WithGatherer, /metrics is not served.
func TestMetricsNeedAGatherer(t *testing.T) {
	t.Parallel()
	ln, base := listen(t)
	d, err := daemon.New(daemon.WithListener(ln), daemon.WithSignals(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc := newGate()
	errc := runDaemon(ctx, d, svc)
	waitStatus(t, base+daemon.ReadyPath, http.StatusOK, 10*time.Second)
	if code, _ := mustGet(t, base+daemon.MetricsPath); code != http.StatusNotFound {
		t.Errorf("%s: %d, want 404", daemon.MetricsPath, code)
	}
	if resp, err := client.Post(base+daemon.LivePath, "text/plain", nil); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST %s: %d, want 405", daemon.LivePath, resp.StatusCode)
		}
	}
	cancel()
	if err := testkit.Recv(t, errc, 30*time.Second, "Run to return"); err != nil {
		t.Fatal(err)
	}
}

func TestWithHandlerMountsUnderPrefix(t *testing.T) {
	t.Parallel()
	ln, base := listen(t)
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ui "+r.URL.Path) })
	d, err := daemon.New(daemon.WithListener(ln), daemon.WithSignals(nil), daemon.WithHandler("/ui", ui))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := runDaemon(ctx, d, newGate())
	waitStatus(t, base+daemon.ReadyPath, http.StatusOK, 10*time.Second)
	if code, body := mustGet(t, base+"/ui/queues/x"); code != http.StatusOK || body != "ui /ui/queues/x" {
		t.Errorf("GET /ui/queues/x: %d %q, want 200 from the mounted handler with the whole path", code, body)
	}
	if code, _ := mustGet(t, base+"/elsewhere"); code != http.StatusNotFound {
		t.Errorf("GET /elsewhere: %d, want 404", code)
	}
	cancel()
	if err := testkit.Recv(t, errc, 30*time.Second, "Run to return"); err != nil {
		t.Fatal(err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	t.Parallel()
	bad := daemon.DefaultConfig()
	bad.LogFormat = "xml"
	for name, opt := range map[string]daemon.Option{
		"address":          daemon.WithHTTPAddr("8080"),
		"shutdown timeout": daemon.WithShutdownTimeout(-time.Second),
		"nil listener":     daemon.WithListener(nil),
		"nil gatherer":     daemon.WithGatherer(nil),
		"nil exit":         daemon.WithForceExit(nil),
		"invalid config":   daemon.WithConfig(bad),
		"nil handler":      daemon.WithHandler("/ui", nil),
		"handler prefix":   daemon.WithHandler("ui/", http.NotFoundHandler()),
		"handler on livez": daemon.WithHandler(daemon.LivePath, http.NotFoundHandler()),
	} {
		if _, err := daemon.New(opt); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	d, err := daemon.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); err == nil {
		t.Error("Run without services succeeded")
	}
}

// TestReadyzNamesPausedQueues: a pool whose queue is paused stays ready,
// and /readyz says which queue is paused.
func TestReadyzNamesPausedQueues(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pool, err := worker.NewPool(f.conn, f.topo, worker.NewMux(), worker.WithSender(f.snd))
	if err != nil {
		t.Fatal(err)
	}
	ln, base := listen(t)
	d, err := daemon.New(daemon.WithListener(ln), daemon.WithSignals(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := runDaemon(ctx, d, pool)
	waitStatus(t, base+daemon.ReadyPath, http.StatusOK, 30*time.Second)
	if err := broker.SetPaused(ctx, f.conn, f.queue, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.SetPaused(context.Background(), f.conn, f.queue, false) })
	testkit.WaitFor(t, 30*time.Second, "/readyz to name the paused queue", func() bool {
		code, body := mustGet(t, base+daemon.ReadyPath)
		return code == http.StatusOK && strings.Contains(body, "paused: "+f.queue)
	})
	cancel()
	if err := testkit.Recv(t, errc, 30*time.Second, "Run to return"); err != nil {
		t.Fatal(err)
	}
}
