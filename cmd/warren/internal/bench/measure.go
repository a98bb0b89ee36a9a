package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Implementation names, in Result.Impl.
const (
	ImplWarren = "warren"
	// ImplBaseline is the plain amqp091-go baseline: in ModeJobs, a
	// consumer acking each delivery as it is handled.
	ImplBaseline = "amqp091-go"
	// ImplBaselineBatched is the ModeJobs baseline acking in batches, as
	// careful hand-written consumers with concurrent handlers do.
	ImplBaselineBatched = "amqp091-go-batched"
	// ImplBaselineQueue is the ModeRPC baseline whose client receives its
	// replies in an exclusive reply queue of its own; ImplBaseline's
	// uses direct reply-to.
	ImplBaselineQueue = "amqp091-go-queue"
)

// Baselines returns the baselines of a mode, in the order of a round's
// first turn.
func Baselines(mode string) []string {
	if mode == ModeRPC {
		return []string{ImplBaseline, ImplBaselineQueue}
	}
	return []string{ImplBaseline, ImplBaselineBatched}
}

// Run runs the workload of cfg.Mode once with the implementation impl
// (ImplWarren or one of Baselines) and measures it.
func Run(ctx context.Context, impl string, cfg Config) (Result, error) {
	cfg.setDefaults()
	switch {
	case impl == ImplWarren:
		return RunWarren(ctx, cfg)
	case !slices.Contains(Baselines(cfg.Mode), impl):
		return Result{}, fmt.Errorf("bench: no implementation %q of mode %s: want %s or one of %v", impl, cfg.Mode, ImplWarren, Baselines(cfg.Mode))
	case cfg.Mode == ModeRPC:
		return MeasureCalls(ctx, impl, cfg, baselineRPC(impl))
	default:
		return Measure(ctx, impl, cfg, baselineJobs(impl))
	}
}

// Result is what one run measured. In ModeRPC the jobs are the requests,
// one per call: CPUSecondsPer10k, AllocsPerJob and BytesPerJob are per call,
// and the fields of ModeJobs alone (Jobs, JobsPerSec, PublishPerSec,
// ConsumePerSec) are zero, and left out of the JSON.
type Result struct {
	// Impl is ImplWarren or one of Baselines(Mode).
	Impl string `json:"impl"`
	// Mode is the workload: ModeJobs or ModeRPC.
	Mode      string `json:"mode"`
	QueueType string `json:"queue_type"`
	// Callers is how many goroutines called at once (ModeRPC).
	Callers int `json:"callers,omitempty"`
	// Round numbers the runs of a benchmark from 1; 0 in a median.
	Round int `json:"round,omitempty"`
	// Runs is how many runs a median summarizes; 0 in a single run.
	Runs int `json:"runs,omitempty"`
	Jobs int `json:"jobs,omitempty"`
	// Calls is how many calls were measured (ModeRPC).
	Calls int `json:"calls,omitempty"`
	// Seconds is the time from the first publish to the last job handled;
	// in ModeRPC, from the start of the first call to the end of the last.
	Seconds float64 `json:"seconds"`
	// JobsPerSec is Jobs / Seconds: the end-to-end rate.
	JobsPerSec float64 `json:"jobs_per_sec,omitempty"`
	// PublishPerSec is Jobs over the time from the first publish to the
	// last confirm.
	PublishPerSec float64 `json:"publish_per_sec,omitempty"`
	// ConsumePerSec is Jobs over the time from the first job handled to the
	// last.
	ConsumePerSec float64 `json:"consume_per_sec,omitempty"`
	// CallsPerSec is Calls / Seconds (ModeRPC).
	CallsPerSec float64 `json:"calls_per_sec,omitempty"`
	// CPUSecondsPer10k is the process's user and system CPU time from the
	// first publish until consuming stopped (ModeRPC: over Seconds), per
	// 10,000 jobs.
	CPUSecondsPer10k float64 `json:"cpu_seconds_per_10k"`
	// AllocsPerJob and BytesPerJob are the Go heap allocations of the whole
	// process over the same span, per job: what the garbage collector has
	// to pay for.
	AllocsPerJob float64 `json:"allocs_per_job"`
	BytesPerJob  float64 `json:"bytes_per_job"`
	// PeakRSSBytes is the process's peak resident set size during the run,
	// setup and teardown included.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// PeakAnonBytes is the peak of the process's anonymous RSS during the
	// run (sampled every 10 ms): the memory it allocated (heap, stacks,
	// the runtime's), without the pages of the executable it maps, which
	// PeakRSSBytes counts and which are the same for every implementation
	// of one binary. 0 where the kernel does not report it.
	PeakAnonBytes int64 `json:"peak_anon_bytes,omitempty"`
	// PeakRSSLifetime is set when the peak could not be reset before the
	// run (no writable /proc/self/clear_refs): PeakRSSBytes is then the
	// peak of the process's whole life.
	PeakRSSLifetime bool `json:"peak_rss_lifetime,omitempty"`
	// P50 and P99 are percentiles of the time from encoding a job for
	// publishing to its handler being called; in ModeRPC, of the time
	// each call took, as its caller saw it.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
}

// Runner runs the workload of cfg once with one implementation, reporting
// to rec. In order, it:
//
//  1. connects (a connection to publish, another to consume), declares
//     cfg.Queues fresh queues and starts consuming from them, in its own
//     process or, with cfg.Workers, in worker processes;
//  2. calls rec.Start right before the first publish;
//  3. publishes cfg.Jobs jobs whose payloads are Payloads numbered 0 to
//     cfg.Jobs-1 (from rec.Filler), round-robin over the queues' routing
//     keys, at most PublishWindow awaiting their
//     confirms, and calls rec.Published once every one is confirmed; the
//     handlers, meanwhile, decode each payload and call rec.Handled;
//  4. waits with rec.Wait until every job was handled, stops consuming once
//     every ack was sent, and calls rec.Stop;
//  5. deletes what it declared and closes its connections.
//
// It returns an error if any step fails or ctx ends.
type Runner func(ctx context.Context, cfg Config, rec *Recorder) error

// Recorder collects one run's measurements. Handled is safe for concurrent
// use; the other methods are called by the runner's own goroutine.
type Recorder struct {
	filler string
	base   time.Time // monotonic origin of the offsets below

	latency []int64 // nanoseconds, by Seq; each slot written once, by the handler of that job
	handled atomic.Int64
	first   atomic.Int64 // offset of the first job handled, +1 (0: none yet)
	last    int64        // offset of the last job handled; written before done is closed
	done    chan struct{}

	failOnce sync.Once
	failed   chan struct{}
	err      error

	start, published, stop time.Time
	cpuStart, cpuStop      time.Duration
	memStart, memStop      runtime.MemStats
	cpuErr                 error

	// What the worker processes of a run with Config.Workers used, added
	// by merge: their CPU time, allocations, and the largest peak RSS.
	workers                    int
	workerCPU                  time.Duration
	workerMallocs, workerBytes uint64
	workerPeakRSS              int64
	workerPeakAnon             int64
}

func newRecorder(cfg Config) *Recorder {
	return &Recorder{
		filler:  filler(cfg.PayloadBytes, cfg.Jobs),
		base:    time.Now(),
		latency: make([]int64, cfg.Jobs),
		done:    make(chan struct{}),
		failed:  make(chan struct{}),
	}
}

// Filler is the Data of every Payload of the run.
func (r *Recorder) Filler() string { return r.filler }

// Start marks the first publish: the clock and the CPU count start.
func (r *Recorder) Start() {
	runtime.ReadMemStats(&r.memStart)
	r.cpuStart, r.cpuErr = cpuTime()
	r.start = time.Now()
}

// Published marks the last confirm.
func (r *Recorder) Published() { r.published = time.Now() }

// Handled records that the handler got job seq, sent at sentAt (Unix
// nanoseconds). A sequence number outside the run fails the run.
func (r *Recorder) Handled(seq int, sentAt int64) {
	now := time.Now()
	if seq < 0 || seq >= len(r.latency) {
		r.Fail(fmt.Errorf("handled a job with sequence number %d, outside 0..%d", seq, len(r.latency)-1))
		return
	}
	// At least 1, so that 0 means "never handled".
	r.latency[seq] = max(now.UnixNano()-sentAt, 1)
	off := int64(now.Sub(r.base))
	if r.first.Load() == 0 {
		r.first.CompareAndSwap(0, off+1)
	}
	if r.handled.Add(1) == int64(len(r.latency)) {
		r.last = off
		close(r.done)
	}
}

// merge adds what worker i handled, and what it used, once the run
// stopped it. A job handled twice, by one worker or two, fails the run.
func (r *Recorder) merge(i int, f *workerFinal, cpu time.Duration, peakRSS int64) error {
	if f.Duplicates > 0 {
		return fmt.Errorf("worker %d handled %d job(s) twice", i, f.Duplicates)
	}
	if len(f.Seqs) != len(f.LatencyNanos) {
		return fmt.Errorf("worker %d reported %d jobs and %d latencies (a bug in the worker)", i, len(f.Seqs), len(f.LatencyNanos))
	}
	for k, seq := range f.Seqs {
		switch {
		case seq < 0 || seq >= len(r.latency):
			return fmt.Errorf("worker %d handled a job with sequence number %d, outside 0..%d", i, seq, len(r.latency)-1)
		case r.latency[seq] != 0:
			return fmt.Errorf("job %d was handled by two workers", seq)
		}
		r.latency[seq] = max(f.LatencyNanos[k], 1)
	}
	if len(f.Seqs) > 0 {
		// The workers' times are Unix nanoseconds, read on the same clock.
		base := r.base.UnixNano()
		if first := f.FirstNanos - base + 1; r.first.Load() == 0 || first < r.first.Load() {
			r.first.Store(first)
		}
		r.last = max(r.last, f.LastNanos-base)
	}
	r.handled.Add(int64(len(f.Seqs)))
	r.workers++
	r.workerCPU += cpu
	r.workerMallocs += f.Mallocs
	r.workerBytes += f.Bytes
	r.workerPeakRSS = max(r.workerPeakRSS, peakRSS)
	r.workerPeakAnon = max(r.workerPeakAnon, f.PeakAnonBytes)
	return nil
}

// Fail ends the run with err; the first failure wins.
func (r *Recorder) Fail(err error) {
	r.failOnce.Do(func() {
		r.err = err
		close(r.failed)
	})
}

// failure returns the error the run failed with, if it failed.
func (r *Recorder) failure() error {
	select {
	case <-r.failed:
		return r.err
	default:
		return nil
	}
}

// Wait blocks until every job was handled, the run failed or ctx ended.
func (r *Recorder) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return nil
	case <-r.failed:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("%d of %d jobs handled when the wait ended: %w", r.handled.Load(), len(r.latency), ctx.Err())
	}
}

// Stop marks the end of consuming: the CPU count stops.
func (r *Recorder) Stop() {
	var err error
	r.cpuStop, err = cpuTime()
	r.cpuErr = errors.Join(r.cpuErr, err)
	r.stop = time.Now()
	runtime.ReadMemStats(&r.memStop)
}

// Measure runs one implementation of the ModeJobs workload and measures
// it. It validates cfg (after defaults), forces a garbage collection and returns
// memory to the OS so that runs start even, resets the process's peak RSS,
// then calls run. Runs must not overlap: CPU time and memory are the whole
// process's.
func Measure(ctx context.Context, impl string, cfg Config, run Runner) (Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.Mode != ModeJobs {
		return Result{}, fmt.Errorf("bench: Measure runs the %s workload, not %s: use MeasureCalls", ModeJobs, cfg.Mode)
	}
	rec := newRecorder(cfg)
	reset := settle()
	anon := startAnonSampler()
	err := run(ctx, cfg, rec)
	peakAnon := anon.finish()
	if err != nil {
		return Result{}, fmt.Errorf("bench: %s on a %s queue: %w", impl, cfg.QueueType, err)
	}
	res, err := rec.result(impl, cfg)
	if err != nil {
		return Result{}, fmt.Errorf("bench: %s on a %s queue: %w", impl, cfg.QueueType, err)
	}
	res.PeakRSSBytes, res.PeakRSSLifetime = peakRSS(reset)
	res.PeakAnonBytes = peakAnon
	if rec.workers > 0 {
		// The consumers' memory, as a deployment sizes its workers.
		res.PeakRSSBytes, res.PeakRSSLifetime = rec.workerPeakRSS, false
		res.PeakAnonBytes = rec.workerPeakAnon
	}
	return res, nil
}

// settle readies the process for a run: it forces a garbage collection and
// returns memory to the OS so that runs start even, and resets the peak RSS,
// reporting whether it could.
func settle() (peakReset bool) {
	debug.FreeOSMemory()
	return resetPeakRSS() == nil
}

// result computes the run's Result once the runner returned.
func (r *Recorder) result(impl string, cfg Config) (Result, error) {
	switch {
	case r.err != nil:
		return Result{}, r.err
	case r.start.IsZero() || r.published.IsZero() || r.stop.IsZero():
		return Result{}, errors.New("the runner did not call Start, Published and Stop (a bug in the runner)")
	case r.handled.Load() != int64(cfg.Jobs):
		return Result{}, fmt.Errorf("%d of %d jobs handled", r.handled.Load(), cfg.Jobs)
	}
	if i := slices.Index(r.latency, 0); i >= 0 {
		return Result{}, fmt.Errorf("job %d was never handled, though %d jobs were: some were handled twice", i, cfg.Jobs)
	}
	if r.cpuErr != nil {
		return Result{}, fmt.Errorf("measure CPU time: %w", r.cpuErr)
	}
	startOff := r.start.Sub(r.base)
	total := time.Duration(r.last) - startOff
	publish := r.published.Sub(r.start)
	consume := time.Duration(r.last - (r.first.Load() - 1))
	slices.Sort(r.latency)
	n := float64(cfg.Jobs)
	return Result{
		Impl:             impl,
		Mode:             ModeJobs,
		QueueType:        cfg.QueueType,
		Jobs:             cfg.Jobs,
		Seconds:          total.Seconds(),
		JobsPerSec:       rate(n, total),
		PublishPerSec:    rate(n, publish),
		ConsumePerSec:    rate(n, consume),
		CPUSecondsPer10k: (r.cpuStop - r.cpuStart + r.workerCPU).Seconds() / n * 10_000,
		AllocsPerJob:     float64(r.memStop.Mallocs-r.memStart.Mallocs+r.workerMallocs) / n,
		BytesPerJob:      float64(r.memStop.TotalAlloc-r.memStart.TotalAlloc+r.workerBytes) / n,
		P50:              time.Duration(percentile(r.latency, 0.50)),
		P99:              time.Duration(percentile(r.latency, 0.99)),
	}, nil
}

// rate is n per d, with a floor of one microsecond on d so that a
// single-job run reports a finite number.
func rate(n float64, d time.Duration) float64 {
	return n / max(d, time.Microsecond).Seconds()
}

// percentile returns the nearest-rank p-th percentile of sorted values.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
