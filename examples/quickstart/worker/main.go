// Command worker is the quickstart's worker daemon. It consumes the work
// queues of the topology and handles email.send, image.resize and
// report.render jobs, some of which are designed to fail (see
// ../README.md). SIGINT or SIGTERM shuts it down gracefully: the jobs in
// flight finish, the prefetched ones go back to their queue.
//
//	go run ./examples/quickstart/worker                # until Ctrl-C
//	go run ./examples/quickstart/worker --until 3000   # until 3000 jobs are done
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/examples/quickstart/internal/config"
	"github.com/warrenmq/warren/examples/quickstart/internal/jobs"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

type options struct {
	concurrency int
	prefetch    int
	until       int64
	logLevel    string
}

func main() {
	conf := config.Register(flag.CommandLine)
	var o options
	flag.IntVar(&o.concurrency, "concurrency", 16, "handlers running at once, per queue")
	flag.IntVar(&o.prefetch, "prefetch", 64, "jobs the broker sends ahead of the handlers, per queue")
	flag.Int64Var(&o.until, "until", 0, "exit once this many jobs succeeded or were dead-lettered (0: run until SIGINT or SIGTERM)")
	flag.StringVar(&o.logLevel, "log-level", "", `debug, info, warn or error (default "info", "error" with --until)`)
	flag.Parse()

	if err := run(conf, o); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(conf *config.Flags, o options) error {
	// The first SIGINT or SIGTERM ends ctx, which shuts the pool down
	// gracefully; a second one kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)

	terminal := isTerminal(os.Stderr)
	log, err := newLogger(o.logLevel, o.until > 0, terminal)
	if err != nil {
		return err
	}
	topo, err := topology.Load(conf.Topology)
	if err != nil {
		return err
	}

	// One connection consumes, another publishes the retries and dead
	// letters: a broker short of memory or disk blocks the connections
	// that publish, and the consumers' acks must not wait behind them.
	conn, err := broker.Dial(ctx, conf.URLs(), broker.WithName("quickstart-worker"), broker.WithLogger(log))
	if err != nil {
		return err
	}
	defer conn.Close()
	pubConn, err := broker.Dial(ctx, conf.URLs(), broker.WithName("quickstart-worker-publisher"), broker.WithLogger(log))
	if err != nil {
		return err
	}
	defer pubConn.Close()
	pub, err := broker.NewPublisher(pubConn, broker.WithAppID("quickstart-worker"))
	if err != nil {
		return err
	}
	defer closeWithin(5*time.Second, pub.Close) // after the pool: it publishes until Run returns

	mux := worker.NewMux()
	mux.Handle(jobs.EmailSend, worker.Typed(sendEmail))
	mux.Handle(jobs.ImageResize, worker.Typed(resizeImage))
	mux.Handle(jobs.ReportRender, worker.Typed(renderReport))

	// The observer counts every outcome; with --until, the pool stops once
	// enough jobs are done.
	runCtx, finish := context.WithCancel(ctx)
	defer finish()
	var tally counts
	observe := func(out worker.Outcome) {
		if done := tally.add(out); o.until > 0 && done >= o.until {
			finish()
		}
	}
	opts := []worker.Option{worker.WithPublisher(pub), worker.WithLogger(log), worker.WithObserver(observe)}
	for _, q := range topo.WorkQueues() {
		opts = append(opts, worker.WithQueue(q.Name, worker.Concurrency(o.concurrency), worker.Prefetch(o.prefetch)))
	}
	pool, err := worker.NewPool(conn, topo, mux, opts...)
	if err != nil {
		return err
	}

	stopProgress := func() {}
	if terminal {
		stopProgress = tally.showProgress(os.Stderr, o.until)
	}
	runErr := pool.Run(runCtx)
	stopProgress()

	tally.print(os.Stdout)
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

// renderReport refuses an invalid month for good: retrying cannot fix the
// payload, so worker.Permanent sends the job to its dead-letter queue at
// once, with the error in its headers.
func renderReport(ctx context.Context, _ *worker.Job, r jobs.Report) error {
	if _, err := time.Parse("2006-01", r.Month); err != nil {
		return worker.Permanent(fmt.Errorf("invalid month: %w", err))
	}
	return work(ctx, 5*time.Millisecond)
}

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

// newLogger logs for people on a terminal, in JSON for log collectors
// otherwise. The default level is info, or error with --until, where the
// progress line and the summary tell the story.
func newLogger(level string, demo, terminal bool) (zerolog.Logger, error) {
	if level == "" {
		level = "info"
		if demo {
			level = "error"
		}
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.Nop(), fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	var out io.Writer = os.Stderr
	if terminal {
		out = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
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
