// Command producer publishes the quickstart's jobs: a mix of e-mails, image
// resizes and reports, a fixed share of them designed to fail (see
// ../README.md). Every job is confirmed by the broker before it counts.
//
//	go run ./examples/quickstart/producer --jobs 3000
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/examples/quickstart/internal/config"
	"github.com/warrenmq/warren/examples/quickstart/internal/jobs"
	"github.com/warrenmq/warren/topology"
)

const (
	// batchSize is how many jobs one PublishBatch call sends; their
	// confirms are pipelined, and the call returns once all are in.
	batchSize = 500
	// scheduled jobs are published with broker.In(scheduleDelay).
	scheduled     = 2
	scheduleDelay = 3 * time.Second
)

func main() {
	conf := config.Register(pflag.CommandLine)
	n := pflag.Int("jobs", 3000, fmt.Sprintf("number of jobs to publish, %d of them scheduled %s ahead", scheduled, scheduleDelay))
	pflag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, conf, *n)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, conf *config.Flags, n int) error {
	if n < 0 {
		return fmt.Errorf("--jobs %d: must not be negative", n)
	}
	topo, err := topology.Load(conf.Topology)
	if err != nil {
		return err
	}
	conn, err := broker.Dial(ctx, conf.URLs(), broker.WithName("quickstart-producer"))
	if err != nil {
		return err
	}
	defer conn.Close()
	// The topology routes each job type to its exchange, and lists the
	// queues a scheduled job is delivered to.
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo), broker.WithAppID("quickstart-producer"))
	if err != nil {
		return err
	}
	defer pub.Close(ctx)

	batch, plan := mix(n)
	start := time.Now()

	// The first jobs are scheduled: the broker holds them in the topology's
	// delay cascade and delivers them when due, even if this program has
	// exited by then.
	now := min(scheduled, n)
	for _, job := range batch[:now] {
		if err := pub.Publish(ctx, job, broker.In(scheduleDelay)); err != nil {
			return err
		}
	}
	confirmed := now
	for rest := batch[now:]; len(rest) > 0; {
		chunk := rest[:min(batchSize, len(rest))]
		rest = rest[len(chunk):]
		err := pub.PublishBatch(ctx, chunk)
		if err != nil {
			// Every job the BatchError does not list was confirmed;
			// publishing the listed ones again (same IDs) is safe.
			var be *broker.BatchError
			if errors.As(err, &be) {
				confirmed += len(chunk) - len(be.Failed)
			}
			return fmt.Errorf("%d of %d jobs confirmed, then: %w", confirmed, n, err)
		}
		confirmed += len(chunk)
	}
	elapsed := time.Since(start)

	fmt.Printf("published %d jobs, %d confirmed by the broker, in %s (%.0f jobs/s)\n",
		n, confirmed, elapsed.Round(time.Millisecond), float64(confirmed)/elapsed.Seconds())
	fmt.Printf("  %-14s %5d  %d of them scheduled %s ahead (broker.In)\n", jobs.EmailSend, plan.emails, now, scheduleDelay)
	fmt.Printf("  %-14s %5d  %d fail on their first attempt (width divisible by 3), then succeed when retried\n", jobs.ImageResize, plan.images, plan.flaky)
	fmt.Printf("  %-14s %5d  %d have an invalid month (2026-13), %d an unknown report (payroll): dead-lettered at once, never retried\n", jobs.ReportRender, plan.reports, plan.invalid, plan.unknown)
	return nil
}

// plan counts the jobs of each type, and those designed to fail.
type plan struct {
	emails, images, reports int
	flaky                   int // image.resize jobs that fail on their first attempt
	invalid                 int // report.render jobs for a month that does not exist: they fail for good
	unknown                 int // report.render jobs for a report the worker does not know: they fail for good
}

// mix returns n jobs, 60% e-mails, 30% image resizes and 10% reports, in an
// order fixed so that every run fails the same share of them:
//   - one image in three has a width divisible by 3, which the worker fails
//     on its first attempt, as a flaky download would: it is retried once;
//   - one report in five is for the month "2026-13", and one in ten for
//     the report "payroll", which the worker does not know: it refuses
//     both for good, and they are dead-lettered, two groups by error.
func mix(n int) ([]broker.Job, plan) {
	subjects := []string{"Welcome", "Your receipt", "Password reset"}
	widths := []int{1200, 640, 320, 96, 1024, 800} // 1200 and 96 are divisible by 3
	reports := []string{"sales", "usage", "invoices"}

	var p plan
	out := make([]broker.Job, n)
	for i := range out {
		switch i % 10 {
		case 0, 1, 2, 3, 4, 5:
			out[i] = broker.Job{Type: jobs.EmailSend, Payload: jobs.Email{
				To:      fmt.Sprintf("user%d@example.com", i),
				Subject: subjects[p.emails%len(subjects)],
			}}
			p.emails++
		case 6, 7, 8:
			w := widths[p.images%len(widths)]
			if w%3 == 0 {
				p.flaky++
			}
			out[i] = broker.Job{Type: jobs.ImageResize, Payload: jobs.Resize{
				URL:   fmt.Sprintf("https://cdn.example.com/photos/%d.jpg", i),
				Width: w,
			}}
			p.images++
		default:
			month := fmt.Sprintf("2026-%02d", p.reports%12+1)
			report := reports[p.reports%len(reports)]
			switch {
			case p.reports%5 == 4:
				month = "2026-13"
				p.invalid++
			case p.reports%10 == 7:
				report = "payroll"
				p.unknown++
			}
			out[i] = broker.Job{Type: jobs.ReportRender, Payload: jobs.Report{
				Report: report,
				Month:  month,
			}}
			p.reports++
		}
	}
	return out, p
}
