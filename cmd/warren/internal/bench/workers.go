package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/broker"
)

// consumerSide is a run's consumer side, started before the first publish:
// consumers in the run's own process (localConsumer), or worker processes
// (workerSet).
type consumerSide interface {
	// wait blocks until every job was handled, the run failed or ctx
	// ended.
	wait(ctx context.Context) error
	// stop ends consuming once every job was handled: every ack is sent
	// when it returns.
	stop() error
	// abort ends consuming at once, on a failed run. It does nothing
	// after stop.
	abort()
}

// stopper is a consumer of one implementation: amqpConsumer or
// warrenConsumer.
type stopper interface {
	stop() error
	abort()
}

// localConsumer is a consumer in the run's own process, reporting to rec.
type localConsumer struct {
	stopper
	rec *Recorder
}

func (c localConsumer) wait(ctx context.Context) error { return c.rec.Wait(ctx) }

// WorkerEnv is the environment variable that makes the benchmark's
// executable a worker process of a run (Config.Workers): it holds the
// worker's part of the run, in JSON. The executable sees it and calls
// ServeWorker.
const WorkerEnv = "WARREN_BENCH_WORKER"

// WorkerArgs are the arguments a run starts its own executable with, as a
// worker: warren's hidden subcommand that calls ServeWorker. A test binary
// that is started so checks IsWorker first instead.
var WorkerArgs = []string{"bench", "consume"}

// IsWorker says whether this process was started as a worker of a run.
func IsWorker() bool { return os.Getenv(WorkerEnv) != "" }

// workerSpec is a worker's part of a run: which implementation consumes
// which queues, and how.
type workerSpec struct {
	Impl        string `json:"impl"`
	Name        string `json:"name"` // the run's unique name, which its queues are named after
	URL         string `json:"url"`
	QueueType   string `json:"queue_type"`
	Queues      int    `json:"queues"`
	Jobs        int    `json:"jobs"`
	Prefetch    int    `json:"prefetch"`
	Concurrency int    `json:"concurrency"`
}

// workerMsg is one line of JSON a worker writes on its stdout.
type workerMsg struct {
	// Ready says the worker consumes every queue; CPUNanos is the CPU
	// time it took to get there, which the run does not count.
	Ready    bool  `json:"ready,omitempty"`
	CPUNanos int64 `json:"cpu_ns,omitempty"`
	// Handled is how many jobs the worker handled so far, sent every
	// progressInterval.
	Handled int64 `json:"handled"`
	// Error says the worker failed, and Final that it stopped consuming:
	// either is its last message.
	Error string       `json:"error,omitempty"`
	Final *workerFinal `json:"final,omitempty"`
}

// workerFinal is what a worker handled, sent once it stopped consuming.
type workerFinal struct {
	// Seqs are the jobs handled, and LatencyNanos their latencies, in
	// the same order. Duplicates counts the jobs handled more than once.
	Seqs         []int   `json:"seqs"`
	LatencyNanos []int64 `json:"latency_ns"`
	Duplicates   int64   `json:"duplicates"`
	// FirstNanos and LastNanos are when the first and last job was
	// handled, in Unix nanoseconds (the machine's clock is the run's).
	FirstNanos int64 `json:"first_ns"`
	LastNanos  int64 `json:"last_ns"`
	// Mallocs and Bytes are the worker's heap allocations while it
	// consumed.
	Mallocs uint64 `json:"mallocs"`
	Bytes   uint64 `json:"bytes"`
	// PeakAnonBytes is the worker's peak anonymous RSS (Result's).
	PeakAnonBytes int64 `json:"peak_anon_bytes,omitempty"`
}

// progressInterval is how often a worker reports its count: the run learns
// that every job was handled at most this late, which delays only the
// stop (the times measured are the workers' own).
const progressInterval = 100 * time.Millisecond

// ServeWorker is a worker process of a run with Config.Workers: it reads
// its part of the run from WorkerEnv, consumes every queue of the run with
// the implementation named there, and writes its progress to stdout, one
// JSON line every 100 ms. When stdin ends, the run's word to stop, it stops
// consuming (every ack sent), writes what it handled and returns. It
// returns an error, after writing it, if consuming fails or ctx ends.
// stdin is read by a goroutine of its own until it ends: a worker is a
// process of its own, which ends with the run.
func ServeWorker(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	var spec workerSpec
	if err := json.Unmarshal([]byte(os.Getenv(WorkerEnv)), &spec); err != nil {
		return fmt.Errorf("bench: a worker's part of the run, in %s: %w (warren bench --workers starts workers; they are not run by hand)", WorkerEnv, err)
	}
	enc := json.NewEncoder(stdout)
	fail := func(err error) error {
		err = fmt.Errorf("bench: worker of %s: %w", spec.Impl, err)
		_ = enc.Encode(workerMsg{Error: err.Error()})
		return err
	}
	cfg := Config{URL: spec.URL, Mode: ModeJobs, Jobs: spec.Jobs, QueueType: spec.QueueType, Queues: spec.Queues,
		Prefetch: spec.Prefetch, Concurrency: spec.Concurrency}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return fail(err)
	}
	t := newTally(cfg.Jobs)
	cons, closeConn, err := startWorkerConsumer(ctx, spec, cfg, t)
	if err != nil {
		return fail(err)
	}
	defer closeConn()
	defer cons.abort()

	var memStart, memStop runtime.MemStats
	runtime.ReadMemStats(&memStart)
	anon := startAnonSampler()
	defer anon.finish() // on the failures' returns; a second finish is not made
	cpu, err := cpuTime()
	if err != nil {
		return fail(fmt.Errorf("measure CPU time: %w", err))
	}
	if err := enc.Encode(workerMsg{Ready: true, CPUNanos: cpu.Nanoseconds()}); err != nil {
		return err
	}
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(eof)
	}()
	tick := time.NewTicker(progressInterval)
	defer tick.Stop()
	last := int64(-1)
	for stop := false; !stop; {
		select {
		case <-tick.C:
			// Only news: an idle worker writes nothing.
			if n := t.handled.Load(); n != last {
				if err := enc.Encode(workerMsg{Handled: n}); err != nil {
					return err
				}
				last = n
			}
		case <-t.failed:
			return fail(t.err)
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-eof:
			stop = true
		}
	}
	if err := cons.stop(); err != nil {
		return fail(err)
	}
	if err := t.failure(); err != nil {
		return fail(err)
	}
	runtime.ReadMemStats(&memStop)
	final := t.final()
	final.Mallocs, final.Bytes = memStop.Mallocs-memStart.Mallocs, memStop.TotalAlloc-memStart.TotalAlloc
	final.PeakAnonBytes = anon.peakNow()
	return enc.Encode(workerMsg{Handled: t.handled.Load(), Final: final})
}

// startWorkerConsumer starts the consumer of spec.Impl on the run's
// queues, on a connection of its own, which closeConn closes.
func startWorkerConsumer(ctx context.Context, spec workerSpec, cfg Config, s sink) (cons stopper, closeConn func(), err error) {
	keys := routingKeys(cfg.Queues)
	switch spec.Impl {
	case ImplWarren:
		bq, err := parseBenchQueue(spec.Name, cfg.QueueType, cfg.Queues, keys)
		if err != nil {
			return nil, nil, err
		}
		conn, err := broker.Dial(ctx, []string{cfg.URL}, broker.WithName("warren-bench-worker"))
		if err != nil {
			return nil, nil, err
		}
		// The pool's own sender, on its connection, takes its retries
		// and dead letters.
		wc, err := startWarrenConsumer(ctx, conn, nil, bq, cfg, s)
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		return wc, func() { conn.Close() }, nil
	case ImplBaseline, ImplBaselineBatched:
		conn, err := dial(cfg.URL, "warren-bench-baseline-worker")
		if err != nil {
			return nil, nil, err
		}
		ac, err := startAMQPConsumer(conn, cfg, queueNames(spec.Name, cfg.Queues), spec.Impl == ImplBaselineBatched, s)
		if err != nil {
			_ = conn.Close()
			return nil, nil, err
		}
		return ac, func() { _ = conn.Close() }, nil
	}
	return nil, nil, fmt.Errorf("no jobs implementation %q", spec.Impl)
}

// tally is a worker's sink: what it handled, by sequence number. Handled
// and Fail are safe for concurrent use.
type tally struct {
	latency     []atomic.Int64 // nanoseconds, by Seq; 0: not handled
	handled     atomic.Int64
	duplicates  atomic.Int64
	first, last atomic.Int64 // Unix nanoseconds

	failOnce sync.Once
	failed   chan struct{}
	err      error
}

func newTally(jobs int) *tally {
	return &tally{latency: make([]atomic.Int64, jobs), failed: make(chan struct{})}
}

func (t *tally) Handled(seq int, sentAt int64) {
	now := time.Now().UnixNano()
	if seq < 0 || seq >= len(t.latency) {
		t.Fail(fmt.Errorf("handled a job with sequence number %d, outside 0..%d", seq, len(t.latency)-1))
		return
	}
	// At least 1, so that 0 means "never handled".
	if !t.latency[seq].CompareAndSwap(0, max(now-sentAt, 1)) {
		t.duplicates.Add(1)
	}
	t.first.CompareAndSwap(0, now)
	for l := t.last.Load(); now > l && !t.last.CompareAndSwap(l, now); l = t.last.Load() {
	}
	t.handled.Add(1)
}

func (t *tally) Fail(err error) {
	t.failOnce.Do(func() {
		t.err = err
		close(t.failed)
	})
}

func (t *tally) failure() error {
	select {
	case <-t.failed:
		return t.err
	default:
		return nil
	}
}

// final returns what the worker handled, once its handlers returned.
func (t *tally) final() *workerFinal {
	f := &workerFinal{Seqs: []int{}, LatencyNanos: []int64{}, Duplicates: t.duplicates.Load(),
		FirstNanos: t.first.Load(), LastNanos: t.last.Load()}
	for seq := range t.latency {
		if l := t.latency[seq].Load(); l != 0 {
			f.Seqs = append(f.Seqs, seq)
			f.LatencyNanos = append(f.LatencyNanos, l)
		}
	}
	return f
}

// workerSet is a run's worker processes, each consuming every queue.
type workerSet struct {
	rec   *Recorder
	procs []*workerProc
	// progress wakes wait when a worker's count changed or a worker
	// ended; buffered 1, since wait reads every count anew.
	progress chan struct{}
	done     bool // stopped or aborted
}

// workerProc is one worker process, and what it reported.
type workerProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  bytes.Buffer // read after cmd.Wait
	handled atomic.Int64
	ready   chan struct{} // closed at the worker's ready message
	// readyCPU is written before ready is closed; final and err before
	// exited is closed, when the worker's stdout ended.
	readyCPU time.Duration
	final    *workerFinal
	err      error
	exited   chan struct{}
}

// startWorkers starts cfg.Workers worker processes of the implementation
// and run named by spec, and waits until each consumes every queue. Each
// is this process's executable run with WorkerArgs and WorkerEnv; ctx
// ending kills them.
func startWorkers(ctx context.Context, cfg Config, spec workerSpec, rec *Recorder) (*workerSet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this executable, to start the workers: %w", err)
	}
	spec.URL, spec.QueueType, spec.Queues, spec.Jobs, spec.Prefetch, spec.Concurrency =
		cfg.URL, cfg.QueueType, cfg.Queues, cfg.Jobs, cfg.Prefetch, cfg.Concurrency
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	ws := &workerSet{rec: rec, progress: make(chan struct{}, 1)}
	for i := range cfg.Workers {
		p := &workerProc{ready: make(chan struct{}), exited: make(chan struct{})}
		p.cmd = exec.CommandContext(ctx, exe, WorkerArgs...)
		p.cmd.Env = append(os.Environ(), WorkerEnv+"="+string(b))
		p.cmd.Stderr = &p.stderr
		stdout, err := p.cmd.StdoutPipe()
		if err == nil {
			p.stdin, err = p.cmd.StdinPipe()
		}
		if err == nil {
			err = p.cmd.Start()
		}
		if err != nil {
			ws.abort()
			return nil, fmt.Errorf("start worker %d: %w", i, err)
		}
		ws.procs = append(ws.procs, p)
		go p.read(stdout, ws.progress)
	}
	for i, p := range ws.procs {
		select {
		case <-p.ready:
		case <-p.exited:
			return nil, ws.failed(i)
		case <-ctx.Done():
			ws.abort()
			return nil, fmt.Errorf("waiting for worker %d to consume: %w", i, ctx.Err())
		}
	}
	return ws, nil
}

// read takes the worker's messages until its stdout ends, then closes
// exited. It wakes the run at each.
func (p *workerProc) read(stdout io.Reader, progress chan<- struct{}) {
	defer func() {
		close(p.exited)
		wake(progress)
	}()
	dec := json.NewDecoder(stdout)
	isReady := false
	for {
		var m workerMsg
		if err := dec.Decode(&m); err != nil {
			if !errors.Is(err, io.EOF) {
				p.err = fmt.Errorf("read the worker's report: %w", err)
			}
			return
		}
		switch {
		case m.Error != "":
			p.err = errors.New(m.Error)
		case m.Final != nil:
			p.final = m.Final
		case m.Ready && !isReady:
			isReady = true
			p.readyCPU = time.Duration(m.CPUNanos)
			close(p.ready)
		}
		p.handled.Store(m.Handled)
		wake(progress)
	}
}

// wake sends on c unless a wake-up is already pending.
func wake(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// wait blocks until the workers' counts add up to every job, a worker
// ended or ctx ended.
func (ws *workerSet) wait(ctx context.Context) error {
	for {
		var sum int64
		for i, p := range ws.procs {
			select {
			case <-p.exited:
				return ws.failed(i)
			default:
			}
			sum += p.handled.Load()
		}
		if sum >= int64(len(ws.rec.latency)) {
			return nil
		}
		select {
		case <-ws.progress:
		case <-ws.rec.failed:
			return ws.rec.err
		case <-ctx.Done():
			return fmt.Errorf("%d of %d jobs handled when the wait ended: %w", sum, len(ws.rec.latency), ctx.Err())
		}
	}
}

// failed ends the workers after worker i ended before its time, and
// returns why it did.
func (ws *workerSet) failed(i int) error {
	ws.abort()
	p := ws.procs[i]
	err := p.err
	if err == nil {
		err = fmt.Errorf("it exited early (%v)", p.cmd.ProcessState)
	}
	return fmt.Errorf("worker %d: %w%s", i, err, stderrTail(&p.stderr))
}

// stop tells every worker to stop (its stdin ends), waits for their
// reports and exits, and adds what they handled, their CPU time since they
// were ready and their peak RSS to the run's Recorder.
func (ws *workerSet) stop() error {
	if ws.done {
		return nil
	}
	ws.done = true
	for _, p := range ws.procs {
		_ = p.stdin.Close()
	}
	var errs []error
	for i, p := range ws.procs {
		<-p.exited // the read is over: Wait may close stdout
		if err := p.cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w%s", i, cmpErr(p.err, err), stderrTail(&p.stderr)))
			continue
		}
		if p.err != nil || p.final == nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", i, cmpErr(p.err, errors.New("it exited without its report"))))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, p := range ws.procs {
		ps := p.cmd.ProcessState
		cpu := ps.UserTime() + ps.SystemTime() - p.readyCPU
		if err := ws.rec.merge(i, p.final, cpu, processMaxRSS(ps)); err != nil {
			return err
		}
	}
	return nil
}

// abort kills the workers of a failed run and waits for them.
func (ws *workerSet) abort() {
	if ws.done {
		return
	}
	ws.done = true
	for _, p := range ws.procs {
		_ = p.cmd.Process.Kill()
		_ = p.stdin.Close()
	}
	for _, p := range ws.procs {
		<-p.exited
		_ = p.cmd.Wait()
	}
}

// cmpErr returns the first error that is not nil.
func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// stderrTail returns the end of a worker's stderr, to quote in an error.
func stderrTail(b *bytes.Buffer) string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return ""
	}
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return "; its stderr: " + s
}
