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

// Schema names the JSON form of a Report.
const Schema = "warren.bench/v1"

// Targets warren is held to against the amqp091-go baseline (DESIGN.md §11).
const (
	// TargetCallsPerSec is the least ratio of warren's calls per second
	// to the baseline's, with each number of callers (ModeRPC).
	TargetCallsPerSec = 0.95
	// TargetJobsPerSec is the least ratio of warren's end-to-end jobs per
	// second to the baseline's.
	TargetJobsPerSec = 0.95
	// TargetCPUPerJob is the greatest ratio of warren's client CPU time per
	// job to the baseline's.
	TargetCPUPerJob = 1.15
)

// Report is a benchmark's runs, their medians per implementation and queue
// type (and number of callers, in ModeRPC), and how warren compares with the
// baseline. A report holds the runs of one mode.
type Report struct {
	Schema string       `json:"schema"`
	Date   time.Time    `json:"date"`
	Config ReportConfig `json:"config"`
	// Results lists every run in the order run.
	Results []Result `json:"results"`
	// Medians has one entry per implementation and queue type (and
	// number of callers): the median of each measure over its runs.
	Medians []Result `json:"medians"`
	// Ratios has one entry per queue type (and number of callers) both
	// implementations ran with.
	Ratios []Ratio `json:"ratios"`
}

// ReportConfig is the workload of a Report's runs and where they ran.
type ReportConfig struct {
	URL  string `json:"url"` // password redacted
	Mode string `json:"mode"`
	Jobs int    `json:"jobs,omitempty"` // ModeJobs
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
	// BaselineWire is what the direct reply-to baseline's requests
	// carried, BaselineDurable whether the baselines' requests were
	// persistent, ReplyQueue whether warren's Caller had a reply queue,
	// DurableRequests whether it was asked for persistent requests
	// (ModeRPC).
	BaselineWire    string `json:"baseline_wire,omitempty"`
	BaselineDurable bool   `json:"baseline_durable,omitempty"`
	ReplyQueue      bool   `json:"reply_queue,omitempty"`
	DurableRequests bool   `json:"durable_requests,omitempty"`
	GoVersion       string `json:"go_version"`
	CPUs            int    `json:"cpus"`
}

// Ratio compares warren's medians with the baseline's on one queue type
// and, in ModeRPC, with one number of callers.
type Ratio struct {
	Mode      string `json:"mode"`
	QueueType string `json:"queue_type"`
	// Callers is the number of concurrent callers (ModeRPC).
	Callers int `json:"callers,omitempty"`
	// JobsPerSec is warren's end-to-end jobs per second over the
	// baseline's (ModeJobs).
	JobsPerSec float64 `json:"jobs_per_sec,omitempty"`
	// CallsPerSec is warren's calls per second over the baseline's
	// (ModeRPC).
	CallsPerSec float64 `json:"calls_per_sec,omitempty"`
	// CPUPerJob is warren's client CPU time per job over the baseline's;
	// per call in ModeRPC, where it is reported, with no target.
	CPUPerJob float64 `json:"cpu_per_job"`
	// JobsPerSecOK says whether JobsPerSec >= TargetJobsPerSec, and
	// CPUPerJobOK whether CPUPerJob <= TargetCPUPerJob (ModeJobs).
	JobsPerSecOK bool `json:"jobs_per_sec_ok"`
	CPUPerJobOK  bool `json:"cpu_per_job_ok"`
	// CallsPerSecOK says whether CallsPerSec >= TargetCallsPerSec
	// (ModeRPC).
	CallsPerSecOK bool `json:"calls_per_sec_ok"`
}

// OK says whether the targets of the ratio's mode hold.
func (r Ratio) OK() bool {
	if r.Mode == ModeRPC {
		return r.CallsPerSecOK
	}
	return r.JobsPerSecOK && r.CPUPerJobOK
}

// MarshalJSON writes the fields of the ratio's mode only, so that a
// verdict never reads false for a target that does not apply. (The tags
// above are for decoding.)
func (r Ratio) MarshalJSON() ([]byte, error) {
	type wire struct {
		Mode          string  `json:"mode"`
		QueueType     string  `json:"queue_type"`
		Callers       int     `json:"callers,omitempty"`
		JobsPerSec    float64 `json:"jobs_per_sec,omitempty"`
		CallsPerSec   float64 `json:"calls_per_sec,omitempty"`
		CPUPerJob     float64 `json:"cpu_per_job"`
		JobsPerSecOK  *bool   `json:"jobs_per_sec_ok,omitempty"`
		CPUPerJobOK   *bool   `json:"cpu_per_job_ok,omitempty"`
		CallsPerSecOK *bool   `json:"calls_per_sec_ok,omitempty"`
	}
	w := wire{Mode: r.Mode, QueueType: r.QueueType, Callers: r.Callers, JobsPerSec: r.JobsPerSec,
		CallsPerSec: r.CallsPerSec, CPUPerJob: r.CPUPerJob}
	if r.Mode == ModeRPC {
		w.CallsPerSecOK = &r.CallsPerSecOK
	} else {
		w.JobsPerSecOK, w.CPUPerJobOK = &r.JobsPerSecOK, &r.CPUPerJobOK
	}
	return json.Marshal(w)
}

// NewReport summarizes results, run with cfg (after defaults; its Mode is
// the report's) on queueTypes for rounds rounds.
func NewReport(cfg Config, queueTypes []string, rounds int, results []Result) *Report {
	cfg.setDefaults()
	r := &Report{
		Schema: Schema,
		Date:   time.Now().UTC().Truncate(time.Second),
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
		r.Config.Calls, r.Config.Callers, r.Config.BaselineWire, r.Config.ReplyQueue = cfg.Calls, callers, cfg.BaselineWire, cfg.ReplyQueue
		r.Config.BaselineDurable, r.Config.DurableRequests = cfg.BaselineDurable, cfg.DurableRequests
	} else {
		r.Config.Jobs, r.Config.PublishWindow = cfg.Jobs, PublishWindow
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
			w, okW := medians[key{ImplWarren, qt, n}]
			b, okB := medians[key{ImplBaseline, qt, n}]
			if !okW || !okB || b.CPUSecondsPer10k == 0 {
				continue
			}
			ratio := Ratio{Mode: cfg.Mode, QueueType: qt, Callers: n, CPUPerJob: w.CPUSecondsPer10k / b.CPUSecondsPer10k}
			switch {
			case cfg.Mode == ModeRPC && b.CallsPerSec > 0:
				ratio.CallsPerSec = w.CallsPerSec / b.CallsPerSec
				ratio.CallsPerSecOK = ratio.CallsPerSec >= TargetCallsPerSec
			case cfg.Mode != ModeRPC && b.JobsPerSec > 0:
				ratio.JobsPerSec = w.JobsPerSec / b.JobsPerSec
				ratio.JobsPerSecOK = ratio.JobsPerSec >= TargetJobsPerSec
				ratio.CPUPerJobOK = ratio.CPUPerJob <= TargetCPUPerJob
			default:
				continue
			}
			r.Ratios = append(r.Ratios, ratio)
		}
	}
	return r
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
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', tabwriter.AlignRight)
	if rpc {
		fmt.Fprintf(tw, "impl\tqueue\tcallers\tround\tcalls\tcalls/s\tCPU s/10k\tallocs/call\tpeak RSS\tp50\tp99\t\n")
	} else {
		fmt.Fprintf(tw, "impl\tqueue\tround\tjobs\tjobs/s\tpublish/s\tconsume/s\tCPU s/10k\tallocs/job\tpeak RSS\tp50\tp99\t\n")
	}
	lifetime := false
	row := func(round string, res Result) {
		rss := formatBytes(res.PeakRSSBytes)
		if res.PeakRSSLifetime {
			rss += "*"
			lifetime = true
		}
		if rpc {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%.0f\t%.3f\t%.1f\t%s\t%s\t%s\t\n",
				res.Impl, res.QueueType, res.Callers, round, res.Calls, res.CallsPerSec,
				res.CPUSecondsPer10k, res.AllocsPerJob, rss, formatDuration(res.P50), formatDuration(res.P99))
			return
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.3f\t%.1f\t%s\t%s\t%s\t\n",
			res.Impl, res.QueueType, round, res.Jobs, res.JobsPerSec, res.PublishPerSec, res.ConsumePerSec,
			res.CPUSecondsPer10k, res.AllocsPerJob, rss, formatDuration(res.P50), formatDuration(res.P99))
	}
	for _, res := range r.Results {
		row(fmt.Sprint(res.Round), res)
	}
	if r.Config.Rounds > 1 {
		for _, m := range r.Medians {
			row(fmt.Sprintf("median/%d", m.Runs), m)
		}
	}
	verdict := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "MISS"
	}
	for _, ra := range r.Ratios {
		if rpc {
			// The CPU ratio has no target in this mode: no verdict.
			fmt.Fprintf(tw, "%s/%s\t%s\t%d\t%s\t\t%.3fx %s\t%.3fx\t\t\t\t\t\n",
				ImplWarren, ImplBaseline, ra.QueueType, ra.Callers, "ratio",
				ra.CallsPerSec, verdict(ra.CallsPerSecOK), ra.CPUPerJob)
			continue
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t\t%.3fx %s\t\t\t%.3fx %s\t\t\t\t\n",
			ImplWarren, ImplBaseline, ra.QueueType, "ratio",
			ra.JobsPerSec, verdict(ra.JobsPerSecOK), ra.CPUPerJob, verdict(ra.CPUPerJobOK))
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
	if len(r.Ratios) == 0 {
		return nil
	}
	var missed []string
	for _, ra := range r.Ratios {
		switch {
		case ra.OK():
		case rpc:
			missed = append(missed, fmt.Sprintf("%s with %s", ra.QueueType, plural(ra.Callers, "caller")))
		default:
			missed = append(missed, ra.QueueType)
		}
	}
	status := "targets hold"
	if len(missed) > 0 {
		status = "targets MISSED on " + strings.Join(missed, ", ")
	}
	var err error
	switch {
	case rpc && r.Config.ReplyQueue:
		_, err = fmt.Fprintf(w, "with reply queues on both sides (--reply-queue), warren >= %.2fx the baseline's calls/s: %s; "+
			"the targets are judged with direct reply-to, the default\n", TargetCallsPerSec, status)
	case rpc && r.Config.BaselineWire != "" && r.Config.BaselineWire != WireMinimal:
		what := "part of warren's request properties"
		if r.Config.BaselineWire == WireWarren {
			what = "warren's request properties, so these ratios compare the code alone"
		}
		_, err = fmt.Fprintf(w, "the baseline sent %s (--baseline-wire %s) (at %.2fx: %s); "+
			"the target is judged against the minimal baseline (--baseline-wire %s)\n",
			what, r.Config.BaselineWire, TargetCallsPerSec, status, WireMinimal)
	case rpc:
		_, err = fmt.Fprintf(w, "targets: warren >= %.2fx the baseline's calls/s with each number of callers: %s\n",
			TargetCallsPerSec, status)
	default:
		_, err = fmt.Fprintf(w, "targets: warren >= %.2fx the baseline's jobs/s and <= %.2fx its CPU per job: %s\n",
			TargetJobsPerSec, TargetCPUPerJob, status)
	}
	return err
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
