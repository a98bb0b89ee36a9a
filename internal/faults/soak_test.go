//go:build faults && soak

package faults_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/rabbitnode"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// The soak run (make soak) is not part of the fault suite that CI runs: it
// is built only with the tags faults and soak together.
var (
	soakMinutesFlag = flag.Float64("soak.minutes", 0, "length of TestSoak's load, in minutes (default: $SOAK_MINUTES, else 10)")
	soakSeedFlag    = flag.Uint64("soak.seed", 0, "seed of TestSoak's faults and job mix (default: $SOAK_SEED, else the clock)")
)

// The load. Producers and callers run at a steady rate, not flat out: the
// point is hours of ordinary traffic through faults, not throughput.
const (
	soakProducers     = 8
	soakJobRate       = 200 // jobs/s, all producers together
	soakCallers       = 4
	soakCallRate      = 40 // calls/s, all callers together
	soakCallTimeout   = 5 * time.Second
	soakPublishBudget = 2 * time.Minute // a job not confirmed by then is given up (and counted)
	soakSampleEvery   = 30 * time.Second
	soakFaultMin      = 30 * time.Second
	soakFaultMax      = 90 * time.Second
	soakQuietEnd      = 15 * time.Second // no fault starts this close to the end of the load
	soakStuckAfter    = time.Minute      // a job confirmed this long ago and not settled is reported as stuck
	soakDrainTimeout  = 5 * time.Minute
	soakCallQueue     = "soak.calls"
	soakCallType      = "soak.call"
)

// TestSoak runs mixed load for SOAK_MINUTES (default 10) against a private
// node while random faults hit it, printing the ledger and the process's
// resources every 30 s. It fails when a confirmed job is lost, a reply
// reaches the wrong caller, a job ends in the wrong place, or goroutines,
// file descriptors or the heap grew without bound.
func TestSoak(t *testing.T) {
	length, seed := soakSettings(t)
	// The warm-up sample is the first one, before the first fault: the
	// jobs' whole cycle (retries after 1s, slow jobs up to 3s) has run many
	// times by then, and a fault's leftovers show against it.
	const warmUp = soakSampleEvery
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("soak: %s of load, seed %d (SOAK_SEED=%d repeats the faults and the job mix), started %s, %d CPUs, GOMAXPROCS %d, %s",
		length, seed, seed, time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.GOMAXPROCS(0), soakLoadAvg())

	n := rabbitnode.Start(t)
	r := newRun(t, []string{n.URL()}, "quorum")
	t.Logf("soak: load: %d producers, %d jobs/s in all (88%% succeed, 8%% fail once and are retried, 2%% fail for good, 2%% take 0.5-3s), into %s (quorum); %d callers, %d calls/s in all (5%% fail as asked), %s timeout, answered from %s (classic); a fault every %s-%s, none in the last %s",
		soakProducers, soakJobRate, r.queue, soakCallers, soakCallRate, soakCallTimeout, soakCallQueue, soakFaultMin, soakFaultMax, soakQuietEnd)
	callTopo := soakDeclareCalls(t, r)
	// Declarations reach the node's disk up to 2s late: a Kill sooner
	// would lose queues (see faults_test.go).
	n.SyncMetadata(t)

	s := &soak{t: t, r: r, seed: seed, ledger: newSoakLedger(), start: time.Now()}
	s.startPools(callTopo)
	caller, err := broker.NewCaller(r.dial("soak-caller"), broker.WithCallRouter(callTopo), broker.WithCallLogger(r.log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caller.Close(context.Background()) })
	s.caller = caller
	s.awaitReady()
	idle := soakMeasure(s.ledger)

	s.start = time.Now()
	s.ledger.start = s.start
	s.startLoad()
	t.Cleanup(s.abortLoad) // when the test fails before the end
	sampler := s.startSampler(warmUp, length)
	t.Cleanup(sampler.stop)

	// Faults, from this goroutine (the node's methods fail the test).
	end := s.start.Add(length)
	next := s.start.Add(soakBetween(rng, warmUp+5*time.Second, soakFaultMax))
	for next.Before(end.Add(-soakQuietEnd)) {
		time.Sleep(time.Until(next))
		s.fault(n, rng)
		next = time.Now().Add(soakBetween(rng, soakFaultMin, soakFaultMax))
	}
	time.Sleep(time.Until(end))

	// The last sample, under load as the warm-up one was.
	sampler.stop()
	last := soakMeasure(s.ledger)
	s.logSample("end", last, "")
	s.stopLoad()

	// Everything confirmed must now be handled or parked.
	drainStart := time.Now()
	for s.ledger.counts().inFlight > 0 && time.Since(drainStart) < soakDrainTimeout {
		time.Sleep(100 * time.Millisecond)
	}
	drained := time.Since(drainStart)
	poolErrs := s.stopPools()
	caller.Close(context.Background())
	after := soakMeasure(s.ledger)

	s.summary(soakSummaryInput{
		length: length, warmUp: warmUp, drained: drained, poolErrs: poolErrs,
		idle: idle, warm: sampler.warm(), peak: sampler.peak(last), last: last, after: after,
		discarded: caller.Discarded(),
	})
}

// soakSettings reads the length of the load and the seed: flags first,
// then SOAK_MINUTES and SOAK_SEED.
func soakSettings(t *testing.T) (time.Duration, uint64) {
	t.Helper()
	minutes := *soakMinutesFlag
	if minutes == 0 {
		minutes = 10
		if v := os.Getenv("SOAK_MINUTES"); v != "" {
			m, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("SOAK_MINUTES=%q: want a number of minutes, e.g. SOAK_MINUTES=30", v)
			}
			minutes = m
		}
	}
	if minutes < 1 {
		t.Fatalf("a soak of %g minutes is too short to compare its resources after warm-up: give at least 1 (SOAK_MINUTES)", minutes)
	}
	seed := *soakSeedFlag
	if seed == 0 {
		if v := os.Getenv("SOAK_SEED"); v != "" {
			s, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("SOAK_SEED=%q: want an unsigned integer", v)
			}
			seed = s
		} else {
			seed = uint64(time.Now().UnixNano())
		}
	}
	return time.Duration(minutes * float64(time.Minute)), seed
}

// soakDeclareCalls declares the request queue, beside newRun's work queue,
// and returns its topology.
func soakDeclareCalls(t *testing.T, r *run) *topology.Topology {
	t.Helper()
	text := fmt.Sprintf(`version: 1
exchanges:
  soak: {type: direct}
queues:
  %s:
    type: classic
    retry: {max_attempts: 1}
bindings:
  - exchange: soak
    queue: %s
    routing_keys: [%s]
routes:
  %s: {exchange: soak}
`, soakCallQueue, soakCallQueue, soakCallType, soakCallType)
	topo, err := topology.Parse("soak.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	conn := r.dial("soak-declare")
	ctx := brokertest.Context(t, time.Minute)
	d := broker.NewDeclarer(conn)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		t.Fatalf("declare: %v", err)
	}
	d.Close(ctx)
	conn.Close()
	return topo
}

// soak is one soak run: newRun's queue, connections and publisher, a
// request queue, the pools, the load and its ledger.
type soak struct {
	t      *testing.T
	r      *run
	seed   uint64
	start  time.Time
	ledger *soakLedger
	calls  soakCalls
	caller *broker.Caller

	pools    []*soakPool
	outcomes [2][soakLastStatus + 1]atomic.Int64 // by pool (work, calls) and status

	stopc     chan struct{} // closed: start no new job or call
	abort     context.CancelFunc
	abortCtx  context.Context
	load      sync.WaitGroup
	stopOnce  sync.Once
	abortOnce sync.Once

	faultsMu sync.Mutex
	faults   []string // one line per fault injected
}

// soakLastStatus is the last worker.Status.
const soakLastStatus = worker.Expired

// The kinds of jobs: most succeed, some fail once and succeed on their
// retry (through the broker's delay cascade), a few fail for good (parked
// in the dead-letter queue), a few are slow.
type soakKind uint8

const (
	soakOK soakKind = iota
	soakFlaky
	soakPermanent
	soakSlow
)

func (k soakKind) String() string {
	return [...]string{"ok", "flaky", "permanent", "slow"}[k]
}

// soakDraw picks a kind: 88% ok, 8% flaky, 2% permanent, 2% slow.
func soakDraw(rng *rand.Rand) soakKind {
	switch p := rng.IntN(100); {
	case p < 2:
		return soakPermanent
	case p < 4:
		return soakSlow
	case p < 12:
		return soakFlaky
	default:
		return soakOK
	}
}

// soakPayload is a job's payload, about 200 bytes encoded.
type soakPayload struct {
	Kind   soakKind `msgpack:"kind"`
	SlowMS int      `msgpack:"slow_ms,omitempty"`
	Seq    int      `msgpack:"seq"`
	Pad    string   `msgpack:"pad"`
}

var soakPad = strings.Repeat("w", 160)

// soakRequest and soakAnswer are a call and its reply: the answer echoes
// the request, so a reply delivered to the wrong caller is seen.
type soakRequest struct {
	Caller int    `msgpack:"caller"`
	Seq    int    `msgpack:"seq"`
	Nonce  uint64 `msgpack:"nonce"`
	Fail   bool   `msgpack:"fail"` // the worker fails it for good: the caller gets a *broker.RemoteError
}

type soakAnswer struct {
	Caller int    `msgpack:"caller"`
	Seq    int    `msgpack:"seq"`
	Nonce  uint64 `msgpack:"nonce"`
}

// soakCalls counts what became of the calls.
type soakCalls struct {
	ok, remote, timeout, failed, wrong atomic.Int64
	mu                                 sync.Mutex
	firstFailed, firstWrong            string
}

func (c *soakCalls) note(first *string, msg string) {
	c.mu.Lock()
	if *first == "" {
		*first = msg
	}
	c.mu.Unlock()
}

// soakPool is a pool running, and how it ended.
type soakPool struct {
	name   string
	pool   *worker.Pool
	cancel context.CancelFunc
	errc   chan error
	ended  atomic.Bool // Run returned before it was asked to
}

func (s *soak) startPools(callTopo *topology.Topology) {
	r := s.r
	observe := func(i int) worker.Option {
		return worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) {
			if o.Status >= 1 && o.Status <= soakLastStatus {
				s.outcomes[i][o.Status].Add(1)
			}
			if i == 0 && o.Status == worker.DeadLettered {
				s.ledger.park(o.JobID)
			}
		}))
	}
	work := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		var p soakPayload
		if err := job.Decode(&p); err != nil {
			return err
		}
		switch p.Kind {
		case soakFlaky:
			if job.Attempt == 1 {
				return errors.New("soak: a flaky job fails its first attempt")
			}
		case soakPermanent:
			return worker.Permanent(errors.New("soak: this job always fails"))
		case soakSlow:
			select {
			case <-time.After(time.Duration(p.SlowMS) * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		s.ledger.handle(job.ID, p.Kind)
		return nil
	})
	mux := worker.NewMux()
	mux.Handle(soakCallType, worker.TypedResult(func(ctx context.Context, job *worker.Job, req soakRequest) (soakAnswer, error) {
		if req.Fail {
			return soakAnswer{}, worker.Permanent(errors.New("soak: this call fails, as asked"))
		}
		return soakAnswer{Caller: req.Caller, Seq: req.Seq, Nonce: req.Nonce}, nil
	}))
	s.runPool("work", r.topo, work, worker.WithQueue(r.queue, worker.Concurrency(32), worker.Prefetch(64)), observe(0))
	s.runPool("calls", callTopo, mux, worker.WithQueue(soakCallQueue, worker.Concurrency(8)), observe(1))
}

func (s *soak) runPool(name string, topo *topology.Topology, h worker.Handler, opts ...worker.Option) {
	opts = append([]worker.Option{worker.WithSender(s.r.snd), worker.WithLogger(s.r.log)}, opts...)
	pool, err := worker.NewPool(s.r.workConn, topo, h, opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &soakPool{name: name, pool: pool, cancel: cancel, errc: make(chan error, 1)}
	go func() {
		err := pool.Run(ctx)
		if ctx.Err() == nil {
			p.ended.Store(true)
		}
		p.errc <- err
	}()
	s.pools = append(s.pools, p)
	s.t.Cleanup(func() { s.stopPool(p) })
}

// awaitReady waits until every pool consumes its queue.
func (s *soak) awaitReady() {
	deadline := time.Now().Add(time.Minute)
	for _, p := range s.pools {
		for p.pool.Ready() != nil {
			if time.Now().After(deadline) {
				s.t.Fatalf("pool %s: %v", p.name, p.pool.Ready())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// stopPool stops p once and returns Run's error (nil when it was already
// collected).
func (s *soak) stopPool(p *soakPool) error {
	p.cancel()
	select {
	case err, ok := <-p.errc:
		if ok {
			close(p.errc)
		}
		return err
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("pool %s: Run did not return within 2 minutes of its ctx ending", p.name)
	}
}

func (s *soak) stopPools() []string {
	var errs []string
	for _, p := range s.pools {
		if p.ended.Load() {
			errs = append(errs, fmt.Sprintf("pool %s: Run returned during the load", p.name))
		}
		if err := s.stopPool(p); err != nil {
			errs = append(errs, fmt.Sprintf("pool %s: %v", p.name, err))
		}
	}
	return errs
}

// startLoad starts the producers and the callers, each at a steady rate:
// one job (or call) per tick, a tick missed while a publish waits is
// skipped, so the load never bursts to catch up after a fault.
func (s *soak) startLoad() {
	s.stopc = make(chan struct{})
	s.abortCtx, s.abort = context.WithCancel(context.Background())
	for i := range soakProducers {
		rng := rand.New(rand.NewPCG(s.seed, uint64(1+i)))
		s.load.Add(1)
		go func() {
			defer s.load.Done()
			s.every(time.Second*soakProducers/soakJobRate, func() { s.produce(rng) })
		}()
	}
	for i := range soakCallers {
		rng := rand.New(rand.NewPCG(s.seed, uint64(1000+i)))
		s.load.Add(1)
		go func() {
			defer s.load.Done()
			seq := 0
			s.every(time.Second*soakCallers/soakCallRate, func() {
				seq++
				s.call(rng, i, seq)
			})
		}()
	}
}

func (s *soak) every(d time.Duration, fn func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-s.stopc:
			return
		case <-tick.C:
			fn()
		}
	}
}

// stopLoad lets the producers and callers finish what they started (a job
// being published is published, within its budget) and waits for them.
func (s *soak) stopLoad() {
	s.stopOnce.Do(func() { close(s.stopc) })
	s.load.Wait()
}

// abortLoad stops the load at once: the test ended early.
func (s *soak) abortLoad() {
	if s.abort == nil {
		return
	}
	s.abortOnce.Do(s.abort)
	s.stopLoad()
}

// produce publishes one job, again with the same id after an error (a
// lost confirm, a closed connection, a nack), as a producer must, until it
// is confirmed or its budget is spent.
func (s *soak) produce(rng *rand.Rand) {
	kind := soakDraw(rng)
	seq := s.ledger.add(kind)
	p := soakPayload{Kind: kind, Seq: seq, Pad: soakPad}
	if kind == soakSlow {
		p.SlowMS = 500 + rng.IntN(2500)
	}
	job := broker.Job{ID: soakJobID(seq), Type: "fault.job", Payload: p}
	deadline := time.Now().Add(soakPublishBudget)
	for {
		ctx, cancel := context.WithTimeout(s.abortCtx, 30*time.Second)
		err := s.r.pub.Publish(ctx, job)
		cancel()
		if err == nil {
			s.ledger.confirm(seq)
			return
		}
		if errors.Is(err, broker.ErrInvalidJob) || time.Now().After(deadline) || s.abortCtx.Err() != nil {
			s.ledger.giveUp(seq, err)
			return
		}
		s.ledger.republish(err)
		select {
		case <-time.After(250 * time.Millisecond):
		case <-s.abortCtx.Done():
		}
	}
}

// call makes one call and checks that its reply is its own.
func (s *soak) call(rng *rand.Rand, caller, seq int) {
	req := soakRequest{Caller: caller, Seq: seq, Nonce: rng.Uint64(), Fail: rng.IntN(100) < 5}
	id := fmt.Sprintf("call-%d-%d", caller, seq)
	ctx, cancel := context.WithTimeout(s.abortCtx, soakCallTimeout)
	reply, err := s.caller.Call(ctx, broker.Job{ID: id, Type: soakCallType, Payload: req})
	cancel()
	c := &s.calls
	var remote *broker.RemoteError
	switch {
	case err == nil:
		var got soakAnswer
		if derr := reply.Decode(&got); derr != nil || req.Fail || got != (soakAnswer{Caller: req.Caller, Seq: req.Seq, Nonce: req.Nonce}) {
			c.wrong.Add(1)
			c.note(&c.firstWrong, fmt.Sprintf("call %s (fail %v) got reply %+v (decode error %v)", id, req.Fail, got, derr))
			return
		}
		c.ok.Add(1)
	case errors.As(err, &remote):
		if !req.Fail || remote.RequestID != id {
			c.wrong.Add(1)
			c.note(&c.firstWrong, fmt.Sprintf("call %s (fail %v) got remote error for %s: %v", id, req.Fail, remote.RequestID, remote))
			return
		}
		c.remote.Add(1)
	case errors.Is(err, broker.ErrReplyTimeout):
		c.timeout.Add(1)
	default:
		c.failed.Add(1)
		c.note(&c.firstFailed, err.Error())
	}
}

// fault injects one fault, chosen at random, and waits for its end.
func (s *soak) fault(n *rabbitnode.Node, rng *rand.Rand) {
	t := s.t
	at := time.Now()
	var what string
	switch rng.IntN(4) {
	case 0:
		down := soakBetween(rng, time.Second, 3*time.Second)
		what = fmt.Sprintf("kill -9, restart after %s", down.Round(100*time.Millisecond))
		n.Kill(t)
		time.Sleep(down)
		n.Restart(t)
	case 1:
		down := soakBetween(rng, time.Second, 5*time.Second)
		what = fmt.Sprintf("stop_app, start_app after %s", down.Round(100*time.Millisecond))
		n.StopApp(t)
		time.Sleep(down)
		n.StartApp(t)
	case 2:
		what = "close_all_connections"
		n.CloseAllConnections(t, "soak")
	case 3:
		on := soakBetween(rng, 2*time.Second, 8*time.Second)
		what = fmt.Sprintf("memory alarm for %s", on.Round(100*time.Millisecond))
		n.SetMemoryAlarm(t, true)
		time.Sleep(on)
		n.SetMemoryAlarm(t, false)
	}
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	line := fmt.Sprintf("%s fault %d: %s (%s)", soakClock(at.Sub(s.start)), len(s.faults)+1, what, time.Since(at).Round(100*time.Millisecond))
	s.faults = append(s.faults, line)
	t.Logf("soak: %s", line)
}

func (s *soak) faultCount() int {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	return len(s.faults)
}

// soakSampler logs a line every soakSampleEvery and keeps the warm-up
// sample and the peak.
type soakSampler struct {
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	mu   sync.Mutex
	w    *soakResources
	p    soakResources
}

func (s *soak) startSampler(warmUp, length time.Duration) *soakSampler {
	sm := &soakSampler{done: make(chan struct{})}
	s.logHeader()
	sm.wg.Add(1)
	go func() {
		defer sm.wg.Done()
		tick := time.NewTicker(soakSampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-sm.done:
				return
			case <-tick.C:
			}
			if time.Since(s.start) > length-5*time.Second {
				continue // the end's sample comes at once
			}
			res := soakMeasure(s.ledger)
			note := ""
			sm.mu.Lock()
			sm.p = sm.p.max(res)
			if sm.w == nil && time.Since(s.start) >= warmUp-time.Second {
				sm.w = &res
				note = "warm-up"
			}
			sm.mu.Unlock()
			s.logSample(soakClock(time.Since(s.start)), res, note)
		}
	}()
	return sm
}

func (sm *soakSampler) stop() {
	sm.once.Do(func() { close(sm.done) })
	sm.wg.Wait()
}

func (sm *soakSampler) warm() soakResources {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.w == nil {
		return soakResources{}
	}
	return *sm.w
}

func (sm *soakSampler) peak(last soakResources) soakResources {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.p.max(last)
}

const soakColumns = "%-7s %9s %9s %5s %6s %9s %6s | %7s %7s %7s %6s %5s | %7s %7s %7s %5s %4s | %6s %s"

func (s *soak) logHeader() {
	s.t.Logf("soak: "+soakColumns, "time", "confirmed", "handled", "dups", "parked", "in-flight", "stuck",
		"calls", "timeout", "failed", "wrong", "late",
		"heapMiB", "sysMiB", "rssMiB", "gorou", "fds", "faults", "")
}

func (s *soak) logSample(when string, res soakResources, note string) {
	c := s.ledger.counts()
	calls := &s.calls
	s.t.Logf("soak: "+soakColumns, when,
		strconv.Itoa(c.confirmed), strconv.Itoa(c.handled), strconv.Itoa(c.dups), strconv.Itoa(c.parked),
		strconv.Itoa(c.inFlight), strconv.Itoa(c.stuck),
		strconv.FormatInt(calls.ok.Load()+calls.remote.Load(), 10), strconv.FormatInt(calls.timeout.Load(), 10),
		strconv.FormatInt(calls.failed.Load(), 10), strconv.FormatInt(calls.wrong.Load(), 10),
		strconv.FormatUint(s.caller.Discarded(), 10),
		soakMiB(res.heapInuse), soakMiB(res.sys), soakMiB(res.rss),
		strconv.Itoa(res.goroutines), strconv.Itoa(res.fds), strconv.Itoa(s.faultCount()), note)
}

type soakSummaryInput struct {
	length, warmUp, drained       time.Duration
	poolErrs                      []string
	idle, warm, peak, last, after soakResources
	discarded                     uint64
}

// The limits on growth, last sample against the warm-up one, both taken
// under the same load after a forced GC (so the heap is what is live, not
// what the collector has not yet swept):
//   - goroutines: warm-up + 25. The pools run a fixed number of handler
//     goroutines and the producers and callers are fixed too; what varies
//     is a handful of short-lived ones (amqp091-go's per-call helpers, ack
//     timers, a reconnection in progress). A leak of one goroutine per
//     connection per fault (three connections, a fault a minute) passes 25
//     within ten minutes.
//   - file descriptors: warm-up + 10. Three AMQP connections, epoll, the
//     node's pipes; a socket left open per reconnection passes 10 after a
//     few faults.
//   - heap in use, less the soak's ledger: 2x warm-up. The ledger grows
//     by 12 bytes per job by design (1.4 MiB in ten minutes, against a live
//     heap of a few MiB), so it is measured and left out. Everything else
//     live is bounded by the load (prefetch, confirms outstanding, handlers
//     in flight), which is the same at both samples; after a forced GC the
//     live heap varies by a few percent between samples, while anything
//     kept per job (200 jobs/s) doubles a few-MiB heap within minutes.
const (
	soakGoroutineSlack = 25
	soakFDSlack        = 10
	soakHeapFactor     = 2
)

func (s *soak) summary(in soakSummaryInput) {
	t := s.t
	c := s.ledger.counts()
	l := s.ledger
	l.mu.Lock()
	byKind := l.byKind
	republished, gaveUp, foreign, misplaced := l.republished, l.gaveUp, l.foreign, l.misplaced
	firstPubErr, firstMisplaced := l.firstPubErr, l.firstMisplaced
	l.mu.Unlock()

	t.Logf("soak: summary: %s of load, seed %d, %d faults, drained in %s, %s", in.length, s.seed, s.faultCount(), in.drained.Round(100*time.Millisecond), soakLoadAvg())
	s.faultsMu.Lock()
	for _, f := range s.faults {
		t.Logf("soak:   %s", f)
	}
	s.faultsMu.Unlock()
	t.Logf("soak: ledger: confirmed %d (ok %d, flaky %d, permanent %d, slow %d), handled %d distinct (%d twice or more, %d extra handlings), dead-lettered %d, lost %d",
		c.confirmed, byKind[soakOK], byKind[soakFlaky], byKind[soakPermanent], byKind[soakSlow],
		c.handled, c.dupJobs, c.dups, c.parked, c.inFlight)
	t.Logf("soak: ledger: publishes retried with the same id %d, jobs given up unconfirmed %d, handled though never confirmed %d, misplaced %d, foreign %d",
		republished, gaveUp, c.handledUnconfirmed, misplaced, foreign)
	if firstPubErr != "" {
		t.Logf("soak: first publish error: %s", firstPubErr)
	}
	calls := &s.calls
	t.Logf("soak: calls: ok %d, failed as asked %d, timed out %d, failed %d, wrong reply %d, late replies discarded %d",
		calls.ok.Load(), calls.remote.Load(), calls.timeout.Load(), calls.failed.Load(), calls.wrong.Load(), in.discarded)
	if calls.firstFailed != "" {
		t.Logf("soak: first failed call: %s", calls.firstFailed)
	}
	for i, name := range []string{"work", "calls"} {
		var parts []string
		for st := worker.Succeeded; st <= soakLastStatus; st++ {
			parts = append(parts, fmt.Sprintf("%s %d", strings.ToLower(st.String()), s.outcomes[i][st].Load()))
		}
		t.Logf("soak: pool %s outcomes: %s", name, strings.Join(parts, ", "))
	}

	goroutineLimit := in.warm.goroutines + soakGoroutineSlack
	fdLimit := in.warm.fds + soakFDSlack
	heapLimit := soakHeapFactor * in.warm.heap()
	t.Logf("soak: resources          heapMiB (less ledger)  sysMiB  rssMiB  goroutines  fds")
	for _, row := range []struct {
		name string
		r    soakResources
	}{{"idle (before load)", in.idle}, {"warm-up (" + soakClock(in.warmUp) + ")", in.warm}, {"peak", in.peak}, {"last (" + soakClock(in.length) + ")", in.last}, {"stopped", in.after}} {
		t.Logf("soak:   %-20s %7s %13s  %6s  %6s  %10d  %3d", row.name, soakMiB(row.r.heapInuse), "("+soakMiB(row.r.heap())+")", soakMiB(row.r.sys), soakMiB(row.r.rss), row.r.goroutines, row.r.fds)
	}
	t.Logf("soak:   %-20s %7s %13s  %6s  %6s  %10d  %3d", "limit for last", "-", "("+soakMiB(heapLimit)+")", "-", "-", goroutineLimit, fdLimit)

	if c.inFlight != 0 {
		t.Errorf("lost %d confirmed jobs (neither handled nor dead-lettered %s after the load stopped); first: %s", c.inFlight, soakDrainTimeout, l.firstUnsettled())
	}
	if misplaced != 0 {
		t.Errorf("%d jobs ended in the wrong place (a job that should succeed dead-lettered, or one that always fails handled); first: %s", misplaced, firstMisplaced)
	}
	if foreign != 0 {
		t.Errorf("%d deliveries of jobs the soak never published", foreign)
	}
	if n := calls.wrong.Load(); n != 0 {
		t.Errorf("%d calls got a reply that was not theirs; first: %s", n, calls.firstWrong)
	}
	for _, e := range in.poolErrs {
		t.Error(e)
	}
	if in.last.goroutines > goroutineLimit {
		t.Errorf("goroutines grew from %d after warm-up to %d at the end (limit %d)", in.warm.goroutines, in.last.goroutines, goroutineLimit)
	}
	if in.last.fds > fdLimit {
		t.Errorf("open file descriptors grew from %d after warm-up to %d at the end (limit %d)", in.warm.fds, in.last.fds, fdLimit)
	}
	if in.last.heap() > heapLimit {
		t.Errorf("heap in use (less the soak's ledger) grew from %s MiB after warm-up to %s MiB at the end (limit %s MiB)", soakMiB(in.warm.heap()), soakMiB(in.last.heap()), soakMiB(heapLimit))
	}
}

// soakLedger is the ledger of a soak: the fault suite's ledger keeps a map
// entry per job id, which over a long run would grow the heap by tens of
// megabytes and hide (or fake) a leak of warren's. This one keeps 12 bytes
// per job, indexed by the job's number, which is in its id.
type soakLedger struct {
	start time.Time
	mu    sync.Mutex
	pages [][]soakEntry
	n     int // jobs added

	byKind                                  [4]int // confirmed, by kind
	confirmed, handled, dupJobs, dups       int
	parked, handledUnconfirmed              int
	republished, gaveUp, foreign, misplaced int
	firstPubErr, firstMisplaced             string
}

type soakEntry struct {
	kind      soakKind
	confirmed bool
	handled   uint16
	parked    uint16
	at        uint32 // when it was confirmed, in ms since the start
}

const soakPage = 1 << 14

func newSoakLedger() *soakLedger { return &soakLedger{start: time.Now()} }

// bytes is the size of the ledger's pages.
func (l *soakLedger) bytes() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.pages)) * soakPage * uint64(unsafe.Sizeof(soakEntry{}))
}

func soakJobID(seq int) string { return "soak-" + strconv.Itoa(seq) }

func (l *soakLedger) entry(seq int) *soakEntry { return &l.pages[seq/soakPage][seq%soakPage] }

// lookup returns the entry of a job id, nil (counted) for an id the soak
// never gave out. Under l.mu.
func (l *soakLedger) lookup(id string) *soakEntry {
	if s, ok := strings.CutPrefix(id, "soak-"); ok {
		if seq, err := strconv.Atoi(s); err == nil && seq >= 0 && seq < l.n {
			return l.entry(seq)
		}
	}
	l.foreign++
	return nil
}

func (l *soakLedger) add(kind soakKind) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := l.n
	if seq%soakPage == 0 {
		l.pages = append(l.pages, make([]soakEntry, soakPage))
	}
	l.n++
	l.entry(seq).kind = kind
	return seq
}

func (l *soakLedger) confirm(seq int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(seq)
	e.confirmed = true
	e.at = uint32(time.Since(l.start).Milliseconds())
	l.confirmed++
	l.byKind[e.kind]++
	if e.handled > 0 {
		l.handledUnconfirmed-- // handled before its confirm arrived
	}
}

func (l *soakLedger) republish(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.republished++
	if l.firstPubErr == "" {
		l.firstPubErr = err.Error()
	}
}

func (l *soakLedger) giveUp(seq int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gaveUp++
	if l.firstPubErr == "" {
		l.firstPubErr = err.Error()
	}
}

func (l *soakLedger) handle(id string, kind soakKind) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.lookup(id)
	if e == nil {
		return
	}
	if e.kind != kind || kind == soakPermanent {
		l.misplace(fmt.Sprintf("job %s of kind %s (payload says %s) was handled", id, e.kind, kind))
	}
	e.handled++
	switch {
	case e.handled == 1:
		l.handled++
		if !e.confirmed {
			l.handledUnconfirmed++
		}
	case e.handled == 2:
		l.dupJobs++
		l.dups++
	default:
		l.dups++
	}
}

func (l *soakLedger) park(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.lookup(id)
	if e == nil {
		return
	}
	if e.kind != soakPermanent {
		l.misplace(fmt.Sprintf("job %s of kind %s was dead-lettered", id, e.kind))
	}
	e.parked++
	if e.parked == 1 {
		l.parked++
	}
}

func (l *soakLedger) misplace(what string) {
	l.misplaced++
	if l.firstMisplaced == "" {
		l.firstMisplaced = what
	}
}

// soakCounts is the ledger at one moment. inFlight is the confirmed jobs
// neither handled nor parked yet: lost, if they stay so once the load has
// stopped and the queues drained. stuck is those confirmed over
// soakStuckAfter ago.
type soakCounts struct {
	confirmed, handled, dupJobs, dups, parked, handledUnconfirmed int
	inFlight, stuck                                               int
}

func (l *soakLedger) counts() soakCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := soakCounts{confirmed: l.confirmed, handled: l.handled, dupJobs: l.dupJobs, dups: l.dups, parked: l.parked, handledUnconfirmed: l.handledUnconfirmed}
	old := uint32(max(0, time.Since(l.start)-soakStuckAfter).Milliseconds())
	for seq := range l.n {
		e := l.entry(seq)
		if e.confirmed && e.handled == 0 && e.parked == 0 {
			c.inFlight++
			if e.at < old {
				c.stuck++
			}
		}
	}
	return c
}

func (l *soakLedger) firstUnsettled() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for seq := range l.n {
		if e := l.entry(seq); e.confirmed && e.handled == 0 && e.parked == 0 {
			return fmt.Sprintf("%s (%s, confirmed at %s)", soakJobID(seq), e.kind, soakClock(time.Duration(e.at)*time.Millisecond))
		}
	}
	return "none"
}

// soakResources is what the process uses; ledger is the part of the heap
// that the soak's ledger takes.
type soakResources struct {
	heapInuse, sys, rss, ledger uint64
	goroutines, fds             int
}

// soakMeasure collects garbage first, so that the heap in use is what is
// live and samples compare.
func soakMeasure(l *soakLedger) soakResources {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := soakResources{heapInuse: ms.HeapInuse, sys: ms.Sys, ledger: l.bytes(), goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range bytes.Lines(b) {
			if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
				r.rss = kb << 10
			}
		}
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		r.fds = len(fds) - 1 // not the directory ReadDir itself opened
	}
	return r
}

func (a soakResources) max(b soakResources) soakResources {
	return soakResources{heapInuse: max(a.heapInuse, b.heapInuse), sys: max(a.sys, b.sys), rss: max(a.rss, b.rss),
		ledger: max(a.ledger, b.ledger), goroutines: max(a.goroutines, b.goroutines), fds: max(a.fds, b.fds)}
}

// heap is the heap in use less the soak's ledger: warren's, and the
// soak's fixed part.
func (a soakResources) heap() uint64 {
	return a.heapInuse - min(a.ledger, a.heapInuse)
}

func soakMiB(b uint64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) }

func soakClock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%02d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

func soakBetween(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// soakLoadAvg is the machine's load average, as /proc/loadavg gives it: the
// soak shares its cores with the broker and whatever else runs.
func soakLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load average " + strings.Join(f[:3], " ")
}
