//go:build faults

package faults_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/rabbitnode"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// TestQueueDeletedUnderConsumer: an operator deletes the work queue while
// producers publish into it and the pool consumes it. The pool's Run
// returns soon with an error that names the queue and wraps
// broker.ErrConsumerCancelled (it does not idle, looking healthy), Ready
// says not ready, and every publish begun after the deletion fails with
// ErrUnroutable (nothing is bound any more) instead of returning nil.
//
// The ledger: the jobs confirmed before the deletion and not handled were
// deleted with the queue by the operator. Their ids cannot be read back
// (they are gone), only their count, which the broker returns in
// queue.delete-ok: the ready messages (those delivered to the pool and
// not yet acked are not counted; the pool handles them). So the check is
// by count:
//
//	confirmed = handled + dead-lettered + deleted with the queue
//
// That is exact in the "held" runs, where the producers wait while the
// queue is deleted (a few milliseconds; for a quorum queue the handlers
// wait too, see below). It cannot be exact while publishes and deliveries
// go on (the "flowing" runs), for reasons of RabbitMQ's:
//
//   - A job routed to the queue just before its bindings go can reach the
//     queue after the queue took the delete: it is dropped, uncounted, and
//     RabbitMQ confirms it all the same (rabbit_channel, on a queue's end
//     of life: "Deleted queue is a special case. Do not nack the
//     'rejected' messages."), so its Publish returns nil although no
//     queue holds it. Its publish overlapped the deletion, necessarily.
//   - A quorum queue counts its ready messages (rabbit_quorum_queue:delete
//     calls stat) before it deletes its Raft cluster: a job confirmed in
//     between is dropped uncounted (its publish, again, overlapped the
//     deletion), and a job delivered in between is both counted and
//     handled. Holding the handlers until the broker stops delivering
//     (the prefetch is full) removes the second case.
//
// So the flowing runs check what holds exactly:
//
//	confirmed before the deletion, not handled ≤ deleted with the queue
//	deleted with the queue ≤ confirmed before or during it, not handled
//	  (classic queues only: the second case above breaks it for quorum)
//
// and report the difference, the jobs whose Publish overlapped the
// deletion and returned nil, and that no queue held afterwards.
func TestQueueDeletedUnderConsumer(t *testing.T) {
	for _, tc := range []deletionCase{
		{queueType: "classic", held: true},
		{queueType: "classic"},
		{queueType: "quorum", held: true},
		{queueType: "quorum"},
	} {
		mode := "flowing"
		if tc.held {
			mode = "held"
		}
		t.Run(tc.queueType+"-"+mode, func(t *testing.T) { testQueueDeleted(t, tc) })
	}
}

type deletionCase struct {
	queueType string
	held      bool // nothing is published, nor (quorum) delivered, during the deletion
}

// holdHandlers says whether the handlers wait during the deletion too.
func (c deletionCase) holdHandlers() bool { return c.held && c.queueType == "quorum" }

// exactUpperBound says whether the queue's count cannot include a job
// handled (see TestQueueDeletedUnderConsumer).
func (c deletionCase) exactUpperBound() bool { return c.queueType == "classic" || c.held }

func testQueueDeleted(t *testing.T, tc deletionCase) {
	n := rabbitnode.Start(t)
	r := newRun(t, []string{n.URL()}, tc.queueType)
	// gate is held for reading by each publish (and each handler, when
	// they are held): the deletion locks it.
	var gate sync.RWMutex
	var handlerGate *sync.RWMutex
	if tc.holdHandlers() {
		handlerGate = &gate
	}
	// Handlers slower than the producers (8 at 5ms: 1600 jobs/s at most),
	// so that the queue holds a backlog when it is deleted.
	pool, runErrs := startDeletionPool(t, r, 5*time.Millisecond, handlerGate)
	pollUntil(t, 30*time.Second, "the pool to be ready", func() bool { return pool.Ready() == nil })
	p := startDeletionPublishers(t, r, producers, &gate, tc.held)
	r.after(2000)

	// The deletion, on a connection of its own, as an operator's tool.
	admin, err := amqp.Dial(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ch, err := admin.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if tc.held {
		gate.Lock()
		if tc.holdHandlers() {
			// A quorum queue counts its ready jobs before it deletes
			// itself: nothing may be delivered in between. The pool's
			// grouped acks go out within milliseconds; the broker then
			// fills the prefetch and delivers nothing more.
			time.Sleep(300 * time.Millisecond)
		}
	}
	delStart := time.Now()
	deletedWithQueue, err := ch.QueueDelete(r.queue, false, false, false)
	delEnd := time.Now()
	p.deleted.Store(&delEnd)
	if tc.held {
		gate.Unlock()
	}
	if err != nil {
		t.Fatalf("delete queue: %v", err)
	}

	// The pool notices: not ready, then Run returns an error.
	var notReadyAfter time.Duration
	pollUntil(t, 10*time.Second, "the pool to report not ready", func() bool {
		notReadyAfter = time.Since(delEnd)
		return pool.Ready() != nil
	})
	var runErr error
	select {
	case runErr = <-runErrs:
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return within 20s of the deletion of its queue: a silent idle worker (Ready: %v)", pool.Ready())
	}
	returnedAfter := time.Since(delEnd)
	switch {
	case runErr == nil:
		t.Errorf("Run returned nil after its queue was deleted, want an error wrapping ErrConsumerCancelled")
	case !errors.Is(runErr, broker.ErrConsumerCancelled) || !strings.Contains(runErr.Error(), r.queue):
		t.Errorf("Run = %v, want an error naming %q and wrapping ErrConsumerCancelled", runErr, r.queue)
	}
	if err := pool.Ready(); !errors.Is(err, worker.ErrNotReady) {
		t.Errorf("Ready = %v after Run returned, want ErrNotReady", err)
	}
	t.Logf("deletion took %s; the pool was not ready %s and Run returned %s after it: %v",
		delEnd.Sub(delStart).Round(time.Millisecond), notReadyAfter.Round(time.Millisecond), returnedAfter.Round(time.Millisecond), runErr)

	// Publishes go on for a while after the deletion; then the ledger.
	pollUntil(t, 30*time.Second, "publishes after the deletion", func() bool { return p.after.Load() >= 400 })
	p.stop()
	checkDeletionLedger(t, tc, r, p.records(), delStart, delEnd, deletedWithQueue)
}

// checkDeletionLedger classifies every publish by when it ran, relative to
// the deletion [delStart, delEnd], and checks the accounting described on
// TestQueueDeletedUnderConsumer.
func checkDeletionLedger(t *testing.T, tc deletionCase, r *run, recs []timedPublish, delStart, delEnd time.Time, deletedWithQueue int) {
	t.Helper()
	r.ledger.mu.Lock()
	defer r.ledger.mu.Unlock()
	type phase struct {
		confirmed  int
		notHandled int // confirmed, neither handled nor dead-lettered
		unroutable int
		uncertain  int // failed otherwise: the job may or may not be stored
	}
	var before, during, after phase
	confirmed := map[string]bool{}
	var afterNil []string
	var afterOther []error
	for _, rec := range recs {
		ph := &during
		switch {
		case rec.end.Before(delStart):
			ph = &before
		case rec.start.After(delEnd):
			ph = &after
		}
		switch {
		case rec.err == nil:
			ph.confirmed++
			confirmed[rec.id] = true
			if r.ledger.handled[rec.id] == 0 && r.ledger.parked[rec.id] == 0 {
				ph.notHandled++
			}
			if ph == &after {
				afterNil = append(afterNil, rec.id)
			}
		case errors.Is(rec.err, broker.ErrUnroutable):
			ph.unroutable++
		default:
			ph.uncertain++
			if ph == &after {
				afterOther = append(afterOther, rec.err)
			}
		}
	}
	unexpected, dups := 0, 0
	for id, n := range r.ledger.handled {
		if !confirmed[id] {
			unexpected++
		}
		dups += max(n-1, 0)
	}
	handled, parked := len(r.ledger.handled), len(r.ledger.parked)
	// Every job confirmed before the deletion and not handled must be
	// among those the queue held; the rest cannot be explained.
	lost := max(before.notHandled-deletedWithQueue, 0)
	// Confirmed during the deletion, neither handled nor counted.
	uncounted := before.notHandled + during.notHandled - deletedWithQueue
	failed := before.unroutable + before.uncertain + during.unroutable + during.uncertain + after.unroutable + after.uncertain
	t.Logf("ledger: confirmed %d (%d before the deletion, %d during it, %d after), handled %d distinct (%d twice or more), dead-lettered %d, "+
		"deleted with the queue %d, confirmed during the deletion and neither handled nor counted %d, "+
		"publishes that failed (reported to the producer) %d (unroutable: %d during the deletion, %d of %d after it), unexpected %d, lost %d",
		len(confirmed), before.confirmed, during.confirmed, after.confirmed, handled, dups, parked,
		deletedWithQueue, max(uncounted, 0),
		failed, during.unroutable, after.unroutable, after.unroutable+after.uncertain+after.confirmed, unexpected, lost)

	if len(afterNil) > 0 {
		t.Errorf("%d publishes begun after the deletion returned nil (e.g. job %s): a confirm for a job no queue holds", len(afterNil), afterNil[0])
	}
	if len(afterOther) > 0 {
		t.Errorf("%d publishes after the deletion failed with another error than ErrUnroutable, e.g. %v", len(afterOther), afterOther[0])
	}
	if after.unroutable == 0 {
		t.Error("no publish ran after the deletion: the test proves nothing about them")
	}
	if before.uncertain+before.unroutable > 0 {
		t.Errorf("%d publishes failed before the deletion, when nothing was wrong", before.uncertain+before.unroutable)
	}
	if lost > 0 {
		hint := ""
		if tc.queueType == "quorum" && deletedWithQueue == 0 {
			// rabbit_quorum_queue:stat gives up after 250ms and says 0.
			hint = " (or RabbitMQ's count of them timed out: a quorum queue reports 0 when its leader does not answer within 250ms)"
		}
		t.Errorf("%d jobs confirmed before the deletion were neither handled nor dead-lettered, but the queue held only %d when deleted: %d lost%s",
			before.notHandled, deletedWithQueue, lost, hint)
	}
	if upper := before.notHandled + during.notHandled + during.uncertain; tc.exactUpperBound() && deletedWithQueue > upper {
		t.Errorf("the queue held %d jobs when deleted, more than the %d published and not handled: jobs counted there and handled as well?", deletedWithQueue, upper)
	}
	if tc.held && uncounted != 0 {
		t.Errorf("nothing moved during the deletion, yet confirmed %d ≠ handled %d + dead-lettered %d + deleted with the queue %d",
			len(confirmed), handled-unexpected, parked, deletedWithQueue)
	}
	if unexpected > 0 {
		t.Errorf("%d jobs handled that no publish confirmed", unexpected)
	}
	if deletedWithQueue == 0 {
		t.Log("the queue was empty when deleted: the count of jobs deleted with it was not exercised")
	}
}

// startDeletionPool starts a pool on r's queue as r.work does (recording in r's
// ledger), with a handler taking delay per job, and returns it with the
// channel Run's result arrives on. Each handler holds gate, if not nil,
// for reading. The pool is stopped at cleanup.
func startDeletionPool(t *testing.T, r *run, delay time.Duration, gate *sync.RWMutex) (*worker.Pool, <-chan error) {
	t.Helper()
	h := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		if gate != nil {
			gate.RLock()
			defer gate.RUnlock()
		}
		time.Sleep(delay)
		r.ledger.mu.Lock()
		r.ledger.handled[job.ID]++
		r.ledger.mu.Unlock()
		r.ledger.handledN.Add(1)
		return nil
	})
	pool, err := worker.NewPool(r.workConn, r.topo, h, worker.WithSender(r.snd), worker.WithLogger(r.log),
		worker.WithQueue(r.queue, worker.Concurrency(8), worker.Prefetch(32)),
		worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) {
			if o.Status == worker.DeadLettered {
				r.ledger.mu.Lock()
				r.ledger.parked[o.JobID]++
				r.ledger.mu.Unlock()
			}
		})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		errc <- pool.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Error("Run did not return within 2 minutes of its ctx's end")
		}
	})
	return pool, errc
}

// timedPublish is one Publish: the job, its outcome, and when it ran.
type timedPublish struct {
	id         string
	err        error
	start, end time.Time
}

// deletionPublishers publish jobs from several goroutines until stopped,
// and record each publish.
type deletionPublishers struct {
	deleted atomic.Pointer[time.Time] // when the queue was deleted, once it was
	after   atomic.Int64              // publishes begun after that

	halt chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu   sync.Mutex
	recs []timedPublish
}

// startDeletionPublishers starts k goroutines publishing r's jobs. Each
// publish holds gate for reading when held is set, so that locking it
// waits for the publishes in flight and holds back the next ones.
func startDeletionPublishers(t *testing.T, r *run, k int, gate *sync.RWMutex, held bool) *deletionPublishers {
	p := &deletionPublishers{halt: make(chan struct{})}
	t.Cleanup(p.stop)
	var seq atomic.Int64
	for range k {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				select {
				case <-p.halt:
					return
				default:
				}
				if held {
					gate.RLock()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				rec := timedPublish{start: time.Now()}
				rec.id, rec.err = broker.NewJobID()
				if rec.err == nil {
					rec.err = r.pub.Publish(ctx, broker.Job{ID: rec.id, Type: "fault.job", Payload: map[string]int64{"n": seq.Add(1)}})
				}
				rec.end = time.Now()
				cancel()
				if held {
					gate.RUnlock()
				}
				if d := p.deleted.Load(); d != nil && rec.start.After(*d) {
					p.after.Add(1)
				}
				p.mu.Lock()
				p.recs = append(p.recs, rec)
				p.mu.Unlock()
			}
		}()
	}
	return p
}

// stop stops the publishers and waits for them.
func (p *deletionPublishers) stop() {
	p.once.Do(func() { close(p.halt) })
	p.wg.Wait()
}

func (p *deletionPublishers) records() []timedPublish {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]timedPublish(nil), p.recs...)
}

// pollUntil polls cond every 5ms until it holds, failing t after timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWorkerKilledMidJob: worker processes are killed with SIGKILL, three
// times, while they have jobs in their handlers, prefetched, and finished
// but perhaps not yet acked (acks are grouped); a last worker then handles
// what is left. Nothing is lost; a job handled and killed before its ack
// is handled again (at-least-once), and the ledger reports it as a
// duplicate.
func TestWorkerKilledMidJob(t *testing.T) {
	for _, qt := range []string{"classic", "quorum"} {
		t.Run(qt, func(t *testing.T) {
			n := rabbitnode.Start(t)
			r := newRun(t, []string{n.URL()}, qt)
			produced := r.produce(jobs, producers)
			dir := t.TempDir()
			var kills []string
			byKilled := map[string]int{} // job id -> times handled by a worker then killed
			for i := 1; i <= 3; i++ {
				c := startWorkerChild(t, n.URL(), faultsTopology(r.queue, qt), r.queue, filepath.Join(dir, fmt.Sprintf("worker-%d.log", i)))
				// Killed once it has handled 200 jobs: busy, with the
				// queue still full.
				pollUntil(t, 60*time.Second, fmt.Sprintf("worker %d to handle 200 jobs", i), func() bool { return c.handled() >= 200 })
				started, done := c.kill()
				inHandlers := 0
				for id := range started {
					if done[id] == 0 {
						inHandlers++
					}
				}
				if inHandlers == 0 {
					t.Errorf("worker %d had no job in its handlers when killed: the kill proves less than it should", i)
				}
				r.ledger.mu.Lock()
				for id, times := range done {
					r.ledger.handled[id] += times
					byKilled[id] += times
				}
				r.ledger.mu.Unlock()
				r.ledger.handledN.Add(int64(len(done)))
				kills = append(kills, fmt.Sprintf("worker %d after %d jobs, %d in its handlers", i, len(done), inHandlers))
			}
			t.Logf("ledger: killed with SIGKILL: %s", strings.Join(kills, "; "))
			stop := r.work(nil)
			r.finish(produced, stop)

			// A duplicate comes from a kill between a handler's end and
			// its ack reaching the broker; the last worker, never killed,
			// handles a job once at most.
			r.ledger.mu.Lock()
			defer r.ledger.mu.Unlock()
			for id, times := range r.ledger.handled {
				if last := times - byKilled[id]; last > 1 {
					t.Errorf("job %s handled %d times by the last worker, which was not killed", id, last)
				}
			}
		})
	}
}

// The child worker process of TestWorkerKilledMidJob is this test binary,
// run again with these variables set: init then runs workerChild instead
// of the tests (TestMain is the ledger's).
const (
	workerChildLogEnv      = "WARREN_FAULTS_CHILD_LOG"
	workerChildURLEnv      = "WARREN_FAULTS_CHILD_URL"
	workerChildTopologyEnv = "WARREN_FAULTS_CHILD_TOPOLOGY"
	workerChildQueueEnv    = "WARREN_FAULTS_CHILD_QUEUE"
)

func init() {
	if os.Getenv(workerChildLogEnv) != "" {
		os.Exit(workerChild())
	}
}

// workerChild consumes the queue until it is killed (or its stdin, the
// parent's pipe, ends). Each handler appends "start ID" to the log file,
// works for 5 to 25ms, appends "done ID", and returns nil, so the job is
// acked. A line is one write(2) to a file opened with O_APPEND: once it
// returns, the line is in the file whatever happens to the process
// (SIGKILL loses nothing the kernel has; only a crash of the machine
// would, which fsync would cover and this test does not need).
func workerChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child worker:", err)
		return 1
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(3) // the parent is gone
	}()
	log, err := os.OpenFile(os.Getenv(workerChildLogEnv), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fail(err)
	}
	topo, err := topology.Parse("child.yaml", []byte(os.Getenv(workerChildTopologyEnv)))
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	conn, err := broker.Dial(ctx, []string{os.Getenv(workerChildURLEnv)}, broker.WithName("faults-worker-child"))
	cancel()
	if err != nil {
		return fail(err)
	}
	write := func(line string) {
		if _, err := log.Write([]byte(line + "\n")); err != nil {
			fmt.Fprintln(os.Stderr, "child worker: log:", err)
			os.Exit(1)
		}
	}
	h := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		write("start " + job.ID)
		select {
		case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		write("done " + job.ID)
		return nil
	})
	pool, err := worker.NewPool(conn, topo, h, worker.WithQueue(os.Getenv(workerChildQueueEnv), worker.Concurrency(8), worker.Prefetch(32)))
	if err != nil {
		return fail(err)
	}
	if err := pool.Run(context.Background()); err != nil {
		return fail(err)
	}
	return 0
}

// workerChildProc is a running workerChild.
type workerChildProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	log    string
	stdin  io.WriteCloser // never written: the child exits when it ends, with the test
	stderr bytes.Buffer   // written by exec's copier until Wait returns
	exited chan struct{}
}

func startWorkerChild(t *testing.T, url, topo, queue, log string) *workerChildProc {
	t.Helper()
	c := &workerChildProc{t: t, log: log, exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), workerChildLogEnv+"="+log, workerChildURLEnv+"="+url, workerChildTopologyEnv+"="+topo, workerChildQueueEnv+"="+queue)
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.exited
		if t.Failed() && c.stderr.Len() > 0 {
			t.Logf("child worker %d's stderr:\n%s", c.cmd.Process.Pid, c.stderr.String())
		}
	})
	return c
}

// handled counts the jobs the child has finished so far; it fails the
// test if the child exited.
func (c *workerChildProc) handled() int {
	c.t.Helper()
	select {
	case <-c.exited:
		c.t.Fatalf("the child worker exited: %v\n%s", c.cmd.ProcessState, c.stderr.String())
	default:
	}
	b, _ := os.ReadFile(c.log)
	return bytes.Count(b, []byte("done "))
}

// kill sends SIGKILL, waits for the child to be gone, and returns the jobs
// it started and the times it finished each, from its log.
func (c *workerChildProc) kill() (started map[string]bool, done map[string]int) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	<-c.exited
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("the child worker ended otherwise than by SIGKILL: %v\n%s", c.cmd.ProcessState, c.stderr.String())
	}
	// Built with -race, the child reports a race when it happens; its
	// exit status would have said so, but SIGKILL decides that one.
	if strings.Contains(c.stderr.String(), "DATA RACE") {
		c.t.Errorf("the child worker found a data race:\n%s", c.stderr.String())
	}
	f, err := os.Open(c.log)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	started, done = map[string]bool{}, map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		what, id, ok := strings.Cut(sc.Text(), " ")
		switch {
		case !ok:
			c.t.Fatalf("%s: malformed line %q", c.log, sc.Text())
		case what == "start":
			started[id] = true
		case what == "done":
			done[id]++
		}
	}
	if err := sc.Err(); err != nil {
		c.t.Fatal(err)
	}
	return started, done
}
