package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// TestMain lets the test binary serve as a worker process of a run with
// Config.Workers: the run starts its own executable, this binary, with
// WorkerEnv set.
func TestMain(m *testing.M) {
	if IsWorker() {
		if err := ServeWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(brokertest.MainWithLeakCheck(m))
}

// checkSane checks what any successful run of n jobs must satisfy, with no
// timing thresholds.
func checkSane(t *testing.T, res Result, impl, queueType string, n int) {
	t.Helper()
	if res.Impl != impl || res.QueueType != queueType || res.Jobs != n {
		t.Errorf("result is for %s on %s with %d jobs, want %s on %s with %d", res.Impl, res.QueueType, res.Jobs, impl, queueType, n)
	}
	if res.Seconds <= 0 || res.JobsPerSec <= 0 || res.PublishPerSec <= 0 || res.ConsumePerSec <= 0 {
		t.Errorf("non-positive time or rate: %+v", res)
	}
	if res.CPUSecondsPer10k <= 0 {
		t.Errorf("CPU per 10k jobs = %v, want > 0", res.CPUSecondsPer10k)
	}
	if res.PeakRSSBytes <= 0 {
		t.Errorf("peak RSS = %d, want > 0", res.PeakRSSBytes)
	}
	if res.P50 <= 0 || res.P50 > res.P99 {
		t.Errorf("p50 %v, p99 %v: want 0 < p50 <= p99", res.P50, res.P99)
	}
}

func TestRunBaselines(t *testing.T) {
	for _, impl := range Baselines(ModeJobs) {
		for _, qt := range []string{Classic, Quorum} {
			t.Run(impl+"/"+qt, func(t *testing.T) {
				const n = 300
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				res, err := Run(ctx, impl, Config{URL: brokertest.URL(t), Jobs: n, QueueType: qt, Concurrency: 4, Prefetch: 8})
				if err != nil {
					t.Fatal(err)
				}
				checkSane(t, res, impl, qt, n)
			})
		}
	}
}

// TestRunsScale runs every jobs implementation over several queues,
// consumed in this process and by worker processes: every job handled
// once, or the run fails.
func TestRunsScale(t *testing.T) {
	for _, impl := range append(Baselines(ModeJobs), ImplWarren) {
		for _, c := range []struct {
			name            string
			queues, workers int
		}{
			{"3 queues", 3, 0},
			{"3 queues, 2 workers", 3, 2},
			{"1 queue, 1 worker", 1, 1},
		} {
			t.Run(impl+"/"+c.name, func(t *testing.T) {
				const n = 2000
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				res, err := Run(ctx, impl, Config{URL: brokertest.URL(t), Jobs: n, Queues: c.queues, Workers: c.workers, Concurrency: 4, Prefetch: 16})
				if err != nil {
					t.Fatal(err)
				}
				checkSane(t, res, impl, Classic, n)
				t.Logf("%.0f jobs/s, %.3f CPU s/10k, %.1f allocs/job, peak RSS %d, p99 %v", res.JobsPerSec, res.CPUSecondsPer10k, res.AllocsPerJob, res.PeakRSSBytes, res.P99)
				if c.workers > 0 && (res.PeakRSSLifetime || res.AllocsPerJob <= 0) {
					t.Errorf("with workers: peak RSS of the process's life %v, allocs per job %v", res.PeakRSSLifetime, res.AllocsPerJob)
				}
			})
		}
	}
}

// TestWorkerFailureIsReported: a worker that cannot start says why, and
// the run fails with it.
func TestWorkerFailureIsReported(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{URL: brokertest.URL(t), Jobs: 10, Workers: 2}.WithDefaults()
	_, err := startWorkers(ctx, cfg, workerSpec{Impl: "stream", Name: "bench.none"}, newRecorder(cfg))
	if err == nil || !strings.Contains(err.Error(), `worker 0: bench: worker of stream: no jobs implementation "stream"`) {
		t.Errorf("startWorkers = %v, want the worker's own error", err)
	}
}

// TestRecorderMerge: what the workers report adds up, and a job handled
// twice, by one worker or two, fails the run.
func TestRecorderMerge(t *testing.T) {
	cfg := Config{Jobs: 4, PayloadBytes: DefaultPayloadBytes}
	now := time.Now().UnixNano()
	final := func(seqs ...int) *workerFinal {
		f := &workerFinal{Seqs: seqs, FirstNanos: now, LastNanos: now + int64(len(seqs)), Mallocs: 10, Bytes: 100}
		for range seqs {
			f.LatencyNanos = append(f.LatencyNanos, 1000)
		}
		return f
	}
	t.Run("once each", func(t *testing.T) {
		rec := newRecorder(cfg)
		if err := errors.Join(rec.merge(0, final(0, 2), time.Second, 5<<20), rec.merge(1, final(1, 3), 2*time.Second, 7<<20)); err != nil {
			t.Fatal(err)
		}
		if rec.handled.Load() != 4 || rec.workerCPU != 3*time.Second || rec.workerPeakRSS != 7<<20 || rec.workerMallocs != 20 || rec.workers != 2 {
			t.Errorf("recorder after the merge: handled %d, CPU %v, peak RSS %d, mallocs %d, workers %d",
				rec.handled.Load(), rec.workerCPU, rec.workerPeakRSS, rec.workerMallocs, rec.workers)
		}
	})
	for _, c := range []struct {
		name string
		a, b *workerFinal
		want string
	}{
		{"by two workers", final(0, 1), final(1, 2, 3), "job 1 was handled by two workers"},
		{"by one worker", final(0, 1), &workerFinal{Seqs: []int{2, 3}, LatencyNanos: []int64{1, 1}, Duplicates: 1}, "worker 1 handled 1 job(s) twice"},
		{"foreign", final(0, 1), final(2, 9), "sequence number 9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := newRecorder(cfg)
			err := errors.Join(rec.merge(0, c.a, 0, 0), rec.merge(1, c.b, 0, 0))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("merge = %v, want %q", err, c.want)
			}
		})
	}
	t.Run("lost", func(t *testing.T) {
		rec := newRecorder(cfg)
		rec.Start()
		rec.Published()
		rec.Stop()
		if err := errors.Join(rec.merge(0, final(0), 0, 0), rec.merge(1, final(2, 3), 0, 0)); err != nil {
			t.Fatal(err)
		}
		if _, err := rec.result(ImplWarren, cfg.WithDefaults()); err == nil || !strings.Contains(err.Error(), "3 of 4 jobs handled") {
			t.Errorf("result with a job lost: %v", err)
		}
	})
}

func TestRunRefusesUnknownImpl(t *testing.T) {
	if _, err := Run(context.Background(), ImplBaselineBatched, Config{Mode: ModeRPC}); err == nil || !strings.Contains(err.Error(), "no implementation") {
		t.Errorf("Run of the batched baseline in rpc mode: %v", err)
	}
}

func TestRunWarren(t *testing.T) {
	for _, qt := range []string{Classic, Quorum} {
		t.Run(qt, func(t *testing.T) {
			const n = 300
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := RunWarren(ctx, Config{URL: brokertest.URL(t), Jobs: n, QueueType: qt, Concurrency: 4, Prefetch: 8})
			if err != nil {
				t.Fatal(err)
			}
			checkSane(t, res, ImplWarren, qt, n)
		})
	}
}

// checkSaneCalls checks what any successful rpc run of n calls must
// satisfy, with no timing thresholds.
func checkSaneCalls(t *testing.T, res Result, impl string, callers, n int) {
	t.Helper()
	if res.Impl != impl || res.Mode != ModeRPC || res.QueueType != Classic || res.Callers != callers || res.Calls != n {
		t.Errorf("result is for %s %s on %s with %d callers and %d calls, want %s rpc on classic with %d and %d",
			res.Impl, res.Mode, res.QueueType, res.Callers, res.Calls, impl, callers, n)
	}
	if res.Jobs != 0 || res.JobsPerSec != 0 || res.PublishPerSec != 0 || res.ConsumePerSec != 0 {
		t.Errorf("an rpc result has jobs measures: %+v", res)
	}
	if res.Seconds <= 0 || res.CallsPerSec <= 0 {
		t.Errorf("non-positive time or rate: %+v", res)
	}
	if res.CPUSecondsPer10k <= 0 || res.AllocsPerJob <= 0 || res.BytesPerJob <= 0 {
		t.Errorf("CPU per 10k calls %v, allocs per call %v, bytes per call %v: want all > 0", res.CPUSecondsPer10k, res.AllocsPerJob, res.BytesPerJob)
	}
	if res.PeakRSSBytes <= 0 {
		t.Errorf("peak RSS = %d, want > 0", res.PeakRSSBytes)
	}
	if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > time.Duration(res.Seconds*float64(time.Second)) {
		t.Errorf("p50 %v, p99 %v, run %vs: want 0 < p50 <= p99 <= the run", res.P50, res.P99, res.Seconds)
	}
}

func TestRunsRPC(t *testing.T) {
	type impl struct {
		name string
		run  func(context.Context, Config) (Result, error)
	}
	run := func(name string) impl {
		return impl{name, func(ctx context.Context, cfg Config) (Result, error) { return Run(ctx, name, cfg) }}
	}
	baseline, queue, warren := run(ImplBaseline), run(ImplBaselineQueue), run(ImplWarren)
	const n = 200
	cases := []struct {
		name string
		impl impl
		cfg  Config
	}{
		{"baseline/1", baseline, Config{Callers: 1}},
		{"baseline/4", baseline, Config{Callers: 4}},
		{"warren/1", warren, Config{Callers: 1}},
		{"warren/4", warren, Config{Callers: 4}},
		{"queue/1", queue, Config{Callers: 1}},
		{"queue/4", queue, Config{Callers: 4}},
		{"warren/direct-reply-to", warren, Config{Callers: 4, DirectReplyTo: true}},
		// The diagnostics: persistent requests, warren's own wire.
		{"baseline/durable", baseline, Config{Callers: 4, BaselineDurable: true}},
		{"queue/durable", queue, Config{Callers: 4, BaselineDurable: true}},
		{"warren/durable", warren, Config{Callers: 4, DurableRequests: true}},
		// The baseline sending warren's request properties: answered by
		// the message id, every call paired with its own reply.
		{"baseline/warren-wire", baseline, Config{Callers: 4, BaselineWire: WireWarren}},
		{"baseline/props-wire", baseline, Config{Callers: 4, BaselineWire: WireProps}},
		{"baseline/deadline-wire", baseline, Config{Callers: 4, BaselineWire: WireDeadline}},
		{"queue/warren-wire", queue, Config{Callers: 4, BaselineWire: WireWarren}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := c.cfg
			cfg.URL, cfg.Mode, cfg.Calls, cfg.Concurrency, cfg.Prefetch = brokertest.URL(t), ModeRPC, n, 4, 8
			res, err := c.impl.run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkSaneCalls(t, res, c.impl.name, cfg.Callers, n)
		})
	}
}

func TestDeleteEntitiesSparesSharedOnes(t *testing.T) {
	for _, name := range []string{"warren.dead-letter", "amq.direct", ""} {
		if err := deleteEntities(brokertest.URL(t), nil, []string{name}); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("deleteEntities(%q) = %v, want a refusal", name, err)
		}
	}
}

func TestRunsGiveUpWithCtx(t *testing.T) {
	cases := []struct{ impl, mode string }{
		{ImplBaseline, ModeJobs},
		{ImplBaselineBatched, ModeJobs},
		{ImplWarren, ModeJobs},
		{ImplBaseline, ModeRPC},
		{ImplWarren, ModeRPC},
	}
	for _, c := range cases {
		t.Run(c.impl+"/"+c.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := Run(ctx, c.impl, Config{URL: brokertest.URL(t), Mode: c.mode, Jobs: 5_000_000, Calls: 5_000_000, Callers: 4})
			if err == nil {
				t.Fatal("a run of 5M jobs or calls finished within 300ms")
			}
			if !strings.Contains(err.Error(), c.impl+" on a classic queue") {
				t.Errorf("error %q does not say which run failed", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %q does not wrap context.DeadlineExceeded", err)
			}
		})
	}
}

func TestMeasureChecksTheMode(t *testing.T) {
	never := func(context.Context, Config, *Recorder) error { panic("ran") }
	if _, err := Measure(context.Background(), ImplWarren, Config{Mode: ModeRPC}, never); err == nil || !strings.Contains(err.Error(), "MeasureCalls") {
		t.Errorf("Measure of the rpc workload: %v, want a pointer to MeasureCalls", err)
	}
	neverCalls := func(context.Context, Config, *CallRecorder) error { panic("ran") }
	if _, err := MeasureCalls(context.Background(), ImplWarren, Config{}, neverCalls); err == nil || !strings.Contains(err.Error(), "use Measure") {
		t.Errorf("MeasureCalls of the jobs workload: %v, want a pointer to Measure", err)
	}
}

// TestCallRecorder drives the rpc harness with fake calls, no broker.
func TestCallRecorder(t *testing.T) {
	echo := func(_ context.Context, p Payload) (Answer, error) { return Answer{Seq: p.Seq}, nil }
	cases := []struct {
		name    string
		callers int
		call    CallFunc
		want    string // substring of the error; empty: success
	}{
		{"sequential", 1, echo, ""},
		{"concurrent", 8, echo, ""},
		{"wrong answer", 4, func(_ context.Context, p Payload) (Answer, error) {
			if p.Seq == 17 {
				return Answer{Seq: 18}, nil
			}
			return Answer{Seq: p.Seq}, nil
		}, "call 17 got the answer to call 18"},
		{"failed call", 4, func(_ context.Context, p Payload) (Answer, error) {
			if p.Seq == 30 {
				return Answer{}, errors.New("boom")
			}
			return Answer{Seq: p.Seq}, nil
		}, "call 30: boom"},
		{"failed warm-up", 1, func(_ context.Context, p Payload) (Answer, error) {
			if p.Seq < 0 {
				return Answer{}, errors.New("no channel")
			}
			return Answer{Seq: p.Seq}, nil
		}, "the warm-up call -1: no channel"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const n = 100
			var mu sync.Mutex
			seen := map[int]int{}
			run := func(ctx context.Context, cfg Config, rec *CallRecorder) error {
				return rec.Calls(ctx, func(ctx context.Context, p Payload) (Answer, error) {
					if len(p.Data) == 0 || p.SentAt == 0 {
						t.Errorf("payload %d has no filler or no timestamp", p.Seq)
					}
					mu.Lock()
					seen[p.Seq]++
					mu.Unlock()
					return c.call(ctx, p)
				})
			}
			res, err := MeasureCalls(context.Background(), ImplWarren, Config{Mode: ModeRPC, Calls: n, Callers: c.callers}, run)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("MeasureCalls: %v, want an error with %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != n+1 || seen[-1] != 1 {
				t.Errorf("%d distinct calls, warm-up made %d times; want %d and once", len(seen), seen[-1], n+1)
			}
			for seq, k := range seen {
				if k != 1 {
					t.Errorf("call %d made %d times", seq, k)
				}
			}
			if res.Mode != ModeRPC || res.Calls != n || res.Callers != c.callers || res.CallsPerSec <= 0 || res.P50 <= 0 || res.P50 > res.P99 {
				t.Errorf("result %+v", res)
			}
		})
	}
	t.Run("no calls", func(t *testing.T) {
		lazy := func(context.Context, Config, *CallRecorder) error { return nil }
		if _, err := MeasureCalls(context.Background(), ImplWarren, Config{Mode: ModeRPC}, lazy); err == nil || !strings.Contains(err.Error(), "did not call Calls") {
			t.Errorf("a runner that made no calls: %v", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		{"defaults", Config{}, nil},
		{"quorum", Config{QueueType: Quorum, Jobs: 1, Prefetch: MaxPrefetch}, nil},
		{"rpc", Config{Mode: ModeRPC, Calls: 1, Callers: MaxConcurrency}, nil},
		{"everything wrong", Config{Mode: "stream", Jobs: -1, Calls: -3, Callers: -4, PayloadBytes: 10, Prefetch: 70000, Concurrency: -2, QueueType: "stream"},
			[]string{`mode "stream"`, "jobs -1", "calls -3", "callers -4", "payload bytes 10", "prefetch 70000", "concurrency -2", `queue type "stream"`}},
		{"too many calls", Config{Mode: ModeRPC, Calls: MaxJobs + 1, Callers: MaxConcurrency + 1}, []string{"calls", "callers"}},
		{"too many jobs", Config{Jobs: MaxJobs + 1}, []string{"jobs"}},
		{"warren's wire", Config{Mode: ModeRPC, BaselineWire: WireWarren}, nil},
		{"part of warren's wire", Config{Mode: ModeRPC, BaselineWire: WireDeadline}, nil},
		{"request wire of jobs", Config{BaselineWire: WireWarren}, []string{`baseline wire "warren"`}},
		{"job properties", Config{BaselineWire: WireProps}, nil},
		{"unknown wire", Config{Mode: ModeRPC, BaselineWire: "amqp"}, []string{`baseline wire "amqp"`}},
		{"direct reply-to", Config{Mode: ModeRPC, DirectReplyTo: true}, nil},
		{"direct reply-to of jobs", Config{DirectReplyTo: true}, []string{"direct reply-to"}},
		{"durable", Config{Mode: ModeRPC, BaselineDurable: true, DurableRequests: true}, nil},
		{"durable of jobs", Config{BaselineDurable: true, DurableRequests: true}, []string{"baseline durable", "durable requests"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	d := Config{}.WithDefaults()
	if d.Mode != ModeJobs || d.Calls != DefaultCalls || d.Callers != DefaultCallers {
		t.Errorf("WithDefaults() = %+v", d)
	}
	if d.Jobs != DefaultJobs || d.PayloadBytes != DefaultPayloadBytes || d.Prefetch != DefaultPrefetch ||
		d.Concurrency != DefaultConcurrency || d.QueueType != Classic || d.URL != DefaultURL {
		t.Errorf("WithDefaults() = %+v", d)
	}
}

func TestPayloadSize(t *testing.T) {
	for _, size := range []int{MinPayloadBytes, 64, 200, 300, 70_000} {
		for _, jobs := range []int{1, 50_000} {
			data := filler(size, jobs)
			got := encodedSize(Payload{Seq: jobs - 1, SentAt: time.Now().UnixNano(), Data: data})
			if got > size || got < size-4 {
				t.Errorf("filler(%d, %d): payload of %d bytes", size, jobs, got)
			}
		}
	}
}

func TestStampedPayloadDecodesAsPayload(t *testing.T) {
	before := time.Now().UnixNano()
	b, err := msgpack.Marshal(stampedPayload{seq: 42, data: "xyz"})
	if err != nil {
		t.Fatal(err)
	}
	var p Payload
	if err := msgpack.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.Seq != 42 || p.Data != "xyz" || p.SentAt < before || p.SentAt > time.Now().UnixNano() {
		t.Fatalf("decoded %+v", p)
	}
}

func TestPercentile(t *testing.T) {
	v := make([]int64, 100)
	for i := range v {
		v[i] = int64(i + 1)
	}
	cases := []struct {
		values []int64
		p      float64
		want   int64
	}{
		{v, 0.50, 50},
		{v, 0.99, 99},
		{v, 1, 100},
		{[]int64{7}, 0.99, 7},
		{[]int64{1, 2}, 0.5, 1},
		{nil, 0.5, 0},
	}
	for _, c := range cases {
		if got := percentile(c.values, c.p); got != c.want {
			t.Errorf("percentile(%d values, %v) = %d, want %d", len(c.values), c.p, got, c.want)
		}
	}
}

func TestRecorderFailsOnForeignSeq(t *testing.T) {
	rec := newRecorder(Config{Jobs: 2, PayloadBytes: DefaultPayloadBytes})
	rec.Handled(0, time.Now().UnixNano())
	rec.Handled(5, time.Now().UnixNano())
	if err := rec.Wait(context.Background()); err == nil || !strings.Contains(err.Error(), "sequence number 5") {
		t.Fatalf("Wait() = %v", err)
	}
}

func TestReport(t *testing.T) {
	run := func(impl, qt string, round int, jps, cpu float64, rss int64) Result {
		return Result{Impl: impl, Mode: ModeJobs, QueueType: qt, Round: round, Jobs: 1000, Seconds: 1000 / jps, JobsPerSec: jps,
			PublishPerSec: jps, ConsumePerSec: jps, CPUSecondsPer10k: cpu, PeakRSSBytes: rss,
			P50: 3 * time.Millisecond, P99: 12345 * time.Microsecond}
	}
	const mib = 1 << 20
	results := []Result{
		run(ImplBaseline, Classic, 1, 9000, 0.50, 30*mib), run(ImplBaselineBatched, Classic, 1, 10000, 0.40, 30*mib), run(ImplWarren, Classic, 1, 10200, 0.42, 15*mib),
		run(ImplBaselineBatched, Classic, 2, 10400, 0.42, 30*mib), run(ImplWarren, Classic, 2, 9000, 0.50, 25*mib), run(ImplBaseline, Classic, 2, 9000, 0.50, 30*mib),
		run(ImplWarren, Classic, 3, 10100, 0.41, 16*mib), run(ImplBaseline, Classic, 3, 9000, 0.50, 30*mib), run(ImplBaselineBatched, Classic, 3, 9000, 0.38, 30*mib),
		// Quorum: faster than the per-message baseline, slower than the
		// batched one, and too big.
		run(ImplBaseline, Quorum, 1, 5000, 0.80, 30*mib), run(ImplBaselineBatched, Quorum, 1, 8000, 0.50, 30*mib), run(ImplWarren, Quorum, 1, 6000, 0.70, 21*mib),
	}
	r := NewReport(Config{URL: "amqp://guest:s3cret@127.0.0.1:5672/", Jobs: 1000}, []string{Classic, Quorum}, 3, results)
	if len(r.Medians) != 6 {
		t.Fatalf("%d medians, want 6", len(r.Medians))
	}
	m := r.Medians[1] // the batched baseline on classic
	if m.Impl != ImplBaselineBatched || m.Runs != 3 || m.JobsPerSec != 10000 || m.CPUSecondsPer10k != 0.40 {
		t.Errorf("median = %+v", m)
	}
	if got := len(r.Ratios); got != 4 {
		t.Fatalf("%d ratios, want 4 (2 baselines x 2 queue types): %+v", got, r.Ratios)
	}
	cases := []struct {
		baseline, queueType string
		judged, ok          bool
		jobsPerSec, cpu     float64
		jpsOK, cpuOK, rssOK bool
	}{
		// Warren's medians on classic: 10100 jobs/s, 0.42 s/10k, 16 MiB.
		{ImplBaseline, Classic, false, true, 10100.0 / 9000, 0.42 / 0.50, false, false, false},
		{ImplBaselineBatched, Classic, true, true, 1.01, 1.05, true, true, true},
		{ImplBaseline, Quorum, false, true, 1.2, 0.70 / 0.80, false, false, false},
		{ImplBaselineBatched, Quorum, true, false, 0.75, 1.4, false, false, false},
	}
	for i, c := range cases {
		ra := r.Ratios[i]
		if ra.Baseline != c.baseline || ra.QueueType != c.queueType || ra.Judged != c.judged || ra.OK() != c.ok ||
			math.Abs(ra.JobsPerSec-c.jobsPerSec) > 1e-9 || math.Abs(ra.CPUPerJob-c.cpu) > 1e-9 ||
			ra.JobsPerSecOK != c.jpsOK || ra.CPUPerJobOK != c.cpuOK || ra.PeakRSSOK != c.rssOK || ra.P99 != 1 {
			t.Errorf("ratio %d = %+v, want %+v", i, ra, c)
		}
	}
	if ra := r.Ratios[1]; ra.PeakRSSBytes != 16*mib {
		t.Errorf("warren's peak RSS in the ratio = %d, want its median, 16 MiB", ra.PeakRSSBytes)
	}

	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"median/3", "warren/amqp091-go-batched", "warren/amqp091-go ", "1.010x ok", "1.050x ok", "16.0 MiB ok",
		"0.750x MISS", "21.0 MiB MISS", "1.122x  ", "targets MISSED on quorum", "12.3ms", "the jobs/s of amqp091-go-batched"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if n := strings.Count(table.String(), " ok ") + strings.Count(table.String(), " MISS "); n != 6 {
		t.Errorf("%d verdicts in the table, want 6: the judged ratios' only\n%s", n, table.String())
	}

	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cret") {
		t.Error("the JSON report shows the password")
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["schema"] != "warren.bench/v2" {
		t.Errorf("schema %v", back["schema"])
	}
	for _, k := range []string{"date", "config", "results", "medians", "ratios"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	ratios := back["ratios"].([]any)
	judged, plain := ratios[1].(map[string]any), ratios[0].(map[string]any)
	for _, k := range []string{"mode", "queue_type", "baseline", "judged", "jobs_per_sec", "cpu_per_job", "p99", "peak_rss_bytes",
		"jobs_per_sec_ok", "cpu_per_job_ok", "peak_rss_ok"} {
		if _, ok := judged[k]; !ok {
			t.Errorf("a judged jobs ratio lacks %q: %v", k, judged)
		}
	}
	if judged["baseline"] != ImplBaselineBatched || judged["judged"] != true || plain["judged"] != false {
		t.Errorf("ratios %v and %v", plain, judged)
	}
	for _, k := range []string{"callers", "calls_per_sec", "calls_per_sec_ok", "p99_ok"} {
		if _, ok := judged[k]; ok {
			t.Errorf("a jobs ratio has %q: %v", k, judged)
		}
	}
	for _, k := range []string{"jobs_per_sec_ok", "cpu_per_job_ok", "peak_rss_ok"} {
		if _, ok := plain[k]; ok {
			t.Errorf("a ratio not judged has the verdict %q: %v", k, plain)
		}
	}
	if cfg := back["config"].(map[string]any); cfg["mode"] != ModeJobs || cfg["jobs"] != 1000.0 || cfg["calls"] != nil {
		t.Errorf("config %v", cfg)
	}
}

func TestReportRPC(t *testing.T) {
	run := func(impl string, callers, round int, cps, cpu float64, p99 time.Duration) Result {
		return Result{Impl: impl, Mode: ModeRPC, QueueType: Classic, Callers: callers, Round: round, Calls: 500,
			Seconds: 500 / cps, CallsPerSec: cps, CPUSecondsPer10k: cpu, AllocsPerJob: 150, PeakRSSBytes: 16 << 20,
			P50: 400 * time.Microsecond, P99: p99}
	}
	const ms = time.Millisecond
	results := []Result{
		// One caller: direct reply-to is the better baseline, and warren
		// beats it on both counts.
		run(ImplBaseline, 1, 1, 2000, 2.0, 2*ms), run(ImplBaselineQueue, 1, 1, 1900, 2.1, 2*ms), run(ImplWarren, 1, 1, 2100, 2.2, 1*ms),
		run(ImplBaselineQueue, 1, 2, 1900, 2.1, 2*ms), run(ImplWarren, 1, 2, 2000, 2.3, 3*ms), run(ImplBaseline, 1, 2, 2000, 2.0, 2*ms),
		// 16 callers: the reply queue is the better baseline; warren
		// beats direct reply-to, not it, and its p99 is longer.
		run(ImplBaseline, 16, 1, 8000, 0.8, 4*ms), run(ImplBaselineQueue, 16, 1, 10000, 0.8, 2*ms), run(ImplWarren, 16, 1, 9000, 1.0, 3*ms),
		run(ImplBaselineQueue, 16, 2, 10000, 0.8, 2*ms), run(ImplWarren, 16, 2, 9000, 1.0, 3*ms), run(ImplBaseline, 16, 2, 8000, 0.8, 4*ms),
	}
	r := NewReport(Config{Mode: ModeRPC, Calls: 500}, []string{Classic}, 2, results)
	if len(r.Medians) != 6 {
		t.Fatalf("%d medians, want 6 (3 implementations x 2 numbers of callers)", len(r.Medians))
	}
	if m := r.Medians[2]; m.Impl != ImplWarren || m.Callers != 1 || m.Runs != 2 || m.CallsPerSec != 2050 || m.Mode != ModeRPC || m.P99 != 2*ms {
		t.Errorf("median = %+v", m)
	}
	if len(r.Ratios) != 4 {
		t.Fatalf("ratios = %+v", r.Ratios)
	}
	cases := []struct {
		baseline      string
		callers       int
		judged, ok    bool
		cps, cpu, p99 float64
		cpsOK, p99OK  bool
	}{
		{ImplBaseline, 1, true, true, 1.025, 1.125, 1, true, true},
		{ImplBaselineQueue, 1, false, true, 2050.0 / 1900, 2.25 / 2.1, 1, false, false},
		{ImplBaseline, 16, false, true, 1.125, 1.25, 0.75, false, false},
		{ImplBaselineQueue, 16, true, false, 0.9, 1.25, 1.5, false, false},
	}
	for i, c := range cases {
		ra := r.Ratios[i]
		if ra.Baseline != c.baseline || ra.Callers != c.callers || ra.Judged != c.judged || ra.OK() != c.ok ||
			math.Abs(ra.CallsPerSec-c.cps) > 1e-9 || math.Abs(ra.CPUPerJob-c.cpu) > 1e-9 || math.Abs(ra.P99-c.p99) > 1e-9 ||
			ra.CallsPerSecOK != c.cpsOK || ra.P99OK != c.p99OK {
			t.Errorf("ratio %d = %+v, want %+v", i, ra, c)
		}
	}
	if r.Config.Mode != ModeRPC || r.Config.Calls != 500 || fmt.Sprint(r.Config.Callers) != "[1 16]" || r.Config.Jobs != 0 {
		t.Errorf("config = %+v", r.Config)
	}

	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"calls/s", "allocs/call", "callers", "median/2", "warren/amqp091-go-queue", "1.025x ok", "1.000x ok",
		"0.900x MISS", "1.500x MISS", "1.250x", "targets MISSED on classic with 16 callers", "the better baseline's calls/s"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if strings.Contains(table.String(), "jobs/s") {
		t.Errorf("the rpc table shows jobs/s:\n%s", table.String())
	}

	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Config  map[string]any   `json:"config"`
		Results []map[string]any `json:"results"`
		Ratios  []map[string]any `json:"ratios"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"mode", "calls", "callers"} {
		if _, ok := back.Config[k]; !ok {
			t.Errorf("config lacks %q: %v", k, back.Config)
		}
	}
	for _, k := range []string{"jobs", "publish_window", "queues"} {
		if _, ok := back.Config[k]; ok {
			t.Errorf("rpc config has %q: %v", k, back.Config)
		}
	}
	res := back.Results[0]
	for _, k := range []string{"mode", "callers", "calls", "calls_per_sec", "cpu_seconds_per_10k", "allocs_per_job", "p50_ns", "p99_ns"} {
		if _, ok := res[k]; !ok {
			t.Errorf("rpc result lacks %q: %v", k, res)
		}
	}
	for _, k := range []string{"jobs", "jobs_per_sec", "publish_per_sec", "consume_per_sec"} {
		if _, ok := res[k]; ok {
			t.Errorf("rpc result has %q: %v", k, res)
		}
	}
	ratio := back.Ratios[3]
	if ratio["mode"] != ModeRPC || ratio["callers"] != 16.0 || ratio["baseline"] != ImplBaselineQueue || ratio["judged"] != true ||
		ratio["calls_per_sec_ok"] != false || ratio["p99_ok"] != false || ratio["cpu_per_job"] != 1.25 {
		t.Errorf("rpc ratio %v", ratio)
	}
	for _, k := range []string{"jobs_per_sec", "jobs_per_sec_ok", "cpu_per_job_ok", "peak_rss_ok", "peak_rss_bytes"} {
		if _, ok := ratio[k]; ok {
			t.Errorf("rpc ratio has %q: %v", k, ratio)
		}
	}
	if _, ok := back.Ratios[2]["calls_per_sec_ok"]; ok {
		t.Errorf("a ratio not judged has a verdict: %v", back.Ratios[2])
	}
}

// TestReportDiagnostics: with the baselines sending other requests than
// the judged ones, the table says the verdicts are a diagnostic.
func TestReportDiagnostics(t *testing.T) {
	results := []Result{
		{Impl: ImplBaseline, Mode: ModeRPC, QueueType: Classic, Callers: 1, Calls: 10, CallsPerSec: 100, CPUSecondsPer10k: 1, P99: time.Millisecond},
		{Impl: ImplWarren, Mode: ModeRPC, QueueType: Classic, Callers: 1, Calls: 10, CallsPerSec: 100, CPUSecondsPer10k: 1, P99: time.Millisecond},
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Mode: ModeRPC, BaselineDurable: true}, "the baselines sent persistent requests (--baseline-durable): a diagnostic"},
		{Config{Mode: ModeRPC, BaselineWire: WireWarren}, "(--baseline-wire warren): a diagnostic"},
		{Config{Mode: ModeRPC}, "targets: warren >= 1.00x the better baseline's calls/s and <= 1.00x its p99, with each number of callers: targets hold"},
	} {
		var table bytes.Buffer
		if err := NewReport(c.cfg, []string{Classic}, 1, results).WriteTable(&table); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(table.String(), c.want) {
			t.Errorf("table lacks %q:\n%s", c.want, table.String())
		}
	}
}

// TestReportDiagnosticsOfJobs: jobs baselines carrying warren's job
// properties make the verdicts a diagnostic too.
func TestReportDiagnosticsOfJobs(t *testing.T) {
	results := []Result{
		{Impl: ImplBaselineBatched, Mode: ModeJobs, QueueType: Classic, Jobs: 10, JobsPerSec: 100, CPUSecondsPer10k: 1, PeakAnonBytes: 1 << 20, P99: time.Millisecond},
		{Impl: ImplWarren, Mode: ModeJobs, QueueType: Classic, Jobs: 10, JobsPerSec: 100, CPUSecondsPer10k: 1, PeakAnonBytes: 1 << 20, P99: time.Millisecond},
	}
	for _, c := range []struct {
		cfg      Config
		want     string
		jsonWire string
	}{
		{Config{BaselineWire: WireProps}, "(--baseline-wire props), so these ratios compare the code alone: a diagnostic", WireProps},
		{Config{}, "targets: warren >= 1.00x the jobs/s of amqp091-go-batched", ""},
	} {
		rep := NewReport(c.cfg, []string{Classic}, 1, results)
		var table bytes.Buffer
		if err := rep.WriteTable(&table); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(table.String(), c.want) {
			t.Errorf("table lacks %q:\n%s", c.want, table.String())
		}
		if rep.Config.BaselineWire != c.jsonWire {
			t.Errorf("the report's baseline wire is %q, want %q", rep.Config.BaselineWire, c.jsonWire)
		}
	}
}

// TestRPCClientFollowsTheConfig: the baseline client's requests go where
// and as the configuration says: reply_to its own exclusive queue when
// asked for one, and each wire adding to the one before.
func TestRPCClientFollowsTheConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		wire                       string
		replyQueue, durable        bool
		props, deadline, mandatory bool
	}{
		{WireMinimal, false, false, false, false, false},
		{WireProps, true, true, true, false, false},
		{WireDeadline, false, false, true, true, false},
		{WireWarren, true, true, true, true, true},
	} {
		conn := brokertest.Conn(t)
		rc, err := newRPCClient(conn, c.wire, c.replyQueue, c.durable)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.HasPrefix(rc.replyTo, broker.ServerNamedPrefix); got != c.replyQueue || !c.replyQueue && rc.replyTo != directReplyTo {
			t.Errorf("wire %s, reply queue %v: reply_to %q", c.wire, c.replyQueue, rc.replyTo)
		}
		if rc.props != c.props || rc.deadline != c.deadline || rc.mandatory != c.mandatory {
			t.Errorf("wire %s: props, deadline, mandatory = %v, %v, %v; want %v, %v, %v",
				c.wire, rc.props, rc.deadline, rc.mandatory, c.props, c.deadline, c.mandatory)
		}
		if want := map[bool]uint8{false: amqp.Transient, true: amqp.Persistent}[c.durable]; rc.mode != want {
			t.Errorf("durable %v: delivery mode %d, want %d", c.durable, rc.mode, want)
		}
		if err := rc.close(); err != nil {
			t.Error(err)
		}
	}
}

// TestReportJudgesAllocatedMemory: where the anonymous RSS is reported,
// it is what the memory target judges, not the whole RSS, which counts the
// executable's pages too.
func TestReportJudgesAllocatedMemory(t *testing.T) {
	const mib = 1 << 20
	run := func(impl string, rss, anon int64) Result {
		return Result{Impl: impl, Mode: ModeJobs, QueueType: Classic, Round: 1, Jobs: 1000, Seconds: 0.1, JobsPerSec: 10000,
			PublishPerSec: 10000, ConsumePerSec: 10000, CPUSecondsPer10k: 0.4, PeakRSSBytes: rss, PeakAnonBytes: anon,
			P50: time.Millisecond, P99: 2 * time.Millisecond}
	}
	for _, c := range []struct {
		anon int64
		ok   bool
	}{{8 * mib, true}, {21 * mib, false}} {
		r := NewReport(Config{Jobs: 1000}, []string{Classic}, 1, []Result{
			run(ImplBaselineBatched, 21*mib, 7*mib), run(ImplWarren, 22*mib, c.anon)})
		if len(r.Ratios) != 1 {
			t.Fatalf("%d ratios, want 1", len(r.Ratios))
		}
		ra := r.Ratios[0]
		if ra.PeakRSSOK != c.ok || ra.PeakAnonBytes != c.anon || ra.PeakRSSBytes != 22*mib {
			t.Errorf("anonymous peak %d: ratio %+v, want the verdict %v", c.anon, ra, c.ok)
		}
		var table bytes.Buffer
		if err := r.WriteTable(&table); err != nil {
			t.Fatal(err)
		}
		want := formatBytes(c.anon) + map[bool]string{true: " ok", false: " MISS"}[c.ok]
		if !strings.Contains(table.String(), want) || !strings.Contains(table.String(), "peak anon") {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestAnonSampler sees a peak of allocated memory that is gone by the
// time it finishes.
func TestAnonSampler(t *testing.T) {
	if _, err := procStatus("RssAnon:"); err != nil {
		t.Skipf("the kernel does not report the anonymous RSS here: %v", err)
	}
	s := startAnonSampler()
	const size = 64 << 20
	b := make([]byte, size)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1 // resident
	}
	// The loop reads every anonInterval; give it time to, however busy
	// the machine.
	for deadline := time.Now().Add(10 * time.Second); s.peak.Load() < size && time.Now().Before(deadline); {
		time.Sleep(anonInterval)
	}
	runtime.KeepAlive(b)
	b = nil
	debug.FreeOSMemory()
	if peak := s.finish(); peak < size {
		t.Errorf("peak anonymous RSS %d, want at least the %d bytes made resident", peak, size)
	}
}

// TestJobsBaselineWire: the jobs baselines publish minimal jobs by
// default, and with WireProps the properties warren's Publisher sends
// with every job.
func TestJobsBaselineWire(t *testing.T) {
	for _, wire := range jobWires {
		t.Run(wire, func(t *testing.T) {
			const n = 3
			conn := brokertest.Conn(t)
			name := uniqueName("wire-"+wire, Classic)
			queues, keys := queueNames(name, 1), routingKeys(1)
			t.Cleanup(func() {
				if err := deleteEntities(brokertest.URL(t), queues, []string{name}); err != nil {
					t.Error(err)
				}
			})
			if err := declareJobQueues(conn, name, queues, keys, Classic); err != nil {
				t.Fatal(err)
			}
			cfg := Config{Jobs: n, BaselineWire: wire}
			cfg.setDefaults()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := publishAMQP(ctx, conn, cfg, name, keys, newRecorder(cfg)); err != nil {
				t.Fatal(err)
			}
			ch := brokertest.Channel(t)
			ids := map[string]bool{}
			for i := range n {
				d, ok, err := ch.Get(queues[0], true)
				if err != nil || !ok {
					t.Fatalf("job %d: got %v, %v", i, ok, err)
				}
				if d.ContentType != broker.ContentType || d.DeliveryMode != amqp.Persistent {
					t.Errorf("job %d: content type %q, delivery mode %d", i, d.ContentType, d.DeliveryMode)
				}
				got := [...]bool{d.MessageId != "", d.Type != "", d.AppId != "", !d.Timestamp.IsZero()}
				if want := wire == WireProps; got != [...]bool{want, want, want, want} {
					t.Fatalf("wire %s, job %d: message_id %q, type %q, app_id %q, timestamp %v", wire, i, d.MessageId, d.Type, d.AppId, d.Timestamp)
				}
				if wire == WireProps {
					if ids[d.MessageId] || d.Type != keys[0] {
						t.Errorf("job %d: message_id %q (repeated: %v), type %q, want %q", i, d.MessageId, ids[d.MessageId], d.Type, keys[0])
					}
					ids[d.MessageId] = true
				}
			}
		})
	}
}
