// Package daemon runs long-lived services, usually a *worker.Pool, the way
// process supervisors and orchestrators such as Kubernetes expect: it
// handles SIGTERM and SIGINT, serves health probes and Prometheus metrics
// over HTTP, and shuts down in a fixed order within a deadline.
//
// What daemon owns: the process around the services — signals, the HTTP
// probes and /metrics, the order and deadline of shutdown, and the
// operator's configuration (flags and environment). It knows a service
// only by its Run and Ready methods, so it imports neither worker nor
// amqp091-go; of broker it uses only the default URL and URL redaction.
// Connecting, consuming and settling belong to the services it runs.
//
//	d, err := daemon.New(daemon.WithConfig(cfg), daemon.WithLogger(log), daemon.WithGatherer(registry))
//	...
//	err = d.Run(ctx, pool)
//
// A Service is anything with Run(ctx) error that blocks until ctx ends; a
// service that also has Ready() error (a Readier, as *worker.Pool is)
// takes part in the readiness probe. A *scheduler.Scheduler is a Service
// too: run it beside the pool (d.Run(ctx, pool, sched)) so that the
// workers fire the topology's periodic jobs, one of them at a time, with
// no process of its own to deploy; /readyz says whether it leads.
//
// # HTTP endpoints
//
// On DefaultHTTPAddr (":8080") unless configured otherwise:
//
//   - LivePath ("/livez"): 200 while the process runs, draining included,
//     so that a liveness probe never restarts a worker that is finishing
//     its jobs;
//   - ReadyPath ("/readyz"): 200 when every service's Ready returns nil
//     and the daemon is not draining; otherwise 503 with the reason as
//     text;
//   - MetricsPath ("/metrics"): the metrics of the prometheus.Gatherer
//     given with WithGatherer (not served without one).
//
// # Shutdown
//
// Run stops on the first of: its ctx ends, SIGTERM or SIGINT arrives, a
// service returns (with or without an error), the HTTP server fails.
// Then, in order:
//
//  1. readiness turns false at once: /readyz answers 503 "draining";
//  2. the services' ctx is cancelled; a *worker.Pool cancels its
//     consumers, lets the jobs in flight finish within its shutdown
//     timeout, returns the prefetched jobs to their queue and closes its
//     channels;
//  3. Run waits for every service to return, for up to the shutdown
//     timeout plus ShutdownGrace; past that it gives up on them and
//     returns an error wrapping ErrShutdownTimeout (their goroutines are
//     left behind: exit the process, and the broker returns their unacked
//     jobs to the queue);
//  4. the HTTP server shuts down gracefully, so that probes answer until
//     the services have stopped;
//  5. signal handling is restored to the default, and Run returns.
//
// A second SIGTERM or SIGINT during the shutdown exits the process at once
// with status 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as
// a shell reports a process killed by that signal. Jobs then in flight are
// not acked; the broker returns them to their queue when the connection
// drops, and another worker runs them again.
//
// # Configuration
//
// Config holds what an operator sets, from flags with environment
// fallbacks: FromEnv reads WARREN_URL, WARREN_HTTP_ADDR,
// WARREN_SHUTDOWN_TIMEOUT, WARREN_LOG_LEVEL and WARREN_LOG_FORMAT;
// RegisterFlags adds --url, --http-addr, --shutdown-timeout, --log-level
// and --log-format to a pflag.FlagSet, and they take precedence. The
// warren CLI uses the same names. The deprecated --amqp-url,
// WARREN_AMQP_URL and AMQP_URL still work, each with a one-line warning.
// Passwords in broker URLs are never printed: --help, String and the logs
// show them as "xxxxx".
//
// See docs/deployment.md for a Kubernetes Deployment and a KEDA
// ScaledObject built on these defaults.
package daemon
