package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/internal/brokertest"
)

func TestMain(m *testing.M) { os.Exit(brokertest.MainWithLeakCheck(m)) }

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

func TestRunBaseline(t *testing.T) {
	for _, qt := range []string{Classic, Quorum} {
		t.Run(qt, func(t *testing.T) {
			const n = 300
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := RunBaseline(ctx, Config{URL: brokertest.URL(t), Jobs: n, QueueType: qt})
			if err != nil {
				t.Fatal(err)
			}
			checkSane(t, res, ImplBaseline, qt, n)
		})
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

func TestDeleteEntitiesSparesSharedOnes(t *testing.T) {
	for _, name := range []string{"warren.dead-letter", "amq.direct", ""} {
		if err := deleteEntities(brokertest.URL(t), nil, []string{name}); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("deleteEntities(%q) = %v, want a refusal", name, err)
		}
	}
}

func TestRunsGiveUpWithCtx(t *testing.T) {
	cases := []struct {
		impl string
		run  func(context.Context, Config) (Result, error)
	}{
		{ImplBaseline, RunBaseline},
		{ImplWarren, RunWarren},
	}
	for _, c := range cases {
		t.Run(c.impl, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := c.run(ctx, Config{URL: brokertest.URL(t), Jobs: 5_000_000})
			if err == nil {
				t.Fatal("a run of 5M jobs finished within 300ms")
			}
			if !strings.Contains(err.Error(), c.impl+" on a classic queue") {
				t.Errorf("error %q does not say which run failed", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		{"defaults", Config{}, nil},
		{"quorum", Config{QueueType: Quorum, Jobs: 1, Prefetch: MaxPrefetch}, nil},
		{"everything wrong", Config{Jobs: -1, PayloadBytes: 10, Prefetch: 70000, Concurrency: -2, QueueType: "stream"},
			[]string{"jobs -1", "payload bytes 10", "prefetch 70000", "concurrency -2", `queue type "stream"`}},
		{"too many jobs", Config{Jobs: MaxJobs + 1}, []string{"jobs"}},
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
	run := func(impl, qt string, round int, jps, cpu float64) Result {
		return Result{Impl: impl, QueueType: qt, Round: round, Jobs: 1000, Seconds: 1000 / jps, JobsPerSec: jps,
			PublishPerSec: jps, ConsumePerSec: jps, CPUSecondsPer10k: cpu, PeakRSSBytes: 40 << 20,
			P50: 3 * time.Millisecond, P99: 12345 * time.Microsecond}
	}
	results := []Result{
		run(ImplBaseline, Classic, 1, 10000, 0.40), run(ImplWarren, Classic, 1, 9800, 0.44),
		run(ImplWarren, Classic, 2, 9000, 0.50), run(ImplBaseline, Classic, 2, 10400, 0.42),
		run(ImplWarren, Classic, 3, 9900, 0.45), run(ImplBaseline, Classic, 3, 9000, 0.38),
		run(ImplBaseline, Quorum, 1, 8000, 0.50), run(ImplWarren, Quorum, 1, 6000, 0.70),
	}
	r := NewReport(Config{URL: "amqp://guest:s3cret@127.0.0.1:5672/", Jobs: 1000}, []string{Classic, Quorum}, 3, results)
	if len(r.Medians) != 4 {
		t.Fatalf("%d medians, want 4", len(r.Medians))
	}
	m := r.Medians[0] // the baseline on classic
	if m.Impl != ImplBaseline || m.Runs != 3 || m.JobsPerSec != 10000 || m.CPUSecondsPer10k != 0.40 {
		t.Errorf("median = %+v", m)
	}
	if len(r.Ratios) != 2 {
		t.Fatalf("ratios = %+v", r.Ratios)
	}
	classic, quorum := r.Ratios[0], r.Ratios[1]
	if classic.QueueType != Classic || classic.JobsPerSec != 0.98 || !classic.JobsPerSecOK || !classic.CPUPerJobOK {
		t.Errorf("classic ratio = %+v", classic)
	}
	if quorum.JobsPerSecOK || quorum.CPUPerJobOK || quorum.OK() {
		t.Errorf("quorum ratio = %+v, want both targets missed", quorum)
	}

	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"median/3", "0.980x ok", "0.750x MISS", "targets MISSED on quorum", "12.3ms"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
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
	for _, k := range []string{"schema", "date", "config", "results", "medians", "ratios"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
}
