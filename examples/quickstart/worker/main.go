// Command worker is the quickstart's worker daemon. It consumes the work
// queues of the topology and handles email.send, image.resize,
// report.render and stats.rollup jobs, some of which are designed to fail
// (see ../README.md). It fires the topology's schedule (stats.rollup every
// second) when it leads the election among the workers, and report.render
// jobs trip the reports queue's circuit breaker during the renderer's
// planned outage. It runs its pool with package daemon: /livez, /readyz and
// /metrics on :8080, and a graceful shutdown on SIGINT or SIGTERM (not
// ready, then the jobs in flight finish and the prefetched ones go back to
// their queue); a second signal exits at once.
//
//	go run ./examples/quickstart/worker                # until Ctrl-C
//	go run ./examples/quickstart/worker --until 3000   # until 3000 jobs are done
package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/daemon"
	"github.com/warrenmq/warren/examples/quickstart/internal/config"
	"github.com/warrenmq/warren/examples/quickstart/internal/jobs"
	"github.com/warrenmq/warren/metrics"
	"github.com/warrenmq/warren/scheduler"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

type options struct {
	topology    string
	concurrency int
	prefetch    int
	until       int64
	scheduler   bool
	leaseQueue  string
	outage      time.Duration
}

func main() {
	// The environment first, then the flags over it.
	cfg, envErr := daemon.FromEnv()
	cfg.RegisterFlags(pflag.CommandLine)
	var o options
	config.RegisterTopology(pflag.CommandLine, &o.topology)
	pflag.IntVar(&o.concurrency, "concurrency", 16, "handlers running at once, per queue")
	pflag.IntVar(&o.prefetch, "prefetch", 64, "jobs the broker sends ahead of the handlers, per queue")
	pflag.Int64Var(&o.until, "until", 0, "exit once this many jobs succeeded or were dead-lettered (0: run until SIGINT or SIGTERM)")
	pflag.BoolVar(&o.scheduler, "scheduler", true, "fire the topology's schedules (periodic jobs), when it has any: one of the workers that do fires each tick")
	pflag.DurationVar(&o.outage, "renderer-outage", 2*time.Second, "how long the report renderer is down, after 10 reports (0: no outage); report.render jobs trip the reports queue's circuit breaker meanwhile")
	pflag.StringVar(&o.leaseQueue, "lease-queue", scheduler.DefaultLeaseQueue, "the queue whose token elects the worker that fires the schedules; workers firing other schedules need another")
	pflag.Parse()

	// With --until, the progress line and the summary tell the story:
	// log errors only, unless a level is asked for.
	if o.until > 0 && !pflag.CommandLine.Changed(daemon.FlagLogLevel) && os.Getenv(daemon.EnvLogLevel) == "" {
		cfg.LogLevel = zerolog.LevelErrorValue
	}
	err := envErr
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil {
		err = run(cfg, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(cfg daemon.Config, o options) error {
	log, err := cfg.Logger(os.Stderr)
	if err != nil {
		return err
	}
	topo, err := topology.Load(o.topology)
	if err != nil {
		return err
	}

	// /metrics: the Go runtime, the process, and warren's metrics (jobs
	// processed by outcome, handler durations, jobs in flight, publishes,
	// reconnections: docs/observability.md).
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(registry, metrics.WithJobTypes(topo.JobTypes()...))
	if err != nil {
		return err
	}

	// One connection consumes, another publishes the retries and dead
	// letters: a broker short of memory or disk blocks the connections
	// that publish, and the consumers' acks must not wait behind them.
	// The metrics observe both: everything built on them is counted, and
	// their reconnections under their names.
	// Its client properties tell the management API and the dashboard's
	// workers page what this worker consumes.
	var queues []string
	for _, q := range topo.WorkQueues() {
		queues = append(queues, q.Name)
	}
	ctx := context.Background()
	conn, err := broker.Dial(ctx, cfg.URLs, broker.WithName("quickstart-worker"), broker.WithLogger(log), broker.WithObserver(m),
		broker.WithClientProperty("queues", strings.Join(queues, ",")), broker.WithClientProperty("concurrency", o.concurrency))
	if err != nil {
		return err
	}
	defer conn.Close()
	pubConn, err := broker.Dial(ctx, cfg.URLs, broker.WithName("quickstart-worker-publisher"), broker.WithLogger(log), broker.WithObserver(m))
	if err != nil {
		return err
	}
	defer pubConn.Close()
	pub, err := broker.NewSender(pubConn, broker.WithAppID("quickstart-worker"))
	if err != nil {
		return err
	}
	defer closeWithin(5*time.Second, pub.Close) // after the pool: it publishes until Run returns

	mux := worker.NewMux()
	mux.Handle(jobs.EmailSend, worker.Typed(sendEmail))
	mux.Handle(jobs.ImageResize, worker.Typed(resizeImage))
	rend := &renderer{after: 10, outage: o.outage}
	mux.Handle(jobs.ReportRender, worker.Typed(func(ctx context.Context, job *worker.Job, r jobs.Report) error {
		return renderReport(ctx, rend, r)
	}))
	// The periodic job: the schedule's ticks are recorded for the summary.
	schedules := scheduler.FromTopology(topo)
	var rollups *ticks
	for _, s := range schedules {
		if s.Type == jobs.StatsRollup {
			rollups = newTicks(s.Name, s.Every)
		}
	}
	mux.Handle(jobs.StatsRollup, worker.Typed(func(ctx context.Context, job *worker.Job, r jobs.Rollup) error {
		if rollups != nil {
			if err := rollups.add(job); err != nil {
				return err
			}
		}
		return work(ctx, time.Millisecond)
	}))

	// The observer counts every outcome; with --until, the daemon stops
	// once enough jobs are done. The pool observes its jobs with the
	// metrics of conn without being told.
	runCtx, finish := context.WithCancel(ctx)
	defer finish()
	var tally counts
	var breakers breakerLog
	observe := func(out worker.Outcome) {
		if out.JobType == jobs.StatsRollup {
			return // the schedule's, not the producer's: not in --until
		}
		if done := tally.add(out); o.until > 0 && done >= o.until {
			finish()
		}
	}
	opts := []worker.Option{
		worker.WithSender(pub),
		worker.WithLogger(log),
		worker.WithObserver(worker.OutcomeFunc(observe)),
		worker.WithObserver(&breakers),
		worker.WithShutdownTimeout(cfg.ShutdownTimeout), // the daemon's deadline too
	}
	for _, q := range topo.WorkQueues() {
		qopts := []worker.QueueOption{worker.Concurrency(o.concurrency), worker.Prefetch(o.prefetch)}
		if strings.HasSuffix(q.Name, "reports") {
			// The reports depend on the renderer: when it is down, the
			// queue's jobs wait in the broker instead of failing into
			// retries. A handler that sees the outage trips the breaker
			// (TripBreaker); after a second one trial job runs, and the
			// breaker closes when it succeeds, or stays open twice as
			// long when it fails.
			qopts = append(qopts, worker.Breaker(worker.BreakerPolicy{CoolDown: time.Second, HalfOpenJobs: 1}))
		}
		opts = append(opts, worker.WithQueue(q.Name, qopts...))
	}
	pool, err := worker.NewPool(conn, topo, mux, opts...)
	if err != nil {
		return err
	}
	services := []daemon.Service{pool}
	// The topology's periodic jobs: every worker takes part in the
	// election, and the one that leads fires the ticks, so that no
	// separate process needs deploying. It publishes on the publishing
	// connection; its state lives in the broker.
	if o.scheduler && len(topo.Schedules) > 0 {
		s, err := scheduler.New(pubConn, schedules, scheduler.WithRouter(topo),
			scheduler.WithLogger(log), scheduler.WithObserver(m), scheduler.WithLeaseQueue(o.leaseQueue))
		if err != nil {
			return err
		}
		services = append(services, s)
	}
	d, err := daemon.New(daemon.WithConfig(cfg), daemon.WithLogger(log), daemon.WithGatherer(registry))
	if err != nil {
		return err
	}

	stopProgress := func() {}
	if isTerminal(os.Stderr) {
		stopProgress = tally.showProgress(os.Stderr, o.until)
	}
	// Until --until jobs are done, or SIGINT or SIGTERM.
	runErr := d.Run(runCtx, services...)
	stopProgress()

	tally.print(os.Stdout)
	if rollups != nil {
		rollups.print(os.Stdout)
	}
	breakers.print(os.Stdout, rend)
	// The pool has stopped: every dead letter it parked is in its queue.
	peekCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dlqErr := printDeadLetters(peekCtx, os.Stdout, conn, topo)

	if runErr == nil && o.until > 0 && tally.done() < o.until {
		runErr = fmt.Errorf("stopped after %d of %d jobs", tally.done(), o.until)
	}
	return errors.Join(runErr, dlqErr)
}

// sendEmail stands in for an SMTP call: it always succeeds.
func sendEmail(ctx context.Context, _ *worker.Job, e jobs.Email) error {
	if e.To == "" {
		return worker.Permanent(errors.New("no recipient"))
	}
	return work(ctx, time.Duration(1+rand.IntN(3))*time.Millisecond)
}

// resizeImage stands in for a download and a resize. The download is
// flaky, in a way the quickstart fixes in advance: an image whose width is
// divisible by 3 fails on its first attempt. An ordinary error means "try
// again": the pool retries the job after the backoff of the topology's
// retry policy, and the second attempt succeeds.
func resizeImage(ctx context.Context, job *worker.Job, img jobs.Resize) error {
	if img.Width%3 == 0 && job.Attempt == 1 {
		return fmt.Errorf("download %s: connection reset by peer", img.URL)
	}
	return work(ctx, 2*time.Millisecond)
}

// renderReport refuses an invalid month or an unknown report for good:
// retrying cannot fix the payload, so worker.Permanent sends the job to its
// dead-letter queue at once, with the error in its headers. A valid report
// goes to the renderer; while it is down, the job trips the queue's
// circuit breaker: it goes back to the queue without using an attempt,
// and the queue is not consumed until the renderer answers again.
func renderReport(ctx context.Context, rend *renderer, r jobs.Report) error {
	if _, err := time.Parse("2006-01", r.Month); err != nil {
		return worker.Permanent(fmt.Errorf("invalid month: %w", err))
	}
	if !slices.Contains(knownReports, r.Report) {
		return worker.Permanent(fmt.Errorf("unknown report %q", r.Report))
	}
	if err := rend.render(ctx); err != nil {
		if errors.Is(err, errRendererDown) {
			return worker.TripBreaker(err)
		}
		return err
	}
	return nil
}

// knownReports are the reports renderReport renders.
var knownReports = []string{"sales", "usage", "invoices"}

// work simulates d of work. Like any handler, it returns when ctx ends
// (the job's timeout, or the end of the shutdown grace period).
func work(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// closeWithin calls closeFn with a ctx that ends after d.
func closeWithin(d time.Duration, closeFn func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_ = closeFn(ctx)
}
