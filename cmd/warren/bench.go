package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/cmd/warren/internal/bench"
)

func newBenchCmd(g *globals) *cobra.Command {
	var (
		tableOf      string
		cfg          bench.Config
		queueType    string
		callers      []int
		baseline     bool
		onlyBaseline bool
		rounds       int
		cpuProfile   string
		memProfile   string
	)
	cmd := &cobra.Command{
		Use:         "bench [--mode jobs|rpc] [--jobs N [--queues Q] [--workers W] | --calls N --callers K,...] [--queue-type classic|quorum|both] [--baseline] [--rounds R]",
		Annotations: map[string]string{noDeadline: "yes"}, // its work grows with what it reads
		Short:       "Measure end-to-end throughput, CPU, memory and latency against a broker",
		Long: `--mode jobs (the default): publish --jobs persistent jobs of about
--payload-bytes of MessagePack with pipelined publisher confirms into a fresh
durable queue, and consume them at the same time on a second connection
(manual acks, --prefetch, --concurrency handlers that decode each job). A run
ends when every job is handled and acked; it reports jobs/s end to end,
publish and consume rates, client CPU seconds per 10k jobs, peak RSS and the
p50/p99 publish-to-handler latency.

--queues Q spreads the jobs round-robin over Q queues of one exchange, each
consumed with --prefetch and --concurrency handlers. --workers W consumes in
W processes of this executable instead of this one, each consuming every
queue: a run adds their CPU time to its own and reports the peak RSS of the
largest; a job lost or handled twice fails the run. Both apply to every
implementation alike.

--mode rpc: make --calls request-reply calls, the replies coming back in
the Caller's own reply queue (--direct-reply-to: over direct reply-to), each waiting for its
reply, from K concurrent callers on one connection, for each
K of --callers (1: one call after another). A server on two more connections
consumes a fresh queue (manual acks, --prefetch, --concurrency handlers),
decodes each request of about --payload-bytes and replies with a small
result. A run reports calls/s, client CPU seconds per 10k calls, allocations
per call, peak RSS and the p50/p99 latency of a call.

--baseline also runs the same workload written with plain amqp091-go, in
the same process, as a careful user writes it by hand, and prints warren's
ratio to each baseline. jobs: amqp091-go acks each delivery as it is
handled; amqp091-go-batched acks the contiguous handled deliveries with
multiple=true, a quarter of --prefetch at a time or whenever its handlers
are idle. rpc: amqp091-go calls over direct reply-to, amqp091-go-queue
with an exclusive reply queue of its own; both send transient requests
(--baseline-durable: persistent, a diagnostic, as is --baseline-wire, which
adds warren's message properties to the baselines' messages).

The targets: jobs, warren reaches at least 1.00x the jobs/s of
amqp091-go-batched with at most 1.05x its CPU per job, and a peak of at most
20 MiB of allocated memory (the anonymous RSS: heap, stacks, runtime; the
"peak RSS" column adds the pages of this executable it maps, the same for
every implementation); rpc, with each number of callers, at least 1.00x the calls/s of
the better baseline (the one with more calls/s) and at most its p99. Each
round runs every implementation, each round starting one further along the
order, and with several --rounds the medians are compared.

Each run creates and deletes its own queues and exchange (bench.*). The broker
and this process should be otherwise idle; the first --url is used. Each run gives up after --timeout
if it is given, else after 2 minutes or 1ms per job or call, whichever is longer.`,
		Example: `  warren bench --baseline
  warren bench --baseline --queue-type both --rounds 3 --json
  warren bench --baseline --queues 4 --workers 2 --rounds 3
  warren bench --mode rpc --baseline --rounds 3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tableOf != "" {
				return printBenchTable(g, tableOf)
			}
			var queueTypes []string
			switch queueType {
			case bench.Classic, bench.Quorum:
				queueTypes = []string{queueType}
			case "both":
				queueTypes = []string{bench.Classic, bench.Quorum}
			default:
				return fmt.Errorf("--queue-type %q: want classic, quorum or both", queueType)
			}
			if rounds < 1 {
				return fmt.Errorf("--rounds %d: must be at least 1", rounds)
			}
			flags := cmd.Flags()
			var perRun []int // callers of each run of a round and queue type; 0: not rpc
			switch cfg.Mode {
			case bench.ModeJobs:
				for _, name := range []string{"calls", "callers", "direct-reply-to", "durable-requests", "baseline-durable"} {
					if flags.Changed(name) {
						return fmt.Errorf("--%s applies to --mode %s only", name, bench.ModeRPC)
					}
				}
				if cfg.Queues < 1 {
					return fmt.Errorf("--queues %d: give at least 1 queue", cfg.Queues)
				}
				perRun = []int{0}
			case bench.ModeRPC:
				if flags.Changed("jobs") {
					return fmt.Errorf("--jobs applies to --mode %s only; --mode %s makes --calls calls", bench.ModeJobs, bench.ModeRPC)
				}
				for _, name := range []string{"queues", "workers"} {
					if flags.Changed(name) {
						v, _ := flags.GetInt(name) // both are int flags
						return fmt.Errorf("--%s %d applies to --mode %s; with --mode %s, --callers and --concurrency set the load", name, v, bench.ModeJobs, bench.ModeRPC)
					}
				}
				cfg.Queues, cfg.Workers = 0, 0
				if len(callers) == 0 {
					return errors.New("--callers: give at least one number of concurrent callers, e.g. 1,16")
				}
				for _, k := range callers {
					if k < 1 {
						return fmt.Errorf("--callers %d: each number of callers must be at least 1", k)
					}
				}
				perRun = callers
			default:
				return fmt.Errorf("--mode %q: want %s or %s", cfg.Mode, bench.ModeJobs, bench.ModeRPC)
			}
			cfg.URL = g.brokerURLs()[0]
			cfg.QueueType = queueTypes[0]
			cfg.Callers = slices.Max(perRun) // the one Validate may find too many
			if err := cfg.Validate(); err != nil {
				return err
			}
			impls := []string{bench.ImplWarren}
			switch {
			case onlyBaseline:
				impls = bench.Baselines(cfg.Mode)
			case baseline:
				impls = append(bench.Baselines(cfg.Mode), bench.ImplWarren)
			}
			work, unit := cfg.Jobs, "jobs"
			if cfg.Mode == bench.ModeRPC {
				work, unit = cfg.Calls, "calls"
			}
			timeout := max(2*time.Minute, time.Duration(work)*time.Millisecond)
			if flags.Changed("timeout") {
				timeout = g.timeout
			}

			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			if memProfile != "" {
				defer func() {
					if f, err := os.Create(memProfile); err == nil {
						_ = pprof.Lookup("allocs").WriteTo(f, 0)
						f.Close()
					}
				}()
			}
			progress := io.Discard
			if isTerminal(g.stderr) {
				progress = g.stderr
			}
			var results []bench.Result
			total, n := rounds*len(queueTypes)*len(perRun)*len(impls), 0
			for round := 1; round <= rounds; round++ {
				for _, qt := range queueTypes {
					for _, k := range perRun {
						// Each round starts one further along, so that
						// every implementation runs in every turn and
						// drift cancels.
						order := rotate(impls, round-1)
						for _, impl := range order {
							n++
							c := cfg
							c.QueueType = qt
							what := fmt.Sprintf("%s, %s queue, %d %s", impl, qt, work, unit)
							if cfg.Mode == bench.ModeRPC {
								c.Callers = k
								what += fmt.Sprintf(", %d caller(s)", k)
							} else if cfg.Queues > 1 || cfg.Workers > 0 {
								what += fmt.Sprintf(", %d queue(s), %d worker(s)", cfg.Queues, cfg.Workers)
							}
							fmt.Fprintf(progress, "[%d/%d] round %d: %s ... ", n, total, round, what)
							ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
							res, err := bench.Run(ctx, impl, c)
							cancel()
							if err != nil {
								fmt.Fprintln(progress, "failed")
								if errors.Is(err, context.DeadlineExceeded) && cmd.Context().Err() == nil {
									return fmt.Errorf("%w\nthe run took longer than its timeout of %v: pass a longer --timeout or fewer --%s", err, timeout, unit)
								}
								return err
							}
							rate := res.JobsPerSec
							if cfg.Mode == bench.ModeRPC {
								rate = res.CallsPerSec
							}
							fmt.Fprintf(progress, "%.0f %s/s\n", rate, unit)
							res.Round = round
							results = append(results, res)
						}
					}
				}
			}
			report := bench.NewReport(cfg, queueTypes, rounds, results)
			if g.json {
				return writeJSON(g.stdout, report)
			}
			return report.WriteTable(g.stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Mode, "mode", bench.DefaultMode, "workload: jobs (publish and consume) or rpc (request-reply calls)")
	f.IntVar(&cfg.Jobs, "jobs", bench.DefaultJobs, "jobs per run (--mode jobs)")
	f.IntVar(&cfg.Calls, "calls", bench.DefaultCalls, "calls per run (--mode rpc)")
	f.IntSliceVar(&callers, "callers", []int{1, 16}, "concurrent callers on one connection; one run for each number (--mode rpc)")
	f.IntVar(&cfg.PayloadBytes, "payload-bytes", bench.DefaultPayloadBytes, "approximate size of each job's or request's MessagePack payload")
	f.IntVar(&cfg.Prefetch, "prefetch", bench.DefaultPrefetch, "consumer prefetch count")
	f.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "concurrent handlers (per queue, in each consumer)")
	f.StringVar(&queueType, "queue-type", bench.Classic, "queue type: classic, quorum or both")
	f.IntVar(&cfg.Queues, "queues", bench.DefaultQueues, "queues the jobs are spread over, round-robin, each consumed with --prefetch and --concurrency (--mode jobs)")
	f.IntVar(&cfg.Workers, "workers", 0, "consumer processes, each consuming every queue; 0: consume in this process (--mode jobs)")
	f.BoolVar(&baseline, "baseline", false, "also run the plain amqp091-go baselines and compare warren with each")
	f.BoolVar(&cfg.DirectReplyTo, "direct-reply-to", false, "warren's Caller receives its replies through direct reply-to instead of an exclusive queue of its own (--mode rpc)")
	f.BoolVar(&cfg.DurableRequests, "durable-requests", false, "warren's Caller sends persistent requests (--mode rpc)")
	f.StringVar(&cfg.BaselineWire, "baseline-wire", "", "diagnostic: what the baselines' messages carry, each adding to the one before. --mode rpc, both baselines' requests: minimal (a correlation id; the default), props (a job id, type, app id, timestamp), deadline (and the warren-deadline header) or warren (and mandatory: all of warren's request, to measure warren's code alone). --mode jobs: minimal (the default) or props (warren's job properties: a job id, type, app id, timestamp)")
	f.BoolVar(&cfg.BaselineDurable, "baseline-durable", false, "diagnostic: the rpc baselines send persistent requests instead of transient ones, the like-for-like comparison with --durable-requests (--mode rpc)")
	f.IntVar(&rounds, "rounds", 1, "rounds to run; medians are reported when more than one")
	f.BoolVar(&onlyBaseline, "only-baseline", false, "run the amqp091-go baselines alone")
	_ = f.MarkHidden("only-baseline") // MarkHidden fails only for an unknown flag
	f.StringVar(&tableOf, "table", "", "print the table of a report saved with --json in this file, and run nothing")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the runs to this file (go tool pprof)")
	f.StringVar(&memProfile, "memprofile", "", "write an allocation profile of the runs to this file (go tool pprof)")
	cmd.AddCommand(newBenchConsumeCmd(g))
	return cmd
}

// newBenchConsumeCmd is the worker process of a run with --workers: warren
// bench starts its own executable with bench.WorkerArgs, and the run's
// part in the environment (bench.WorkerEnv). Hidden: not for use by hand.
func newBenchConsumeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "consume",
		Short:  "Consume a benchmark run's queues as one of its --workers",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !bench.IsWorker() {
				return errors.New("warren bench consume is started by warren bench --workers N; run that instead")
			}
			return bench.ServeWorker(cmd.Context(), os.Stdin, g.stdout)
		},
	}
}

// rotate returns s turned left by n places.
func rotate(s []string, n int) []string {
	n %= len(s)
	return slices.Concat(s[n:], s[:n])
}

// printBenchTable prints the table of the JSON report in path.
func printBenchTable(g *globals, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r bench.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: not a report of warren bench --json: %w", path, err)
	}
	if r.Schema != bench.Schema {
		return fmt.Errorf("%s: schema %q; this warren reads %q (run the benchmark again with this build)", path, r.Schema, bench.Schema)
	}
	return r.WriteTable(g.stdout)
}
