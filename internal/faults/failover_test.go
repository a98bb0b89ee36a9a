//go:build faults

package faults_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/rabbitnode"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// confirmTimeout is the broker setting the failover test runs with:
// RabbitMQ's dead_letter_worker_publisher_confirm_timeout, how long the
// at-least-once dead-letter worker of a quorum queue waits for the confirm
// of a message it moved before it sends the message again. RabbitMQ's
// default is 180 s; docs/reliability.md recommends 5 s.
const confirmTimeout = 5 * time.Second

// failoverDelay is the retry delay of every job of the failover test: one
// level of the cascade, warren.delay.02.
const failoverDelay = 4 * time.Second

// failoverMargin is what a retry may run later than its delay plus the
// confirm timeout: the 14 s c1 is down (measured: with all leaders on c1
// and a 5 s timeout, retries ran up to 26.3 s late, most after c1 was
// back), the election, the reconnect and the backlog of retries that
// come due together, on a machine running other tests.
const failoverMargin = 30 * time.Second

// failoverFirstAttempt is how long a first attempt takes: with the pool's
// 8 handlers, the 2,000 jobs fail over about 10 s, so that retries wait in
// the cascade and come due while the leader is killed and gone.
const failoverFirstAttempt = 40 * time.Millisecond

// TestRetriesAcrossLeaderFailover: a three-node cluster; the quorum delay
// cascade and a quorum work queue declared through c1, so c1 leads them
// (the placement that stalled for three minutes on the default timeout);
// 2,000 jobs fail once (spread
// over about 10 s) and succeed on their retry, 4 s later. c1 is killed
// with SIGKILL 6 s after the worker starts, while hundreds of retries wait
// in warren.delay.02 or are on their way to the work queue, and restarted
// 14 s later. Nothing may be lost, no retry may run before its delay, and
// none later than its delay plus the broker's
// dead_letter_worker_publisher_confirm_timeout plus failoverMargin: a
// retry whose move out of the cascade the dead-letter worker never saw
// confirmed is sent again only after that timeout.
//
// For measurements: WARREN_FAILOVER_CONFIRM_TIMEOUT sets the timeout in
// milliseconds ("default": RabbitMQ's own, 180000);
// WARREN_FAILOVER_PLACEMENT=split declares the cascade through c2 first,
// so c2 leads it; WARREN_FAILOVER_LOCATOR=balanced spreads the cascade's
// leaders with a queue-leader-locator policy before it is declared.
func TestRetriesAcrossLeaderFailover(t *testing.T) {
	dialNode := func(t *testing.T, url string) *broker.Conn {
		conn, err := broker.Dial(brokertest.Context(t, time.Minute), []string{url}, broker.WithName("faults-declare"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	const n = 2000
	timeout, opts := confirmTimeout, []rabbitnode.Option{}
	switch v := os.Getenv("WARREN_FAILOVER_CONFIRM_TIMEOUT"); v {
	case "default":
		timeout = 180 * time.Second
	case "":
	default:
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			t.Fatalf("WARREN_FAILOVER_CONFIRM_TIMEOUT=%q: want milliseconds or \"default\"", v)
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	if timeout != 180*time.Second {
		opts = append(opts, rabbitnode.WithAdvancedConfig(fmt.Sprintf(
			"{rabbit, [{dead_letter_worker_publisher_confirm_timeout, %d}]}", timeout.Milliseconds())))
	}
	c := rabbitnode.StartCluster(t, 3, opts...)
	c1 := c.Node(0)
	if got, want := c1.Eval(t, "application:get_env(rabbit, dead_letter_worker_publisher_confirm_timeout)."),
		fmt.Sprintf("{ok,%d}", timeout.Milliseconds()); got != want {
		t.Fatalf("c1's dead_letter_worker_publisher_confirm_timeout is %s, want %s", got, want)
	}
	balanced := os.Getenv("WARREN_FAILOVER_LOCATOR") == "balanced"
	if balanced {
		c1.Ctl(t, "set_policy", "--apply-to", "queues", "warren-delay-balanced", `^warren\.delay\.`, `{"queue-leader-locator":"balanced"}`)
	}

	if os.Getenv("WARREN_FAILOVER_PLACEMENT") == "split" {
		// The cascade first, through c2, so that c2 leads it.
		conn := dialNode(t, c.Node(1).URL())
		topo, err := topology.Parse("cascade.yaml", []byte("version: 1\nqueues: {faults.cascade: {type: quorum}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		d := broker.NewDeclarer(conn)
		if _, err := topology.Declare(brokertest.Context(t, time.Minute), d, topo); err != nil {
			t.Fatalf("declare the cascade through c2: %v", err)
		}
		d.Close(brokertest.Context(t, time.Minute))
	}
	const queue = "faults.failover"
	r := newRunOf(t, c.URLs(), queue, fmt.Sprintf(`version: 1
exchanges:
  faults: {type: direct}
queues:
  %s:
    type: quorum
    retry: {max_attempts: 3, initial_interval: %s, jitter: 0}
bindings:
  - exchange: faults
    queue: %s
    routing_keys: [fault.job]
routes:
  fault.job: {exchange: faults}
`, queue, failoverDelay, queue))
	for _, n := range c.Nodes() {
		n.SyncMetadata(t)
	}
	level := topology.DelayExchangeName(2)
	leader := c.Leader(t, queue)
	if leader != c1 {
		t.Fatalf("%s is led by %s, not by c1 (%s) through which it was declared", queue, leader.Name(), c1.Name())
	}
	t.Logf("%s is led by %s; %s by %s", level, c.Leader(t, level).Name(), queue, leader.Name())

	rl := &retryLedger{failed: map[string]time.Time{}, late: map[string]time.Duration{}}
	errOnce := errors.New("fails once")
	stop := r.work(func(_ context.Context, job *worker.Job) error {
		if job.Attempt == 1 {
			time.Sleep(failoverFirstAttempt)
			rl.fail(job.ID)
			return errOnce
		}
		rl.retried(job.ID)
		return nil
	})
	started := time.Now()
	produced := r.produce(n, producers)
	time.Sleep(6 * time.Second)
	killed := time.Now()
	t.Logf("killing %s, the leader of %s, %v after the worker started", leader.Name(), queue, killed.Sub(started).Round(time.Millisecond))
	leader.Kill(t)
	time.Sleep(14 * time.Second)
	leader.Restart(t)
	// Twice the timeout: a move sent again after one timeout whose confirm
	// is lost too waits a second one; a job still missing after that is lost.
	r.finishWithin(produced, stop, 2*timeout+failoverDelay+2*time.Minute)
	rl.report(t, timeout, started, killed)
}

// retryLedger is when each job failed its first attempt and how much later
// than its delay its retry ran.
type retryLedger struct {
	mu     sync.Mutex
	failed map[string]time.Time     // the last failure of the job's first attempt
	late   map[string]time.Duration // the first retry's lateness
	ranAt  []time.Time              // when each retry ran
}

func (l *retryLedger) fail(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed[id] = time.Now()
}

func (l *retryLedger) retried(id string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.failed[id]
	if _, seen := l.late[id]; seen || !ok {
		return
	}
	l.late[id] = now.Sub(f) - failoverDelay
	l.ranAt = append(l.ranAt, now)
}

// report prints the lateness distribution and checks the bound: no retry
// later than timeout plus failoverMargin, and no retry early.
func (l *retryLedger) report(t *testing.T, timeout time.Duration, started, killed time.Time) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var lates []time.Duration
	var early, over, inFlight int
	var lastRun time.Time
	for id, d := range l.late {
		lates = append(lates, d)
		if d < -time.Second { // the cascade counts whole seconds from the publish
			early++
			t.Errorf("the retry of %s ran %v before its delay was over", id, -d)
		}
		if d > timeout+failoverMargin {
			over++
		}
		if f := l.failed[id]; f.After(killed.Add(-failoverDelay)) && f.Before(killed) {
			inFlight++
		}
	}
	for _, at := range l.ranAt {
		if at.After(lastRun) {
			lastRun = at
		}
	}
	slices.Sort(lates)
	if len(lates) == 0 {
		t.Fatal("no retry ran")
	}
	pct := func(p float64) time.Duration { return lates[int(p*float64(len(lates)-1))].Round(10 * time.Millisecond) }
	late := func(d time.Duration) int {
		i, _ := slices.BinarySearch(lates, d+1)
		return len(lates) - i
	}
	t.Logf("retry ledger: %d retries of %d failed jobs; lateness after the %v delay p50 %v, p99 %v, max %v; later than 2 s: %d, than the confirm timeout (%v): %d; failed in the %v before the kill: %d; last retry %v after the worker started",
		len(lates), len(l.failed), failoverDelay, pct(0.5), pct(0.99), lates[len(lates)-1].Round(10*time.Millisecond),
		late(2*time.Second), timeout, late(timeout), failoverDelay, inFlight, lastRun.Sub(started).Round(100*time.Millisecond))
	if len(lates) != len(l.failed) {
		t.Errorf("%d jobs failed their first attempt, %d retries ran", len(l.failed), len(lates))
	}
	if inFlight == 0 {
		t.Errorf("no job failed in the %v before the kill: no retry waited in the cascade, so the test proves nothing", failoverDelay)
	}
	if over > 0 {
		t.Errorf("%d retries ran more than the confirm timeout %v + %v after their delay (max %v): the broker's dead_letter_worker_publisher_confirm_timeout bounds the stall after a leader failover",
			over, timeout, failoverMargin, lates[len(lates)-1].Round(time.Millisecond))
	}
}
