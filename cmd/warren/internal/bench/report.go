package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/warrenmq/warren/broker"
)

// Schema names the JSON form of a Report. v2: a ratio per baseline, each
// naming its baseline and saying whether the targets are judged on it.
const Schema = "warren.bench/v2"

// Targets warren is held to against the amqp091-go baselines (DESIGN.md
// §11): at least as fast and as cheap as what a careful user writes by
// hand. In ModeJobs they are judged against ImplBaselineBatched; in ModeRPC
// against the better baseline with each number of callers, the one with
// more calls per second.
const (
	// TargetJobsPerSec is the least ratio of warren's end-to-end jobs per
	// second to the batched baseline's.
	TargetJobsPerSec = 1.0
	// TargetCPUPerJob is the greatest ratio of warren's client CPU time per
	// job to the batched baseline's.
	TargetCPUPerJob = 1.05
	// TargetPeakRSSBytes is the greatest median peak of the memory
	// warren's runs allocate (Result.PeakAnonBytes: heap, stacks, the
	// runtime's; ModeJobs; with Config.Workers, of its largest worker
	// process). The whole RSS also counts the pages of the executable the
	// process maps, the same for every implementation run by one binary,
	// and set by the binary a user builds, not by warren's code; where the
	// kernel does not report the anonymous RSS, the whole RSS is judged.
	TargetPeakRSSBytes = 20 << 20
	// TargetCallsPerSec is the least ratio of warren's calls per second
	// to the better baseline's, with each number of callers (ModeRPC).
	TargetCallsPerSec = 1.0
	// TargetP99 is the greatest ratio of warren's 99th percentile call
	// latency to the better baseline's (ModeRPC).
	TargetP99 = 1.0
)

// judgedBaseline returns which of the baselines' medians base, all on one
// queue type and number of callers, the targets are judged against: the
// batched one in ModeJobs, the one with the most calls per second in
// ModeRPC. It returns "" when that one did not run.
func judgedBaseline(mode string, base []Result) string {
	if mode != ModeRPC {
		for _, b := range base {
			if b.Impl == ImplBaselineBatched {
				return b.Impl
			}
		}
		return ""
	}
	best := ""
	var rate float64
	for _, b := range base {
		if b.CallsPerSec > rate {
			best, rate = b.Impl, b.CallsPerSec
		}
	}
	return best
}

// Report is a benchmark's runs, their medians per implementation and queue
// type (and number of callers, in ModeRPC), and how warren compares with
// each baseline. A report holds the runs of one mode.
type Report struct {
	Version int          `json:"version"` // 1, as every --json document of warren's; Schema versions the rest
	Schema  string       `json:"schema"`
	Date    time.Time    `json:"date"`
	Config  ReportConfig `json:"config"`
	// Results lists every run in the order run.
	Results []Result `json:"results"`
	// Medians has one entry per implementation and queue type (and
	// number of callers): the median of each measure over its runs.
	Medians []Result `json:"medians"`
	// Ratios has one entry per baseline and queue type (and number of
	// callers) that both warren and the baseline ran with.
	Ratios []Ratio `json:"ratios"`
}

// ReportConfig is the workload of a Report's runs and where they ran.
type ReportConfig struct {
	URL  string `json:"url"` // password redacted
	Mode string `json:"mode"`
	Jobs int    `json:"jobs,omitempty"` // ModeJobs
	// Queues and Workers are ModeJobs': the queues a run spread its jobs
	// over, and the consumer processes (0: the benchmark's own).
	Queues  int `json:"queues,omitempty"`
	Workers int `json:"workers"`
	// Calls and Callers are ModeRPC's: calls per run, and the numbers of
	// concurrent callers run, in order.
	Calls         int      `json:"calls,omitempty"`
	Callers       []int    `json:"callers,omitempty"`
	PayloadBytes  int      `json:"payload_bytes"`
	Prefetch      int      `json:"prefetch"`
	Concurrency   int      `json:"concurrency"`
	QueueTypes    []string `json:"queue_types"`
	Rounds        int      `json:"rounds"`
	PublishWindow int      `json:"publish_window,omitempty"` // ModeJobs
	// BaselineWire is what the baselines' requests
	// carried (ModeJobs: the baselines' jobs; left out when minimal),
	// BaselineDurable whether the baselines' requests were
	// persistent, DirectReplyTo whether warren's Caller used direct
	// reply-to instead of its reply queue,
	// DurableRequests whether it was asked for persistent requests
	// (ModeRPC).
	BaselineWire    string `json:"baseline_wire,omitempty"`
	BaselineDurable bool   `json:"baseline_durable,omitempty"`
	DirectReplyTo   bool   `json:"direct_reply_to,omitempty"`
	DurableRequests bool   `json:"durable_requests,omitempty"`
	GoVersion       string `json:"go_version"`
	CPUs            int    `json:"cpus"`
}

// Ratio compares warren's medians with one baseline's on one queue type
// and, in ModeRPC, with one number of callers.
type Ratio struct {
	Mode      string `json:"mode"`
	QueueType string `json:"queue_type"`
	// Callers is the number of concurrent callers (ModeRPC).
	Callers int `json:"callers,omitempty"`
	// Baseline names the baseline: one of Baselines(Mode).
	Baseline string `json:"baseline"`
	// Judged says whether the targets are judged on this ratio: against
	// ImplBaselineBatched in ModeJobs, against the baseline with the most
	// calls per second in ModeRPC. Only a judged ratio has verdicts.
	Judged bool `json:"judged"`
	// JobsPerSec is warren's end-to-end jobs per second over the
	// baseline's (ModeJobs).
	JobsPerSec float64 `json:"jobs_per_sec,omitempty"`
	// CallsPerSec is warren's calls per second over the baseline's
	// (ModeRPC).
	CallsPerSec float64 `json:"calls_per_sec,omitempty"`
	// CPUPerJob is warren's client CPU time per job over the baseline's;
	// per call in ModeRPC, where it has no target.
	CPUPerJob float64 `json:"cpu_per_job"`
	// P99 is warren's 99th percentile latency over the baseline's; a
	// target in ModeRPC only.
	P99 float64 `json:"p99"`
	// PeakRSSBytes is warren's median peak RSS (ModeJobs), and
	// PeakAnonBytes its median peak anonymous RSS, held to
	// TargetPeakRSSBytes (PeakRSSBytes where it is 0).
	PeakRSSBytes  int64 `json:"peak_rss_bytes,omitempty"`
	PeakAnonBytes int64 `json:"peak_anon_bytes,omitempty"`
	// The verdicts of a judged ratio. ModeJobs: JobsPerSec >=
	// TargetJobsPerSec, CPUPerJob <= TargetCPUPerJob, PeakRSSBytes <=
	// TargetPeakRSSBytes. ModeRPC: CallsPerSec >= TargetCallsPerSec, P99
	// <= TargetP99.
	JobsPerSecOK  bool `json:"jobs_per_sec_ok"`
	CPUPerJobOK   bool `json:"cpu_per_job_ok"`
	PeakRSSOK     bool `json:"peak_rss_ok"`
	CallsPerSecOK bool `json:"calls_per_sec_ok"`
	P99OK         bool `json:"p99_ok"`
}

// OK says whether the targets of the ratio's mode hold; true for a ratio
// the targets are not judged on.
func (r Ratio) OK() bool {
	switch {
	case !r.Judged:
		return true
	case r.Mode == ModeRPC:
		return r.CallsPerSecOK && r.P99OK
	default:
		return r.JobsPerSecOK && r.CPUPerJobOK && r.PeakRSSOK
	}
}

// MarshalJSON writes the fields of the ratio's mode only, and the verdicts
// of a judged ratio only, so that a verdict never reads false for a target
// that does not apply. (The tags above are for decoding.)
func (r Ratio) MarshalJSON() ([]byte, error) {
	type wire struct {
		Mode          string  `json:"mode"`
		QueueType     string  `json:"queue_type"`
		Callers       int     `json:"callers,omitempty"`
		Baseline      string  `json:"baseline"`
		Judged        bool    `json:"judged"`
		JobsPerSec    float64 `json:"jobs_per_sec,omitempty"`
		CallsPerSec   float64 `json:"calls_per_sec,omitempty"`
		CPUPerJob     float64 `json:"cpu_per_job"`
		P99           float64 `json:"p99"`
		PeakRSSBytes  int64   `json:"peak_rss_bytes,omitempty"`
		PeakAnonBytes int64   `json:"peak_anon_bytes,omitempty"`
		JobsPerSecOK  *bool   `json:"jobs_per_sec_ok,omitempty"`
		CPUPerJobOK   *bool   `json:"cpu_per_job_ok,omitempty"`
		PeakRSSOK     *bool   `json:"peak_rss_ok,omitempty"`
		CallsPerSecOK *bool   `json:"calls_per_sec_ok,omitempty"`
		P99OK         *bool   `json:"p99_ok,omitempty"`
	}
	w := wire{Mode: r.Mode, QueueType: r.QueueType, Callers: r.Callers, Baseline: r.Baseline, Judged: r.Judged,
		JobsPerSec: r.JobsPerSec, CallsPerSec: r.CallsPerSec, CPUPerJob: r.CPUPerJob, P99: r.P99, PeakRSSBytes: r.PeakRSSBytes, PeakAnonBytes: r.PeakAnonBytes}
	switch {
	case !r.Judged:
	case r.Mode == ModeRPC:
		w.CallsPerSecOK, w.P99OK = &r.CallsPerSecOK, &r.P99OK
	default:
		w.JobsPerSecOK, w.CPUPerJobOK, w.PeakRSSOK = &r.JobsPerSecOK, &r.CPUPerJobOK, &r.PeakRSSOK
	}
	return json.Marshal(w)
}

// NewReport summarizes results, run with cfg (after defaults; its Mode is
// the report's) on queueTypes for rounds rounds.
func NewReport(cfg Config, queueTypes []string, rounds int, results []Result) *Report {
	cfg.setDefaults()
	r := &Report{
		Version: 1,
		Schema:  Schema,
		Date:    time.Now().UTC().Truncate(time.Second),
		Config: ReportConfig{
			URL:          broker.RedactURL(cfg.URL),
			Mode:         cfg.Mode,
			PayloadBytes: cfg.PayloadBytes,
			Prefetch:     cfg.Prefetch,
			Concurrency:  cfg.Concurrency,
			QueueTypes:   queueTypes,
			Rounds:       rounds,
			GoVersion:    runtime.Version(),
			CPUs:         runtime.NumCPU(),
		},
		Results: results,
		Medians: []Result{},
		Ratios:  []Ratio{},
	}
	type key struct {
		impl, queueType string
		callers         int
	}
	var order []key
	var callers []int
	groups := map[key][]Result{}
	for _, res := range results {
		k := key{res.Impl, res.QueueType, res.Callers}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], res)
		if cfg.Mode == ModeRPC && !slices.Contains(callers, res.Callers) {
			callers = append(callers, res.Callers)
		}
	}
	if cfg.Mode == ModeRPC {
		r.Config.Calls, r.Config.Callers, r.Config.BaselineWire, r.Config.DirectReplyTo = cfg.Calls, callers, cfg.BaselineWire, cfg.DirectReplyTo
		r.Config.BaselineDurable, r.Config.DurableRequests = cfg.BaselineDurable, cfg.DurableRequests
	} else {
		r.Config.Jobs, r.Config.PublishWindow, r.Config.Queues, r.Config.Workers = cfg.Jobs, PublishWindow, cfg.Queues, cfg.Workers
		if cfg.BaselineWire != WireMinimal {
			r.Config.BaselineWire = cfg.BaselineWire
		}
		callers = []int{0}
	}
	medians := map[key]Result{}
	for _, k := range order {
		m := median(groups[k])
		medians[k] = m
		r.Medians = append(r.Medians, m)
	}
	for _, qt := range queueTypes {
		for _, n := range callers {
			w, ok := medians[key{ImplWarren, qt, n}]
			if !ok {
				continue
			}
			var base []Result
			for _, impl := range Baselines(cfg.Mode) {
				if b, ok := medians[key{impl, qt, n}]; ok {
					base = append(base, b)
				}
			}
			judged := judgedBaseline(cfg.Mode, base)
			for _, b := range base {
				if ratio, ok := newRatio(cfg.Mode, w, b, b.Impl == judged); ok {
					r.Ratios = append(r.Ratios, ratio)
				}
			}
		}
	}
	return r
}

// newRatio compares warren's median w with the baseline's b, with the
// verdicts of the mode's targets if judged. It reports false when a
// measure of b is zero, so that there is nothing to divide by.
func newRatio(mode string, w, b Result, judged bool) (Ratio, bool) {
	if b.CPUSecondsPer10k == 0 || b.P99 == 0 {
		return Ratio{}, false
	}
	ra := Ratio{Mode: mode, QueueType: w.QueueType, Callers: w.Callers, Baseline: b.Impl, Judged: judged,
		CPUPerJob: w.CPUSecondsPer10k / b.CPUSecondsPer10k, P99: float64(w.P99) / float64(b.P99)}
	if mode == ModeRPC {
		if b.CallsPerSec == 0 {
			return Ratio{}, false
		}
		ra.CallsPerSec = w.CallsPerSec / b.CallsPerSec
		if judged {
			ra.CallsPerSecOK = ra.CallsPerSec >= TargetCallsPerSec
			ra.P99OK = ra.P99 <= TargetP99
		}
		return ra, true
	}
	if b.JobsPerSec == 0 {
		return Ratio{}, false
	}
	ra.JobsPerSec = w.JobsPerSec / b.JobsPerSec
	ra.PeakRSSBytes, ra.PeakAnonBytes = w.PeakRSSBytes, w.PeakAnonBytes
	if judged {
		ra.JobsPerSecOK = ra.JobsPerSec >= TargetJobsPerSec
		ra.CPUPerJobOK = ra.CPUPerJob <= TargetCPUPerJob
		ra.PeakRSSOK = ra.judgedMemory() <= TargetPeakRSSBytes
	}
	return ra, true
}

// median returns a Result whose every measure is the median of runs' (the
// mean of the two middle ones for an even count).
func median(runs []Result) Result {
	m := Result{Impl: runs[0].Impl, Mode: runs[0].Mode, QueueType: runs[0].QueueType, Callers: runs[0].Callers,
		Jobs: runs[0].Jobs, Calls: runs[0].Calls, Runs: len(runs)}
	f := func(get func(Result) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = get(r)
		}
		slices.Sort(v)
		n := len(v)
		if n%2 == 1 {
			return v[n/2]
		}
		return (v[n/2-1] + v[n/2]) / 2
	}
	m.Seconds = f(func(r Result) float64 { return r.Seconds })
	m.JobsPerSec = f(func(r Result) float64 { return r.JobsPerSec })
	m.PublishPerSec = f(func(r Result) float64 { return r.PublishPerSec })
	m.ConsumePerSec = f(func(r Result) float64 { return r.ConsumePerSec })
	m.CallsPerSec = f(func(r Result) float64 { return r.CallsPerSec })
	m.CPUSecondsPer10k = f(func(r Result) float64 { return r.CPUSecondsPer10k })
	m.AllocsPerJob = f(func(r Result) float64 { return r.AllocsPerJob })
	m.BytesPerJob = f(func(r Result) float64 { return r.BytesPerJob })
	m.PeakRSSBytes = int64(f(func(r Result) float64 { return float64(r.PeakRSSBytes) }))
	m.PeakAnonBytes = int64(f(func(r Result) float64 { return float64(r.PeakAnonBytes) }))
	m.P50 = time.Duration(f(func(r Result) float64 { return float64(r.P50) }))
	m.P99 = time.Duration(f(func(r Result) float64 { return float64(r.P99) }))
	for _, r := range runs {
		m.PeakRSSLifetime = m.PeakRSSLifetime || r.PeakRSSLifetime
	}
	return m
}

// WriteTable writes the report as a table: one row per run, then, when
// there were several rounds, one per median, then one per ratio, and a line
// saying whether the targets hold.
func (r *Report) WriteTable(w io.Writer) error {
	rpc := r.Config.Mode == ModeRPC
	if !rpc {
		consumers := "consumed in this process"
		if r.Config.Workers > 0 {
			consumers = "consumed by " + plural(r.Config.Workers, "worker process")
			consumers = strings.Replace(consumers, "processs", "processes", 1)
		}
		if _, err := fmt.Fprintf(w, "%d jobs of about %d bytes over %s, %s, prefetch %d, concurrency %d per queue\n",
			r.Config.Jobs, r.Config.PayloadBytes, plural(r.Config.Queues, "queue"), consumers, r.Config.Prefetch, r.Config.Concurrency); err != nil {
			return err
		}
	}
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', tabwriter.AlignRight)
	if rpc {
		fmt.Fprintf(tw, "impl\tqueue\tcallers\tround\tcalls\tcalls/s\tCPU s/10k\tallocs/call\tpeak RSS\tpeak anon\tp50\tp99\t\n")
	} else {
		fmt.Fprintf(tw, "impl\tqueue\tround\tjobs\tjobs/s\tpublish/s\tconsume/s\tCPU s/10k\tallocs/job\tpeak RSS\tpeak anon\tp50\tp99\t\n")
	}
	lifetime := false
	row := func(round string, res Result) {
		rss := formatBytes(res.PeakRSSBytes)
		if res.PeakRSSLifetime {
			rss += "*"
			lifetime = true
		}
		anon := "-"
		if res.PeakAnonBytes > 0 {
			anon = formatBytes(res.PeakAnonBytes)
		}
		if rpc {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%.0f\t%.3f\t%.1f\t%s\t%s\t%s\t%s\t\n",
				res.Impl, res.QueueType, res.Callers, round, res.Calls, res.CallsPerSec,
				res.CPUSecondsPer10k, res.AllocsPerJob, rss, anon, formatDuration(res.P50), formatDuration(res.P99))
			return
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.3f\t%.1f\t%s\t%s\t%s\t%s\t\n",
			res.Impl, res.QueueType, round, res.Jobs, res.JobsPerSec, res.PublishPerSec, res.ConsumePerSec,
			res.CPUSecondsPer10k, res.AllocsPerJob, rss, anon, formatDuration(res.P50), formatDuration(res.P99))
	}
	for _, res := range r.Results {
		row(fmt.Sprint(res.Round), res)
	}
	if r.Config.Rounds > 1 {
		for _, m := range r.Medians {
			row(fmt.Sprintf("median/%d", m.Runs), m)
		}
	}
	verdict := func(ra Ratio, ok bool) string {
		switch {
		case !ra.Judged:
			return ""
		case ok:
			return " ok"
		}
		return " MISS"
	}
	for _, ra := range r.Ratios {
		name := ImplWarren + "/" + ra.Baseline
		if rpc {
			// The CPU ratio has no target in this mode: no verdict.
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t\t%.3fx%s\t%.3fx\t\t\t\t\t%.3fx%s\t\n",
				name, ra.QueueType, ra.Callers, "ratio",
				ra.CallsPerSec, verdict(ra, ra.CallsPerSecOK), ra.CPUPerJob, ra.P99, verdict(ra, ra.P99OK))
			continue
		}
		rss := ""
		if ra.Judged {
			rss = formatBytes(ra.judgedMemory()) + verdict(ra, ra.PeakRSSOK)
		}
		cells := "\t\t%s\t" // the verdict under peak anon
		if ra.PeakAnonBytes == 0 {
			cells = "\t%s\t\t" // under peak RSS
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\t%.3fx%s\t\t\t%.3fx%s"+cells+"\t%.3fx\t\n",
			name, ra.QueueType, "ratio",
			ra.JobsPerSec, verdict(ra, ra.JobsPerSecOK), ra.CPUPerJob, verdict(ra, ra.CPUPerJobOK), rss, ra.P99)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Empty cells of the ratio rows would leave trailing spaces.
	for _, line := range strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n") {
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " ")); err != nil {
			return err
		}
	}
	if lifetime {
		if _, err := fmt.Fprintln(w, "* peak RSS of the whole process: /proc/self/clear_refs could not reset it before the run"); err != nil {
			return err
		}
	}
	judged := 0
	var missed []string
	for _, ra := range r.Ratios {
		if !ra.Judged {
			continue
		}
		judged++
		switch {
		case ra.OK():
		case rpc:
			missed = append(missed, fmt.Sprintf("%s with %s", ra.QueueType, plural(ra.Callers, "caller")))
		default:
			missed = append(missed, ra.QueueType)
		}
	}
	if judged == 0 {
		return nil
	}
	status := "targets hold"
	if len(missed) > 0 {
		status = "targets MISSED on " + strings.Join(missed, ", ")
	}
	var err error
	switch {
	case rpc && (r.Config.BaselineDurable || r.Config.wireAdded()):
		var what []string
		if r.Config.wireAdded() {
			what = append(what, fmt.Sprintf("the baselines sent %s (--baseline-wire %s)", wireWhat(r.Config.BaselineWire), r.Config.BaselineWire))
		}
		if r.Config.BaselineDurable {
			what = append(what, "the baselines sent persistent requests (--baseline-durable)")
		}
		_, err = fmt.Fprintf(w, "%s: a diagnostic (at >= %.2fx the better baseline's calls/s and <= %.2fx its p99: %s); "+
			"the targets are judged against the baselines' transient, minimal requests, the default\n",
			strings.Join(what, ", and "), TargetCallsPerSec, TargetP99, status)
	case rpc:
		_, err = fmt.Fprintf(w, "targets: warren >= %.2fx the better baseline's calls/s and <= %.2fx its p99, with each number of callers: %s\n",
			TargetCallsPerSec, TargetP99, status)
	case r.Config.wireAdded():
		_, err = fmt.Fprintf(w, "the baselines' jobs carried warren's job properties (--baseline-wire %s), so these ratios compare the code alone: "+
			"a diagnostic (at >= %.2fx the jobs/s of %s, <= %.2fx its CPU per job, and a peak of allocated memory <= %s: %s); "+
			"the targets are judged against the baselines' minimal jobs, the default\n",
			r.Config.BaselineWire, TargetJobsPerSec, ImplBaselineBatched, TargetCPUPerJob, formatBytes(TargetPeakRSSBytes), status)
	default:
		_, err = fmt.Fprintf(w, "targets: warren >= %.2fx the jobs/s of %s, <= %.2fx its CPU per job, and a peak of allocated memory (anonymous RSS) <= %s: %s\n",
			TargetJobsPerSec, ImplBaselineBatched, TargetCPUPerJob, formatBytes(TargetPeakRSSBytes), status)
	}
	return err
}

// wireAdded reports whether the baselines' messages carried more than the
// minimal wire: the report is then a diagnostic.
func (c ReportConfig) wireAdded() bool {
	return c.BaselineWire != "" && c.BaselineWire != WireMinimal
}

// wireWhat says what a baseline wire other than WireMinimal adds.
func wireWhat(wire string) string {
	if wire == WireWarren {
		return "warren's request properties, so these ratios compare the code alone"
	}
	return "part of warren's request properties"
}

func formatBytes(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// formatDuration rounds d to three significant digits.
func formatDuration(d time.Duration) string {
	unit := time.Duration(1)
	for d/unit >= 1000 {
		unit *= 10
	}
	return d.Round(unit).String()
}

// judgedMemory is the peak held to TargetPeakRSSBytes: the anonymous RSS,
// or the whole RSS where the kernel does not report it.
func (r Ratio) judgedMemory() int64 {
	if r.PeakAnonBytes > 0 {
		return r.PeakAnonBytes
	}
	return r.PeakRSSBytes
}
