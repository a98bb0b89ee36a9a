package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/daemon"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// A daemon runs its services until its ctx ends or SIGTERM arrives, and
// answers the probes meanwhile. Here the service waits for its ctx, and
// the server listens on a free port rather than on DefaultHTTPAddr.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := daemon.New(daemon.WithListener(ln))
	if err != nil {
		fmt.Println(err)
		return
	}
	idle := daemon.ServiceFunc(func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, idle) }()

	// What a readiness probe sees, once the daemon is up.
	for {
		resp, err := http.Get("http://" + ln.Addr().String() + daemon.ReadyPath)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Print(resp.StatusCode, " ", string(body))
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}

	stop() // as SIGTERM would: not ready, then the services stop
	fmt.Println("Run:", <-done)
	// Output:
	// 200 ok
	// Run: <nil>
}

// A worker daemon: configuration from the environment and flags, a pool
// consuming the topology's work queues, its probes and metrics on :8080.
func Example_worker() {
	cfg, err := daemon.FromEnv()
	cfg.RegisterFlags(pflag.CommandLine)
	file := pflag.StringP("file", "f", "topology.yaml", "topology file")
	pflag.Parse()
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log, err := cfg.Logger(os.Stderr) // JSON, or for people on a terminal
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	run := func() error {
		topo, err := topology.Load(*file)
		if err != nil {
			return err
		}
		conn, err := broker.Dial(context.Background(), cfg.URLs, broker.WithLogger(log))
		if err != nil {
			return err
		}
		defer conn.Close()

		mux := worker.NewMux()
		mux.HandleFunc("email.send", func(ctx context.Context, job *worker.Job) error {
			var email struct{ To string }
			return job.Decode(&email)
		})
		pool, err := worker.NewPool(conn, topo, mux,
			worker.WithLogger(log),
			worker.WithShutdownTimeout(cfg.ShutdownTimeout)) // the daemon's deadline
		if err != nil {
			return err
		}

		registry := prometheus.NewRegistry()
		registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		d, err := daemon.New(daemon.WithConfig(cfg), daemon.WithLogger(log), daemon.WithGatherer(registry))
		if err != nil {
			return err
		}
		// Until SIGTERM or SIGINT; a second one exits at once.
		return d.Run(context.Background(), pool)
	}
	if err := run(); err != nil {
		log.Error().Err(err).Msg("worker stopped")
		os.Exit(1)
	}
}

// Ready says why a daemon is not ready: what /readyz answers with its 503.
func ExampleDaemon_Ready() {
	d, err := daemon.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Ready())
	// Output:
	// daemon: not ready: not started
}

// Printing a Config never shows a password.
func ExampleConfig_String() {
	cfg := daemon.DefaultConfig()
	cfg.URLs = []string{"amqp://app:s3cret@rabbitmq.default.svc:5672/"}
	fmt.Println(strings.Fields(cfg.String())[0])
	// Output:
	// url=amqp://app:xxxxx@rabbitmq.default.svc:5672/
}

// A worker daemon can serve the dashboard on its HTTP server, under /ui,
// beside /livez, /readyz and /metrics. The handler is any http.Handler:
// here warren's dashboard would be dashboard.New(dashboard.Options{URLs:
// urls, Prefix: "/ui", ReadOnly: true, Token: token}).
func ExampleWithHandler() {
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "dashboard at", r.URL.Path)
	})
	d, err := daemon.New(daemon.WithHTTPAddr("127.0.0.1:0"), daemon.WithHandler("/ui", ui))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = d // d.Run(ctx, pool) serves /ui/ until ctx ends
	fmt.Println("mounted")
	// Output: mounted
}
