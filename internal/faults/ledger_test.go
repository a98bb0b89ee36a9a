//go:build faults

// Package faults_test is warren's fault suite: producers and a worker pool
// move thousands of jobs through a private RabbitMQ node (or cluster) while
// a fault is injected, and a ledger of confirmed job ids then proves that
// none was lost. Run it with make test-faults.
package faults_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) {
	// The embedded toxiproxy (network_test.go) can leave a link's pipe
	// goroutines blocked after its proxy stopped, when the link carried
	// data as its toxics were removed: toxiproxy's own, not warren's.
	os.Exit(brokertest.MainWithLeakCheck(m,
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).write"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"),
	))
}

// ledger is what a run confirmed, handled and parked, by job id.
type ledger struct {
	mu        sync.Mutex
	confirmed map[string]bool
	handled   map[string]int
	parked    map[string]int
	failed    int // publishes that returned an error (the producer knows: not confirmed)
	firstErr  error
	handledN  atomic.Int64
}

func newLedger() *ledger {
	return &ledger{confirmed: map[string]bool{}, handled: map[string]int{}, parked: map[string]int{}}
}

// report checks lost = 0 and says what happened.
func (l *ledger) report(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	lost, dups := 0, 0
	for id := range l.confirmed {
		if l.handled[id] == 0 && l.parked[id] == 0 {
			lost++
		}
	}
	for _, n := range l.handled {
		if n > 1 {
			dups += n - 1
		}
	}
	t.Logf("ledger: confirmed %d, handled %d distinct (%d twice or more), dead-lettered %d, publishes that failed (reported to the producer) %d, lost %d",
		len(l.confirmed), len(l.handled), dups, len(l.parked), l.failed, lost)
	if lost != 0 {
		t.Errorf("lost %d confirmed jobs", lost)
	}
	if l.firstErr != nil {
		t.Logf("first publish error: %v", l.firstErr)
	}
}

func (l *ledger) settled() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for id := range l.confirmed {
		if l.handled[id] > 0 || l.parked[id] > 0 {
			n++
		}
	}
	return n
}

func (l *ledger) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.confirmed)
}

// run is one fault run: a topology on urls, producers, a pool, a ledger.
type run struct {
	t      *testing.T
	urls   []string
	topo   *topology.Topology
	queue  string
	ledger *ledger
	log    zerolog.Logger

	pubConn, workConn *broker.Conn
	pub               *broker.Publisher
	snd               *broker.Sender // the pools', on the producer's connection
}

// faultsTopology is the topology newRun declares (and a child worker
// process reads).
func faultsTopology(queue, queueType string) string {
	return fmt.Sprintf(`version: 1
exchanges:
  faults: {type: direct}
queues:
  %s:
    type: %s
    retry: {max_attempts: 3, initial_interval: 1s, jitter: 0}
bindings:
  - exchange: faults
    queue: %s
    routing_keys: [fault.job]
routes:
  fault.job: {exchange: faults}
`, queue, queueType, queue)
}

// newRun declares faultsTopology on the first of urls, for a queue of
// queueType (classic or quorum), and connects a publisher and a worker.
func newRun(t *testing.T, urls []string, queueType string) *run {
	t.Helper()
	const queue = "faults.work"
	return newRunOf(t, urls, queue, faultsTopology(queue, queueType))
}

// newRunOf declares the topology text, which has the work queue queue and
// the route fault.job, on the first of urls, and connects a publisher and
// a worker.
func newRunOf(t *testing.T, urls []string, queue, text string) *run {
	t.Helper()
	r := &run{t: t, urls: urls, queue: queue, ledger: newLedger()}
	r.log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	topo, err := topology.Parse("faults.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	r.topo = topo
	ctx := brokertest.Context(t, time.Minute)
	conn := r.dial("faults-declare")
	d := broker.NewDeclarer(conn)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		t.Fatalf("declare: %v", err)
	}
	d.Close(ctx)
	conn.Close()
	r.pubConn, r.workConn = r.dial("faults-producer"), r.dial("faults-worker")
	r.pub, err = broker.NewPublisher(r.pubConn, broker.WithRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.pub.Close(context.Background()) })
	r.snd, err = broker.NewSender(r.pubConn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.snd.Close(context.Background()) })
	return r
}

func (r *run) dial(name string) *broker.Conn {
	r.t.Helper()
	conn, err := broker.Dial(brokertest.Context(r.t, time.Minute), r.urls, broker.WithName(name),
		broker.WithHeartbeat(2*time.Second), broker.WithReconnectBackoff(100*time.Millisecond, 2*time.Second),
		broker.WithLogger(r.log))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { conn.Close() })
	return conn
}

// work starts a pool whose handler records each job; slow delays the
// handler. It returns a func stopping the pool and returning Run's error.
func (r *run) work(handle func(ctx context.Context, job *worker.Job) error, opts ...worker.Option) func() error {
	h := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		if handle != nil {
			if err := handle(ctx, job); err != nil {
				return err
			}
		}
		r.ledger.mu.Lock()
		r.ledger.handled[job.ID]++
		r.ledger.mu.Unlock()
		r.ledger.handledN.Add(1)
		return nil
	})
	opts = append([]worker.Option{worker.WithSender(r.snd), worker.WithLogger(r.log),
		worker.WithQueue(r.queue, worker.Concurrency(8), worker.Prefetch(32)),
		worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) {
			if o.Status == worker.DeadLettered {
				r.ledger.mu.Lock()
				r.ledger.parked[o.JobID]++
				r.ledger.mu.Unlock()
			}
		}))}, opts...)
	pool, err := worker.NewPool(r.workConn, r.topo, h, opts...)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(2 * time.Minute):
				runErr = fmt.Errorf("Run did not return")
			}
		})
		return runErr
	}
	r.t.Cleanup(func() { stop() })
	return stop
}

// produce publishes n jobs from k goroutines, each Publish bounded by a
// generous ctx, recording what was confirmed; it returns when all are done.
func (r *run) produce(n, k int) <-chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var next atomic.Int64
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				id, err := broker.NewJobID()
				if err == nil {
					err = r.pub.Publish(ctx, broker.Job{ID: id, Type: "fault.job", Payload: map[string]int64{"n": i}})
				}
				cancel()
				r.ledger.mu.Lock()
				if err != nil {
					r.ledger.failed++
					if r.ledger.firstErr == nil {
						r.ledger.firstErr = err
					}
				} else {
					r.ledger.confirmed[id] = true
				}
				r.ledger.mu.Unlock()
			}
		}()
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// finish waits for the producers, then for every confirmed job to be
// handled or parked, stops the pool and checks the ledger.
func (r *run) finish(produced <-chan struct{}, stop func() error) {
	r.t.Helper()
	r.finishWithin(produced, stop, 3*time.Minute)
}

// finishWithin is finish, waiting up to settle for the jobs once the
// producers are done.
func (r *run) finishWithin(produced <-chan struct{}, stop func() error, settle time.Duration) {
	r.t.Helper()
	select {
	case <-produced:
	case <-time.After(4 * time.Minute):
		r.t.Fatal("the producers did not finish within 4 minutes")
	}
	deadline := time.Now().Add(settle)
	for r.ledger.settled() < r.ledger.total() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		r.t.Errorf("pool: %v", err)
	}
	r.ledger.report(r.t)
}

// after waits until the pool handled at least n jobs.
func (r *run) after(n int64) {
	r.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for r.ledger.handledN.Load() < n {
		if time.Now().After(deadline) {
			r.t.Fatalf("only %d jobs handled", r.ledger.handledN.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
