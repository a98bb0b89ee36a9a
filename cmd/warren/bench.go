package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/internal/bench"
)

// benchImpl is one implementation the bench command can run.
type benchImpl struct {
	name string
	run  func(context.Context, bench.Config) (bench.Result, error)
}

func newBenchCmd(g *globals) *cobra.Command {
	var (
		cfg          bench.Config
		queueType    string
		baseline     bool
		onlyBaseline bool
		rounds       int
		cpuProfile   string
		memProfile   string
	)
	cmd := &cobra.Command{
		Use:   "bench [--jobs N] [--queue-type classic|quorum|both] [--baseline] [--rounds R]",
		Short: "Measure end-to-end throughput, CPU, memory and latency against a broker",
		Long: `Publish --jobs persistent jobs of about --payload-bytes of MessagePack with
pipelined publisher confirms into a fresh durable queue, and consume them at
the same time on a second connection (manual acks, --prefetch, --concurrency
handlers that decode each job). A run ends when every job is handled and
acked; it reports jobs/s end to end, publish and consume rates, client CPU
seconds per 10k jobs, peak RSS and the p50/p99 publish-to-handler latency.

--baseline also runs the same workload written with plain amqp091-go, in the
same process, and compares: warren should reach at least 0.95x the baseline's
jobs/s with at most 1.15x its CPU per job. Each round runs both, in turns
(baseline first on odd rounds, warren first on even ones), and with several
--rounds the medians are compared.

Each run creates and deletes its own queue and exchange (bench.*). The broker
and this process should be otherwise idle; the first --url is used. Each run gives up after --timeout
if it is given, else after 2 minutes or 1ms per job, whichever is longer.`,
		Example: `  warren bench --baseline
  warren bench --baseline --queue-type both --rounds 3 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			cfg.URL = g.brokerURLs()[0]
			cfg.QueueType = queueTypes[0]
			if err := cfg.Validate(); err != nil {
				return err
			}
			impls := []benchImpl{{bench.ImplWarren, bench.RunWarren}}
			switch {
			case onlyBaseline:
				impls = []benchImpl{{bench.ImplBaseline, bench.RunBaseline}}
			case baseline:
				impls = []benchImpl{{bench.ImplBaseline, bench.RunBaseline}, {bench.ImplWarren, bench.RunWarren}}
			}
			timeout := max(2*time.Minute, time.Duration(cfg.Jobs)*time.Millisecond)
			if cmd.Flags().Changed("timeout") {
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
			total, n := rounds*len(queueTypes)*len(impls), 0
			for round := 1; round <= rounds; round++ {
				for _, qt := range queueTypes {
					order := slices.Clone(impls)
					if round%2 == 0 {
						slices.Reverse(order) // cancels drift between the two
					}
					for _, impl := range order {
						n++
						c := cfg
						c.QueueType = qt
						fmt.Fprintf(progress, "[%d/%d] round %d: %s, %s queue, %d jobs ... ", n, total, round, impl.name, qt, c.Jobs)
						ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
						res, err := impl.run(ctx, c)
						cancel()
						if err != nil {
							fmt.Fprintln(progress, "failed")
							if errors.Is(err, context.DeadlineExceeded) && cmd.Context().Err() == nil {
								return fmt.Errorf("%w\nthe run took longer than its timeout of %v: pass a longer --timeout or fewer --jobs", err, timeout)
							}
							return err
						}
						fmt.Fprintf(progress, "%.0f jobs/s\n", res.JobsPerSec)
						res.Round = round
						results = append(results, res)
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
	f.IntVar(&cfg.Jobs, "jobs", bench.DefaultJobs, "jobs per run")
	f.IntVar(&cfg.PayloadBytes, "payload-bytes", bench.DefaultPayloadBytes, "approximate size of each job's MessagePack payload")
	f.IntVar(&cfg.Prefetch, "prefetch", bench.DefaultPrefetch, "consumer prefetch count")
	f.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "concurrent handlers")
	f.StringVar(&queueType, "queue-type", bench.Classic, "queue type: classic, quorum or both")
	f.BoolVar(&baseline, "baseline", false, "also run the plain amqp091-go baseline and compare")
	f.IntVar(&rounds, "rounds", 1, "rounds to run; medians are reported when more than one")
	f.BoolVar(&onlyBaseline, "only-baseline", false, "run the amqp091-go baseline alone")
	_ = f.MarkHidden("only-baseline") // MarkHidden fails only for an unknown flag
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the runs to this file (go tool pprof)")
	f.StringVar(&memProfile, "memprofile", "", "write an allocation profile of the runs to this file (go tool pprof)")
	return cmd
}

// isTerminal says whether w is a terminal, where progress lines are shown.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
