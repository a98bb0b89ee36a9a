package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/cmd/warren/internal/bench"
)

// init lets the test binary serve as a worker process of a bench run with
// --workers: the run starts its own executable, this binary, with
// bench.WorkerEnv set. It runs before TestMain, which would run the tests.
func init() {
	if bench.IsWorker() {
		os.Exit(run(context.Background(), bench.WorkerArgs, os.Stdout, os.Stderr))
	}
}

// benchReport is the part of `warren bench --json` that scripts rely on.
type benchReport struct {
	Schema string    `json:"schema"`
	Date   time.Time `json:"date"`
	Config struct {
		URL        string   `json:"url"`
		Mode       string   `json:"mode"`
		Jobs       int      `json:"jobs"`
		Queues     int      `json:"queues"`
		Workers    *int     `json:"workers"`
		Calls      int      `json:"calls"`
		Callers    []int    `json:"callers"`
		QueueTypes []string `json:"queue_types"`
		Rounds     int      `json:"rounds"`
	} `json:"config"`
	Results []benchResult `json:"results"`
	Medians []benchResult `json:"medians"`
	Ratios  []struct {
		Mode          string  `json:"mode"`
		QueueType     string  `json:"queue_type"`
		Callers       int     `json:"callers"`
		Baseline      string  `json:"baseline"`
		Judged        bool    `json:"judged"`
		JobsPerSec    float64 `json:"jobs_per_sec"`
		CallsPerSec   float64 `json:"calls_per_sec"`
		CPUPerJob     float64 `json:"cpu_per_job"`
		JobsPerSecOK  *bool   `json:"jobs_per_sec_ok"`
		CPUPerJobOK   *bool   `json:"cpu_per_job_ok"`
		CallsPerSecOK *bool   `json:"calls_per_sec_ok"`
		P99OK         *bool   `json:"p99_ok"`
		PeakRSSOK     *bool   `json:"peak_rss_ok"`
	} `json:"ratios"`
}

type benchResult struct {
	Impl             string  `json:"impl"`
	Mode             string  `json:"mode"`
	QueueType        string  `json:"queue_type"`
	Callers          int     `json:"callers"`
	Round            int     `json:"round"`
	Jobs             int     `json:"jobs"`
	Calls            int     `json:"calls"`
	Seconds          float64 `json:"seconds"`
	JobsPerSec       float64 `json:"jobs_per_sec"`
	PublishPerSec    float64 `json:"publish_per_sec"`
	ConsumePerSec    float64 `json:"consume_per_sec"`
	CallsPerSec      float64 `json:"calls_per_sec"`
	CPUSecondsPer10k float64 `json:"cpu_seconds_per_10k"`
	AllocsPerJob     float64 `json:"allocs_per_job"`
	PeakRSSBytes     int64   `json:"peak_rss_bytes"`
	P50              int64   `json:"p50_ns"`
	P99              int64   `json:"p99_ns"`
}

// runBench runs `warren --json bench args...` and decodes the report.
func runBench(t *testing.T, args ...string) benchReport {
	t.Helper()
	code, out, errOut := warren(t, append([]string{"--json", "bench"}, args...)...)
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s%s", code, out, errOut)
	}
	if errOut != "" {
		t.Errorf("stderr is not a terminal, yet bench wrote to it: %q", errOut)
	}
	var r benchReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if r.Schema != "warren.bench/v2" || r.Date.IsZero() || r.Medians == nil || r.Ratios == nil {
		t.Errorf("report header: schema %q, date %v, medians %v, ratios %v", r.Schema, r.Date, r.Medians, r.Ratios)
	}
	if strings.Contains(out, "guest:guest@") {
		t.Error("the report shows the broker's password")
	}
	for _, res := range r.Results {
		if res.Mode != r.Config.Mode || res.Round < 1 || res.Seconds <= 0 || res.CPUSecondsPer10k <= 0 ||
			res.AllocsPerJob <= 0 || res.PeakRSSBytes <= 0 || res.P50 <= 0 || res.P50 > res.P99 {
			t.Errorf("result not sane: %+v", res)
		}
		switch res.Mode {
		case "jobs":
			if res.Jobs != r.Config.Jobs || res.JobsPerSec <= 0 || res.PublishPerSec <= 0 || res.ConsumePerSec <= 0 {
				t.Errorf("jobs result not sane: %+v", res)
			}
		case "rpc":
			if res.Calls != r.Config.Calls || res.CallsPerSec <= 0 || res.Callers < 1 || res.Jobs != 0 || res.JobsPerSec != 0 {
				t.Errorf("rpc result not sane: %+v", res)
			}
		default:
			t.Errorf("result of mode %q", res.Mode)
		}
	}
	return r
}

func TestBenchRPC(t *testing.T) {
	r := runBench(t, "--mode", "rpc", "--calls", "100", "--baseline")
	if r.Config.Mode != "rpc" || r.Config.Calls != 100 || r.Config.Jobs != 0 || fmt.Sprint(r.Config.Callers) != "[1 16]" || r.Config.Rounds != 1 {
		t.Errorf("config = %+v", r.Config)
	}
	var runs []string
	for _, res := range r.Results {
		runs = append(runs, fmt.Sprintf("%s/%d", res.Impl, res.Callers))
	}
	if want := "amqp091-go/1 amqp091-go-queue/1 warren/1 amqp091-go/16 amqp091-go-queue/16 warren/16"; strings.Join(runs, " ") != want {
		t.Errorf("runs %v, want %s", runs, want)
	}
	if len(r.Medians) != 6 || len(r.Ratios) != 4 {
		t.Fatalf("medians %+v, ratios %+v: want 6 and 4", r.Medians, r.Ratios)
	}
	judged := map[int]int{}
	for i, ra := range r.Ratios {
		if ra.Mode != "rpc" || ra.QueueType != "classic" || ra.Callers != []int{1, 1, 16, 16}[i] ||
			ra.Baseline != []string{"amqp091-go", "amqp091-go-queue"}[i%2] || ra.CallsPerSec <= 0 || ra.CPUPerJob <= 0 ||
			(ra.CallsPerSecOK != nil) != ra.Judged || (ra.P99OK != nil) != ra.Judged || ra.JobsPerSecOK != nil || ra.CPUPerJobOK != nil {
			t.Errorf("ratio %d: %+v", i, ra)
		}
		if ra.Judged {
			judged[ra.Callers]++
		}
	}
	if judged[1] != 1 || judged[16] != 1 {
		t.Errorf("judged ratios by callers %v, want one each", judged)
	}
}

func TestBenchRPCTable(t *testing.T) {
	code, out, errOut := warren(t, "bench", "--mode", "rpc", "--calls", "50", "--callers", "3", "--only-baseline")
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"calls/s", "allocs/call", "callers", "amqp091-go", "p99"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchBaselineOnly(t *testing.T) {
	r := runBench(t, "--jobs", "200", "--only-baseline")
	if r.Config.Jobs != 200 || len(r.Config.QueueTypes) != 1 || r.Config.QueueTypes[0] != "classic" || r.Config.Rounds != 1 {
		t.Errorf("config = %+v", r.Config)
	}
	if len(r.Results) != 2 || r.Results[0].Impl != "amqp091-go" || r.Results[1].Impl != "amqp091-go-batched" || r.Results[0].QueueType != "classic" {
		t.Fatalf("results = %+v", r.Results)
	}
	if len(r.Medians) != 2 || len(r.Ratios) != 0 {
		t.Errorf("medians %+v, ratios %+v: want a median per baseline and no ratio", r.Medians, r.Ratios)
	}
}

func TestBenchWarren(t *testing.T) {
	r := runBench(t, "--jobs", "200")
	if len(r.Results) != 1 || r.Results[0].Impl != "warren" || len(r.Ratios) != 0 {
		t.Fatalf("results %+v, ratios %+v", r.Results, r.Ratios)
	}
}

func TestBenchBaselineAlternates(t *testing.T) {
	r := runBench(t, "--jobs", "200", "--baseline", "--rounds", "2")
	var order []string
	for _, res := range r.Results {
		order = append(order, res.Impl)
	}
	if want := "amqp091-go amqp091-go-batched warren amqp091-go-batched warren amqp091-go"; strings.Join(order, " ") != want {
		t.Errorf("runs in the order %v, want %s", order, want)
	}
	if len(r.Medians) != 3 || len(r.Ratios) != 2 {
		t.Fatalf("medians %+v, ratios %+v: want 3 and 2", r.Medians, r.Ratios)
	}
	for i, ra := range r.Ratios {
		judged := i == 1
		if ra.QueueType != "classic" || ra.Baseline != []string{"amqp091-go", "amqp091-go-batched"}[i] || ra.Judged != judged ||
			ra.JobsPerSec <= 0 || ra.CPUPerJob <= 0 || (ra.JobsPerSecOK != nil) != judged || (ra.PeakRSSOK != nil) != judged {
			t.Errorf("ratio %d: %+v", i, ra)
		}
	}
}

// TestBenchScale: --queues and --workers, for warren and each baseline:
// every job handled once (else the run fails), and the report says how.
func TestBenchScale(t *testing.T) {
	r := runBench(t, "--jobs", "2000", "--queues", "3", "--workers", "2", "--concurrency", "4", "--prefetch", "16", "--baseline")
	if r.Config.Queues != 3 || r.Config.Workers == nil || *r.Config.Workers != 2 || r.Config.Jobs != 2000 {
		t.Errorf("config = %+v", r.Config)
	}
	if len(r.Results) != 3 || len(r.Ratios) != 2 {
		t.Errorf("results %+v, ratios %+v: want 3 and 2", r.Results, r.Ratios)
	}
	code, out, errOut := warren(t, "bench", "--jobs", "500", "--queues", "2", "--workers", "1")
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s%s", code, out, errOut)
	}
	if want := "500 jobs of about 200 bytes over 2 queues, consumed by 1 worker process,"; !strings.Contains(out, want) {
		t.Errorf("table lacks %q:\n%s", want, out)
	}
}

func TestBenchConsumeIsNotForHands(t *testing.T) {
	code, _, errOut := warren(t, "bench", "consume")
	if code == 0 || !strings.Contains(errOut, "warren bench --workers") {
		t.Errorf("bench consume by hand: exit %d, stderr %q", code, errOut)
	}
}

func TestBenchTable(t *testing.T) {
	code, out, errOut := warren(t, "bench", "--jobs", "100", "--only-baseline", "--queue-type", "quorum")
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"jobs/s", "CPU s/10k", "p99", "amqp091-go", "quorum"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchTableOfSavedReport prints the table of a report saved with
// --json, the same as the run printed it, and refuses what is not a report.
func TestBenchTableOfSavedReport(t *testing.T) {
	args := []string{"bench", "--jobs", "100", "--baseline"}
	code, saved, errOut := warren(t, append([]string{"--json"}, args...)...)
	if code != 0 {
		t.Fatalf("bench: exit %d\n%s%s", code, saved, errOut)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "report.json")
	if err := os.WriteFile(path, []byte(saved), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := warren(t, "bench", "--table", path)
	if code != 0 {
		t.Fatalf("bench --table: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"100 jobs", "amqp091-go-batched", "warren/amqp091-go-batched", "targets"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"schema": "warren.bench/v1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := warren(t, "bench", "--table", bad); code == 0 || !strings.Contains(errOut, "schema") {
		t.Errorf("an old report: exit %d, stderr %q", code, errOut)
	}
}

func TestBenchFlagErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"queue type", []string{"bench", "--queue-type", "stream"}, "--queue-type"},
		{"rounds", []string{"bench", "--rounds", "0"}, "--rounds"},
		{"jobs", []string{"bench", "--jobs", "-5", "--prefetch", "0", "--concurrency", "-1"}, "jobs -5"},
		{"payload", []string{"bench", "--payload-bytes", "3"}, "payload bytes 3"},
		{"mode", []string{"bench", "--mode", "stream"}, "--mode"},
		{"jobs in rpc mode", []string{"bench", "--mode", "rpc", "--jobs", "10"}, "--jobs applies to --mode jobs"},
		{"calls in jobs mode", []string{"bench", "--calls", "10"}, "--calls applies to --mode rpc"},
		{"callers in jobs mode", []string{"bench", "--callers", "2"}, "--callers applies to --mode rpc"},
		{"durable requests in jobs mode", []string{"bench", "--durable-requests"}, "--durable-requests applies to --mode rpc"},
		{"baseline durable in jobs mode", []string{"bench", "--baseline-durable"}, "--baseline-durable applies to --mode rpc"},
		{"no callers", []string{"bench", "--mode", "rpc", "--callers", "0"}, "--callers 0"},
		{"calls", []string{"bench", "--mode", "rpc", "--calls", "-1"}, "calls -1"},
		{"too many callers", []string{"bench", "--mode", "rpc", "--callers", "1,20000"}, "callers 20000"},
		{"workers in rpc mode", []string{"bench", "--mode", "rpc", "--workers", "2"}, "--workers 2 applies to --mode jobs"},
		{"queues in rpc mode", []string{"bench", "--mode", "rpc", "--queues", "3"}, "--queues 3 applies to --mode jobs"},
		{"no queues", []string{"bench", "--queues", "0"}, "--queues 0: give at least 1"},
		{"too many queues", []string{"bench", "--queues", "101"}, "queues 101: want 1 to 100"},
		{"workers", []string{"bench", "--workers", "-1"}, "workers -1: want 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := warren(t, c.args...)
			if code == 0 {
				t.Fatal("exit 0, want failure")
			}
			if !strings.Contains(errOut, c.want) {
				t.Errorf("stderr %q lacks %q", errOut, c.want)
			}
		})
	}
}
