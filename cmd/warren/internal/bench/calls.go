package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CallType is the job type of the rpc workload's requests and, in both
// implementations, the routing key they are published with.
const CallType = "bench.call"

// Answer is the result of every call of the rpc workload: the request's
// sequence number, echoed so that each caller checks it got its own reply.
type Answer struct {
	Seq int `msgpack:"seq" json:"seq"`
}

// CallFunc makes one call: it sends p as a request and waits for the reply,
// returning the Answer decoded from it. Config.Callers goroutines call it at
// once. It returns an error wrapping ctx.Err() when ctx ends first.
type CallFunc func(ctx context.Context, p Payload) (Answer, error)

// CallRunner runs the ModeRPC workload of cfg once with one implementation.
// In order, it:
//
//  1. connects with three connections (the server's consumer, the server's
//     replies, the caller), declares a fresh request queue bound to a fresh
//     direct exchange with CallType as the routing key, and starts the
//     server: a consumer with manual acks, prefetch cfg.Prefetch and
//     cfg.Concurrency handlers, each decoding a request's Payload and
//     replying with Answer{Seq: payload.Seq};
//  2. calls rec.Calls once with its CallFunc, which makes and times the
//     calls; meanwhile a failure of the server goes to rec.Fail;
//  3. stops the caller and the server, deletes what it declared and closes
//     its connections.
//
// It returns an error if any step fails or ctx ends.
type CallRunner func(ctx context.Context, cfg Config, rec *CallRecorder) error

// CallRecorder makes the calls of one rpc run and measures them, the same
// way for every implementation. Fail is safe for concurrent use; Calls is
// called once, by the runner's goroutine.
type CallRecorder struct {
	callers int
	filler  string
	latency []int64 // nanoseconds, by Seq; each slot written once, by the caller that made that call
	ran     bool

	failOnce sync.Once
	failed   chan struct{}
	err      error

	start, stop       time.Time
	cpuStart, cpuStop time.Duration
	memStart, memStop runtime.MemStats
	cpuErr            error
}

func newCallRecorder(cfg Config) *CallRecorder {
	return &CallRecorder{
		callers: cfg.Callers,
		filler:  filler(cfg.PayloadBytes, cfg.Calls),
		latency: make([]int64, cfg.Calls),
		failed:  make(chan struct{}),
	}
}

// Fail ends the run with err; the first failure wins. Calls in progress
// are given up.
func (r *CallRecorder) Fail(err error) {
	r.failOnce.Do(func() {
		r.err = err
		close(r.failed)
	})
}

// failure returns the error the run failed with, if it failed.
func (r *CallRecorder) failure() error {
	select {
	case <-r.failed:
		return r.err
	default:
		return nil
	}
}

// Calls makes the run's calls with call and measures them. First, one
// warm-up call (sequence number -1, not measured) lets each implementation
// open what it opens on first use; then Config.Callers goroutines make
// Config.Calls calls, numbered 0 to Calls-1, each taking the next number as
// soon as its last call returned. Each call is timed from just before its
// Payload is built to the return of call, and checked to have got its own
// Answer. The clock, the CPU time and the heap statistics run from the
// first call to the return of the last.
//
// It returns the first failure: of a call, or given to Fail; the calls in
// progress then end with their ctx.
func (r *CallRecorder) Calls(ctx context.Context, call CallFunc) error {
	if r.ran {
		return errors.New("Calls called twice (a bug in the runner)")
	}
	r.ran = true
	// A failure, from a call or the runner's server, gives up the calls in
	// progress. The watcher ends with ctx, cancelled on return.
	ctx, cancel := context.WithCancelCause(ctx)
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-r.failed:
			cancel(r.err)
		case <-ctx.Done():
		}
	}()
	defer func() {
		cancel(nil)
		<-watcherDone
	}()

	one := func(seq int) error {
		t0 := time.Now()
		a, err := call(ctx, Payload{Seq: seq, SentAt: t0.UnixNano(), Data: r.filler})
		d := time.Since(t0)
		switch {
		case err != nil:
			return fmt.Errorf("call %d: %w", seq, err)
		case a.Seq != seq:
			return fmt.Errorf("call %d got the answer to call %d", seq, a.Seq)
		}
		if seq >= 0 {
			r.latency[seq] = max(int64(d), 1) // at least 1, so that 0 means "never made"
		}
		return nil
	}
	if err := one(-1); err != nil {
		r.Fail(fmt.Errorf("the warm-up %w", err))
		return r.failure() // the server's failure, if it came first
	}

	var next atomic.Int64
	var wg sync.WaitGroup
	runtime.ReadMemStats(&r.memStart)
	r.cpuStart, r.cpuErr = cpuTime()
	r.start = time.Now()
	for range r.callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seq := int(next.Add(1) - 1)
				if seq >= len(r.latency) || ctx.Err() != nil {
					return
				}
				if err := one(seq); err != nil {
					r.Fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r.stop = time.Now()
	var err error
	r.cpuStop, err = cpuTime()
	r.cpuErr = errors.Join(r.cpuErr, err)
	runtime.ReadMemStats(&r.memStop)
	return r.failure()
}

// MeasureCalls runs one implementation of the ModeRPC workload and
// measures it, as Measure does the ModeJobs one: it validates cfg (after
// defaults), settles the process and resets its peak RSS, then calls run.
// Runs must not overlap.
func MeasureCalls(ctx context.Context, impl string, cfg Config, run CallRunner) (Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.Mode != ModeRPC {
		return Result{}, fmt.Errorf("bench: MeasureCalls runs the %s workload, not %s: use Measure", ModeRPC, cfg.Mode)
	}
	what := fmt.Sprintf("bench: %s on a %s queue, rpc with %s", impl, cfg.QueueType, plural(cfg.Callers, "caller"))
	rec := newCallRecorder(cfg)
	reset := settle()
	anon := startAnonSampler()
	err := run(ctx, cfg, rec)
	peakAnon := anon.finish()
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", what, err)
	}
	res, err := rec.result(impl, cfg)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", what, err)
	}
	res.PeakRSSBytes, res.PeakRSSLifetime = peakRSS(reset)
	res.PeakAnonBytes = peakAnon
	return res, nil
}

// result computes the run's Result once the runner returned.
func (r *CallRecorder) result(impl string, cfg Config) (Result, error) {
	switch {
	case r.err != nil:
		return Result{}, r.err
	case !r.ran || r.stop.IsZero():
		return Result{}, errors.New("the runner did not call Calls (a bug in the runner)")
	}
	if i := slices.Index(r.latency, 0); i >= 0 {
		return Result{}, fmt.Errorf("call %d was never made (a bug in the harness)", i)
	}
	if r.cpuErr != nil {
		return Result{}, fmt.Errorf("measure CPU time: %w", r.cpuErr)
	}
	total := r.stop.Sub(r.start)
	slices.Sort(r.latency)
	n := float64(cfg.Calls)
	return Result{
		Impl:             impl,
		Mode:             ModeRPC,
		QueueType:        cfg.QueueType,
		Callers:          cfg.Callers,
		Calls:            cfg.Calls,
		Seconds:          total.Seconds(),
		CallsPerSec:      rate(n, total),
		CPUSecondsPer10k: (r.cpuStop - r.cpuStart).Seconds() / n * 10_000,
		AllocsPerJob:     float64(r.memStop.Mallocs-r.memStart.Mallocs) / n,
		BytesPerJob:      float64(r.memStop.TotalAlloc-r.memStart.TotalAlloc) / n,
		P50:              time.Duration(percentile(r.latency, 0.50)),
		P99:              time.Duration(percentile(r.latency, 0.99)),
	}, nil
}

// plural returns "1 caller", "16 callers".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
