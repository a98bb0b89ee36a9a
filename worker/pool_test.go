package worker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/brokertest/rawmsg"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childWorker())
	}
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	os.Exit(brokertest.MainWithLeakCheck(m))
}

// jobTypes are the job types the test topology routes to its queue.
var jobTypes = []string{"ok", "fail", "flaky", "perm", "panic", "slow", "typed", "nohandler", "later"}

// fixture is one test's topology (an exchange and a work queue with a
// derived dead-letter queue) and connections to the test broker.
type fixture struct {
	t        *testing.T
	exchange string
	queue    string
	topo     *topology.Topology
	conn     *broker.Conn // consuming
	pub      *broker.Publisher
	snd      *broker.Sender // the pools', on the publishing connection
	yaml     string         // the topology file
}

type fixtureOpts struct {
	queueType  string            // default classic
	retry      string            // the queue's retry block; default fast, no jitter; "default": none (warren's default policy)
	routeRetry map[string]string // job type -> the route's retry block
	types      []string          // job types routed to the queue; default jobTypes
}

func newFixture(t *testing.T, fo fixtureOpts) *fixture {
	t.Helper()
	if fo.queueType == "" {
		fo.queueType = "classic"
	}
	if fo.retry == "" {
		fo.retry = "{max_attempts: 3, initial_interval: 1s, jitter: 0}"
	}
	f := &fixture{t: t, exchange: brokertest.Name(t, "x"), queue: brokertest.Name(t, "q")}
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nexchanges:\n  %s: {type: direct}\nqueues:\n  %s:\n    type: %s\n",
		f.exchange, f.queue, fo.queueType)
	if fo.retry != "default" {
		fmt.Fprintf(&b, "    retry: %s\n", fo.retry)
	}
	types := jobTypes
	if fo.types != nil {
		types = fo.types
	}
	fmt.Fprintf(&b, "bindings:\n  - exchange: %s\n    queue: %s\n    routing_keys: [%s]\nroutes:\n", f.exchange, f.queue, strings.Join(types, ", "))
	for _, jt := range types {
		if r, ok := fo.routeRetry[jt]; ok {
			fmt.Fprintf(&b, "  %s: {exchange: %s, retry: %s}\n", jt, f.exchange, r)
			continue
		}
		fmt.Fprintf(&b, "  %s: {exchange: %s}\n", jt, f.exchange)
	}
	f.yaml = b.String()
	f.topo = topotest.Apply(t, f.yaml)
	f.conn = testkit.Dial(t, "worker-test-consume")
	pubConn := testkit.Dial(t, "worker-test-publish")
	pub, err := broker.NewPublisher(pubConn, broker.WithRouter(f.topo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	snd, err := broker.NewSender(pubConn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snd.Close(context.Background()) })
	f.pub, f.snd = pub, snd
	return f
}

// publish publishes jobs of jobType with the payloads given and returns
// their ids.
func (f *fixture) publish(jobType string, payloads ...any) []string {
	f.t.Helper()
	jobs := make([]broker.Job, len(payloads))
	for i, p := range payloads {
		jobs[i] = broker.Job{Type: jobType, Payload: p}
	}
	if err := f.pub.PublishBatch(brokertest.Context(f.t, 60*time.Second), jobs); err != nil {
		f.t.Fatalf("publish: %v", err)
	}
	ids := make([]string, len(jobs))
	for i := range jobs {
		ids[i] = jobs[i].ID
	}
	return ids
}

// run starts a pool on the fixture's queue; stop shuts it down and returns
// what Run returned.
func (f *fixture) run(h worker.Handler, opts ...worker.Option) (stop func() error) {
	f.t.Helper()
	opts = append([]worker.Option{worker.WithSender(f.snd), worker.WithHostname("test-host")}, opts...)
	pool, err := worker.NewPool(f.conn, f.topo, h, opts...)
	if err != nil {
		f.t.Fatalf("NewPool: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- pool.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-errc:
			case <-time.After(60 * time.Second):
				runErr = errors.New("Run did not return within 60s of its ctx ending")
			}
		})
		return runErr
	}
	f.t.Cleanup(func() { stop() })
	return stop
}

// dlq reads n messages from the fixture's dead-letter queue, by message id.
func (f *fixture) dlq(n int, timeout time.Duration) map[string]amqp.Delivery {
	f.t.Helper()
	out := make(map[string]amqp.Delivery, n)
	for range n {
		d := brokertest.Get(f.t, topology.DeadLetterQueueName(f.queue), timeout)
		out[d.MessageId] = d
	}
	return out
}

// ledger records what handlers saw, and the outcomes the pool reported.
type ledger struct {
	mu       sync.Mutex
	handled  map[string]int
	outcomes map[worker.Status]int
	requeued map[string]int // Requeued outcomes, by job id
	replies  int
}

func newLedger() *ledger {
	return &ledger{handled: map[string]int{}, outcomes: map[worker.Status]int{}, requeued: map[string]int{}}
}

func (l *ledger) add(id string) {
	l.mu.Lock()
	l.handled[id]++
	l.mu.Unlock()
}

func (l *ledger) observe(o worker.Outcome) {
	l.mu.Lock()
	l.outcomes[o.Status]++
	if o.Status == worker.Requeued {
		l.requeued[o.JobID]++
	}
	if o.Replied {
		l.replies++
	}
	l.mu.Unlock()
}

func (l *ledger) replied() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.replies
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.handled)
}

func (l *ledger) status(s worker.Status) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.outcomes[s]
}

func TestEveryJobHandledOnce(t *testing.T) {
	t.Parallel()
	for _, qt := range []string{"classic", "quorum"} {
		t.Run(qt, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOpts{queueType: qt})
			const n = 2000
			payloads := make([]any, n)
			for i := range payloads {
				payloads[i] = map[string]any{"n": i}
			}
			ids := f.publish("ok", payloads...)

			l := newLedger()
			mux := worker.NewMux()
			mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
				l.add(job.ID)
				return nil
			})
			stop := f.run(mux, worker.WithQueue(f.queue, worker.Concurrency(8), worker.Prefetch(64)), worker.WithObserver(worker.OutcomeFunc(l.observe)))
			testkit.WaitFor(t, 60*time.Second, "every job handled", func() bool { return l.count() == n })
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			for _, id := range ids {
				if c := l.handled[id]; c != 1 {
					t.Errorf("job %s handled %d times", id, c)
				}
			}
			if got := l.status(worker.Succeeded); got != n {
				t.Errorf("%d outcomes Succeeded, want %d", got, n)
			}
			if d := brokertest.Depth(t, f.queue); d != 0 {
				t.Errorf("%d jobs left in the queue after a clean shutdown: acks lost", d)
			}
		})
	}
}

func TestConcurrencyNeverExceedsLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	const n, limit = 60, 3
	f.publish("slow", make([]any, n)...)
	var mu sync.Mutex
	inFlight, peak, done := 0, 0, 0
	h := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		inFlight--
		done++
		mu.Unlock()
		return nil
	})
	stop := f.run(h, worker.WithQueue(f.queue, worker.Concurrency(limit), worker.Prefetch(20)))
	testkit.WaitFor(t, 30*time.Second, "every job handled", func() bool { mu.Lock(); defer mu.Unlock(); return done == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if peak > limit {
		t.Errorf("%d handlers ran at once; the limit is %d", peak, limit)
	}
	if peak < limit {
		t.Errorf("at most %d handlers ran at once with %d allowed and %d jobs waiting: the pool under-uses its limit", peak, limit, n)
	}
}

// attemptLog records when each attempt of each job started.
type attemptLog struct {
	mu       sync.Mutex
	attempts map[string][]attemptSeen
}

type attemptSeen struct {
	at   time.Time
	job  worker.Job
	fail *broker.Failure
}

func (a *attemptLog) add(job *worker.Job) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.attempts == nil {
		a.attempts = map[string][]attemptSeen{}
	}
	a.attempts[job.ID] = append(a.attempts[job.ID], attemptSeen{at: time.Now(), job: *job, fail: job.Envelope.Failure})
}

func (a *attemptLog) get(id string) []attemptSeen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]attemptSeen(nil), a.attempts[id]...)
}

// checkDelay fails t unless got is want, give or take the cascade's
// one-second resolution and the time a retry takes to travel.
// checkDelay checks a retry's delay: never early, and late by no more
// than 1.5s or a quarter of the delay, whichever is more (a loaded broker
// expires the delay cascade's messages late: 20s came after 24.25s on a
// machine also running the torture test).
func checkDelay(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	late := max(1500*time.Millisecond, want/4)
	if got < want-100*time.Millisecond || got > want+late {
		t.Errorf("%s: the next attempt came after %s, want %s (late by %s at most)", what, got.Round(time.Millisecond), want, late)
	}
}

func TestRetriedWithBackoffThenSucceeds(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{retry: "{max_attempts: 3, initial_interval: 1s, multiplier: 2, jitter: 0}"})
	var log attemptLog
	mux := worker.NewMux()
	mux.HandleFunc("flaky", func(ctx context.Context, job *worker.Job) error {
		log.add(job)
		if job.Attempt < 3 {
			return fmt.Errorf("flaky failure %d", job.Attempt)
		}
		return nil
	})
	l := newLedger()
	f.run(mux, worker.WithObserver(worker.OutcomeFunc(l.observe)))
	id := f.publish("flaky", "x")[0]
	testkit.WaitFor(t, 20*time.Second, "the third attempt", func() bool { return l.status(worker.Succeeded) == 1 })

	seen := log.get(id)
	if len(seen) != 3 {
		t.Fatalf("%d attempts, want 3", len(seen))
	}
	for i, s := range seen {
		if s.job.ID != id || s.job.Attempt != i+1 || s.job.MaxAttempts != 3 {
			t.Errorf("attempt %d: id %s attempt %d of %d", i+1, s.job.ID, s.job.Attempt, s.job.MaxAttempts)
		}
	}
	checkDelay(t, "after attempt 1", seen[1].at.Sub(seen[0].at), time.Second)
	checkDelay(t, "after attempt 2", seen[2].at.Sub(seen[1].at), 2*time.Second)
	f2 := seen[2].fail
	if f2 == nil {
		t.Fatal("the third attempt carries no failure")
	}
	if f2.Error != "flaky failure 2" || f2.Class != worker.ClassError || f2.Origin.Queue != f.queue ||
		f2.Origin.Exchange != f.exchange || f2.Origin.RoutingKey != "flaky" || f2.WorkerHost != "test-host" {
		t.Errorf("failure of attempt 2: %+v", f2)
	}
	if f1 := seen[1].fail; f1 == nil || !f2.FirstFailedAt.Equal(f1.FirstFailedAt) || !f2.FailedAt.After(f1.FailedAt) {
		t.Errorf("first-failed-at not kept or failed-at not updated: %+v then %+v", f1, f2)
	}
	if got := l.status(worker.Retried); got != 2 {
		t.Errorf("%d outcomes Retried, want 2", got)
	}
}

// TestLongDelayDoesNotHoldShortOne: a job retried in 20s, then another in
// 2s: the second comes back after 2s, not behind the first (a single
// retry queue with per-message TTLs would hold it), and the first after
// 20s.
func TestLongDelayDoesNotHoldShortOne(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	var log attemptLog
	mux := worker.NewMux()
	mux.HandleFunc("later", func(ctx context.Context, job *worker.Job) error {
		log.add(job)
		if job.Attempt > 1 {
			return nil
		}
		var d time.Duration
		if err := job.Decode(&d); err != nil {
			return err
		}
		return worker.RetryAfter(d, errors.New("not yet"))
	})
	f.run(mux)
	long := f.publish("later", 20*time.Second)[0]
	testkit.WaitFor(t, 10*time.Second, "the long job's first attempt", func() bool { return len(log.get(long)) == 1 })
	short := f.publish("later", 2*time.Second)[0]
	testkit.WaitFor(t, 10*time.Second, "the short job's retry", func() bool { return len(log.get(short)) == 2 })
	s := log.get(short)
	checkDelay(t, "short job", s[1].at.Sub(s[0].at), 2*time.Second)
	if len(log.get(long)) != 1 {
		t.Error("the long job came back before the short one")
	}
	testkit.WaitFor(t, 30*time.Second, "the long job's retry", func() bool { return len(log.get(long)) == 2 })
	l := log.get(long)
	checkDelay(t, "long job", l[1].at.Sub(l[0].at), 20*time.Second)
}

func TestLastAttemptDeadLettersWithReasons(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{retry: "{max_attempts: 2, initial_interval: 1s, jitter: 0}"})
	mux := worker.NewMux()
	mux.HandleFunc("fail", func(ctx context.Context, job *worker.Job) error {
		return fmt.Errorf("smtp: 451 try again later (attempt %d)", job.Attempt)
	})
	l := newLedger()
	f.run(mux, worker.WithObserver(worker.OutcomeFunc(l.observe)))
	before := time.Now().UTC().Truncate(time.Millisecond)
	id := f.publish("fail", map[string]any{"to": "ada@example.com"})[0]

	d := f.dlq(1, 20*time.Second)[id]
	if d.MessageId != id || d.Type != "fail" {
		t.Fatalf("dead letter: id %q type %q", d.MessageId, d.Type)
	}
	env, err := rawmsg.Envelope(&d)
	if err != nil {
		t.Fatal(err)
	}
	if env.Attempt != 2 {
		t.Errorf("attempt %d, want 2", env.Attempt)
	}
	fl := env.Failure
	if fl == nil {
		t.Fatal("no failure headers")
	}
	if fl.Error != "smtp: 451 try again later (attempt 2)" || fl.Class != worker.ClassError {
		t.Errorf("error %q class %q", fl.Error, fl.Class)
	}
	if fl.Origin != (broker.Origin{Exchange: f.exchange, RoutingKey: "fail", Queue: f.queue}) {
		t.Errorf("origin %+v", fl.Origin)
	}
	if fl.WorkerHost != "test-host" {
		t.Errorf("worker host %q", fl.WorkerHost)
	}
	if fl.FirstFailedAt.Before(before) || !fl.FailedAt.After(fl.FirstFailedAt) {
		t.Errorf("first failed at %s, failed at %s (published at %s)", fl.FirstFailedAt, fl.FailedAt, before)
	}
	var payload map[string]any
	if err := env.Decode(&payload); err != nil || payload["to"] != "ada@example.com" {
		t.Errorf("payload %v, %v", payload, err)
	}
	testkit.WaitFor(t, 5*time.Second, "the outcomes", func() bool { return l.status(worker.DeadLettered) == 1 })
	if got := l.status(worker.Retried); got != 1 {
		t.Errorf("%d retries, want 1", got)
	}
	if n := brokertest.Depth(t, f.queue); n != 0 {
		t.Errorf("%d jobs left in the work queue", n)
	}
}

// TestBadJobsDeadLetteredWithClass: jobs that cannot succeed are parked at
// once, with the class saying why, and the worker goes on working.
func TestBadJobsDeadLetteredWithClass(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{routeRetry: map[string]string{"panic": "{max_attempts: 1}"}})
	type point struct{ X, Y int }
	mux := worker.NewMux()
	mux.HandleFunc("perm", func(ctx context.Context, job *worker.Job) error {
		return worker.Permanent(errors.New("no such account"))
	})
	mux.HandleFunc("panic", func(ctx context.Context, job *worker.Job) error {
		var m map[string]int
		m["boom"]++ // assignment to a nil map
		return nil
	})
	mux.Handle("typed", worker.Typed(func(ctx context.Context, job *worker.Job, p point) error { return nil }))
	var okDone sync.WaitGroup
	okDone.Add(1)
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error { okDone.Done(); return nil })
	f.run(mux, worker.WithLimits(broker.Limits{MaxBytes: 2 << 20}))

	want := map[string]string{} // message id -> class
	for jt, class := range map[string]string{"perm": worker.ClassPermanent, "panic": worker.ClassPanic, "nohandler": worker.ClassUnknownType} {
		want[f.publish(jt, "x")[0]] = class
	}
	want[f.publish("typed", "a string, not a point")[0]] = worker.ClassDecode
	want[f.publish("typed", strings.Repeat("x", 3<<20))[0]] = worker.ClassTooLarge

	ch := brokertest.Channel(t)
	raw := func(id, contentType, jobType string, body []byte) {
		t.Helper()
		err := ch.PublishWithContext(brokertest.Context(t, 10*time.Second), f.exchange, "typed", false, false, amqp.Publishing{
			MessageId: id, ContentType: contentType, Type: jobType, DeliveryMode: amqp.Persistent, Body: body,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	raw("bomb-length", broker.ContentType, "typed", []byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	want["bomb-length"] = worker.ClassDecode
	nested := make([]byte, 1_000_001)
	for i := range nested {
		nested[i] = 0x91 // an array of one element, a million times
	}
	nested[len(nested)-1] = 0xc0
	raw("bomb-depth", broker.ContentType, "typed", nested)
	want["bomb-depth"] = worker.ClassDecode
	raw("json", "application/json", "typed", []byte(`{"x":1}`))
	want["json"] = worker.ClassMalformed
	raw("no-type", broker.ContentType, "", []byte{0xc0})
	want["no-type"] = worker.ClassMalformed

	got := f.dlq(len(want), 20*time.Second)
	for id, class := range want {
		d, ok := got[id]
		if !ok {
			t.Errorf("job %s (%s) not in the dead-letter queue", id, class)
			continue
		}
		if c := d.Headers[broker.HeaderErrorClass]; c != class {
			t.Errorf("job %s: class %v, want %s (error %v)", id, c, class, d.Headers[broker.HeaderError])
		}
	}
	if e, _ := got["json"].Headers[broker.HeaderError].(string); !strings.Contains(e, "application/json") {
		t.Errorf("malformed job's error does not name its content type: %q", e)
	}
	if got["json"].ContentType != "application/json" || string(got["json"].Body) != `{"x":1}` {
		t.Errorf("malformed job not parked as it came: %q %q", got["json"].ContentType, got["json"].Body)
	}
	if got["no-type"].Type != "" {
		t.Errorf("a job without a type was parked with type %q", got["no-type"].Type)
	}
	for id, d := range got {
		if want[id] == worker.ClassPanic {
			if e, _ := d.Headers[broker.HeaderError].(string); !strings.Contains(e, "nil map") || !strings.Contains(e, "goroutine") {
				t.Errorf("panic's error lacks the panic or its stack: %.200q", e)
			}
		}
	}
	// The worker survived the bombs.
	f.publish("ok", 1)
	testkit.WaitDone(t, &okDone, 20*time.Second, "the ok job after the bombs")
}
