package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

func TestMain(m *testing.M) { os.Exit(brokertest.MainWithLeakCheck(m)) }

// dial connects to the test broker, closing the connection at cleanup.
func dial(t *testing.T, opts ...broker.Option) *broker.Conn {
	t.Helper()
	opts = append([]broker.Option{broker.WithName("warren-test")}, opts...)
	conn, err := broker.Dial(brokertest.Context(t, 30*time.Second), []string{brokertest.URL(t)}, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return conn
}

func newPublisher(t *testing.T, conn *broker.Conn, opts ...broker.PublisherOption) *broker.Publisher {
	t.Helper()
	p, err := broker.NewPublisher(conn, opts...)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Publisher.Close: %v", err)
		}
	})
	return p
}

func newSender(t *testing.T, conn *broker.Conn, opts ...broker.PublisherOption) *broker.Sender {
	t.Helper()
	s, err := broker.NewSender(conn, opts...)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Sender.Close: %v", err)
		}
	})
	return s
}

// A Sender is told where each message goes: the options only a Publisher
// takes are refused, not ignored.
func TestNewSenderRefusesPublisherOptions(t *testing.T) {
	conn := dial(t)
	for name, opt := range map[string]broker.PublisherOption{
		"WithRouter":      broker.WithRouter(staticRouter{}),
		"WithBatchWindow": broker.WithBatchWindow(8),
	} {
		if s, err := broker.NewSender(conn, opt); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("NewSender with %s: %v, want an error naming it", name, err)
			if s != nil {
				s.Close(context.Background())
			}
		}
	}
}

// setup declares a direct exchange and a queue bound to it with key "k".
func setup(t *testing.T, queueArgs amqp.Table) (exchange, queue string) {
	t.Helper()
	exchange, queue = brokertest.Name(t, "x"), brokertest.Name(t, "q")
	ch := brokertest.Channel(t)
	if err := ch.ExchangeDeclare(exchange, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	brokertest.DeleteExchangesAtCleanup(t, exchange)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, queueArgs); err != nil {
		t.Fatal(err)
	}
	brokertest.DeleteQueuesAtCleanup(t, queue)
	if err := ch.QueueBind(queue, "k", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	return exchange, queue
}

type email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

func TestPublishConfirmedJobHasDocumentedProperties(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn, broker.WithAppID("billing"))
	ctx := brokertest.Context(t, 10*time.Second)

	job := broker.Job{Type: "email.send", Payload: email{To: "a@example.com", Subject: "hi"}, Headers: map[string]any{"tenant": "acme"}, Priority: 3}
	if err := p.Publish(ctx, job, broker.To(exchange, "k")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	d := brokertest.Get(t, queue, 5*time.Second)
	id := d.MessageId
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("message_id %q: Publish generated no id: %v", id, err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"content_type", d.ContentType, "application/msgpack"},
		{"message_id", d.MessageId, id},
		{"type", d.Type, "email.send"},
		{"delivery_mode", d.DeliveryMode, uint8(2)},
		{"app_id", d.AppId, "billing"},
		{"priority", d.Priority, uint8(3)},
		{"header tenant", d.Headers["tenant"], "acme"},
		{"header attempt", d.Headers[broker.HeaderAttempt], nil}, // absent on the first attempt
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if d.Expiration != "" {
		t.Errorf("expiration = %q without Expire", d.Expiration)
	}
	if err := p.PublishBatch(ctx, []broker.Job{job, job}, broker.To(exchange, "k"), broker.Expire(90*time.Second)); err != nil {
		t.Fatalf("PublishBatch with Expire: %v", err)
	}
	for range 2 {
		if e := brokertest.Get(t, queue, 5*time.Second); e.Expiration != "90000" {
			t.Errorf("expiration with Expire(90s) = %q, want 90000", e.Expiration)
		}
	}
	if d.Timestamp.IsZero() || time.Since(d.Timestamp) > time.Minute {
		t.Errorf("timestamp = %v, want about now", d.Timestamp)
	}
	env, err := broker.FromDelivery(&d)
	if err != nil {
		t.Fatalf("FromDelivery: %v", err)
	}
	var got email
	if err := env.Decode(&got); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got != job.Payload {
		t.Errorf("payload = %+v, want %+v", got, job.Payload)
	}
}

func TestPublishUnroutableIsAnError(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn)
	ctx := brokertest.Context(t, 10*time.Second)

	err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(exchange, "no-binding"))
	if !errors.Is(err, broker.ErrUnroutable) {
		t.Fatalf("Publish to an unbound key = %v, want ErrUnroutable", err)
	}
	var pe *broker.PublishError
	if !errors.As(err, &pe) || pe.Exchange != exchange || pe.RoutingKey != "no-binding" {
		t.Fatalf("error %v does not say where the job went", err)
	}
	if err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(exchange, "k")); err != nil {
		t.Fatalf("Publish after an unroutable one: %v", err)
	}
	if n := brokertest.Depth(t, queue); n != 1 {
		t.Fatalf("queue holds %d jobs, want 1", n)
	}
}

// Routable and unroutable jobs published concurrently on one publisher each
// get their own outcome, even when they share an id.
func TestPublishOutcomesDoNotMix(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn)
	ctx := brokertest.Context(t, 30*time.Second)

	const n = 400
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "k"
			if i%3 == 0 {
				key = "nowhere"
			}
			// Pairs of jobs share an id: returns must still be matched right.
			errs[i] = p.Publish(ctx, broker.Job{ID: fmt.Sprintf("job-%d", i/2), Type: "t"}, broker.To(exchange, key))
		}()
	}
	wg.Wait()
	routed := 0
	for i, err := range errs {
		switch {
		case i%3 == 0 && !errors.Is(err, broker.ErrUnroutable):
			t.Errorf("job %d (unroutable): err = %v, want ErrUnroutable", i, err)
		case i%3 != 0 && err != nil:
			t.Errorf("job %d (routable): err = %v", i, err)
		case i%3 != 0:
			routed++
		}
	}
	if got := brokertest.Depth(t, queue); got != routed {
		t.Fatalf("queue holds %d jobs, want %d", got, routed)
	}
}

func TestPublishToMissingExchangeFailsClearlyAndPublisherKeepsWorking(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn)
	ctx := brokertest.Context(t, 10*time.Second)

	missing := brokertest.Name(t, "missing")
	err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(missing, "k"))
	if !errors.Is(err, broker.ErrNoExchange) {
		t.Fatalf("Publish to a missing exchange = %v, want ErrNoExchange", err)
	}
	if !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "apply the topology") {
		t.Errorf("error %q should name the exchange and say how to create it", err)
	}
	for i := range 3 {
		if err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(exchange, "k")); err != nil {
			t.Fatalf("Publish %d after the failure: %v", i, err)
		}
	}
	if n := brokertest.Depth(t, queue); n != 3 {
		t.Fatalf("queue holds %d jobs, want 3", n)
	}
}

// An exchange deleted after the publisher has used it makes the broker close
// the publishing channel; the publisher reports that and recovers.
func TestPublishToDeletedExchangeRecovers(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn)
	ctx := brokertest.Context(t, 10*time.Second)

	doomed := brokertest.Name(t, "doomed")
	ch := brokertest.Channel(t)
	if err := ch.ExchangeDeclare(doomed, "fanout", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeBind(exchange, "k", doomed, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(doomed, "k")); err != nil {
		t.Fatalf("first Publish: %v", err)
	}
	if err := ch.ExchangeDelete(doomed, false, false); err != nil {
		t.Fatal(err)
	}
	err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(doomed, "k"))
	if !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish to a deleted exchange = %v, want ErrClosed", err)
	}
	var ae *amqp.Error
	if !errors.As(err, &ae) && !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Errorf("error %v should carry the broker's reason", err)
	}
	if err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(doomed, "k")); !errors.Is(err, broker.ErrNoExchange) {
		t.Fatalf("Publish again to the deleted exchange = %v, want ErrNoExchange", err)
	}
	if err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(exchange, "k")); err != nil {
		t.Fatalf("Publish after recovery: %v", err)
	}
	if n := brokertest.Depth(t, queue); n != 2 {
		t.Fatalf("queue holds %d jobs, want 2", n)
	}
}

func TestPublishNackedByFullQueue(t *testing.T) {
	conn := dial(t)
	exchange, _ := setup(t, amqp.Table{"x-max-length": int64(1), "x-overflow": "reject-publish"})
	p := newPublisher(t, conn)
	ctx := brokertest.Context(t, 10*time.Second)

	if err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(exchange, "k")); err != nil {
		t.Fatalf("first Publish: %v", err)
	}
	err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(exchange, "k"))
	if !errors.Is(err, broker.ErrNacked) {
		t.Fatalf("Publish to a full reject-publish queue = %v, want ErrNacked", err)
	}
}

func TestPublishBatchOf10kAllConfirmed(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn)
	ctx := brokertest.Context(t, 2*time.Minute)

	jobs := make([]broker.Job, 10_000)
	for i := range jobs {
		jobs[i] = broker.Job{Type: "bulk", Payload: map[string]any{"n": i}}
	}
	if err := p.PublishBatch(ctx, jobs, broker.To(exchange, "k")); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	seen := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		if j.ID == "" || seen[j.ID] {
			t.Fatalf("job id %q empty or repeated", j.ID)
		}
		seen[j.ID] = true
	}
	if n := brokertest.Depth(t, queue); n != len(jobs) {
		t.Fatalf("queue holds %d jobs, want %d", n, len(jobs))
	}
}

func TestPublishBatchReportsExactlyTheFailedJobs(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn)
	ctx := brokertest.Context(t, 30*time.Second)

	jobs := []broker.Job{{Type: "a"}, {Type: ""}, {Type: "c"}}
	err := p.PublishBatch(ctx, jobs, broker.To(exchange, "k"))
	var be *broker.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("PublishBatch = %v, want *BatchError", err)
	}
	if len(be.Failed) != 1 || be.Failed[0].Index != 1 || !errors.Is(err, broker.ErrInvalidJob) {
		t.Fatalf("failures = %+v, want only index 1 (invalid job)", be.Failed)
	}
	if n := brokertest.Depth(t, queue); n != 2 {
		t.Fatalf("queue holds %d jobs, want 2", n)
	}
}

func TestPublishConcurrentPipelined(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn)
	ctx := brokertest.Context(t, time.Minute)

	const workers, each = 32, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(exchange, "k")); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d publishes failed, first: %v", len(failures), failures[0])
	}
	if n := brokertest.Depth(t, queue); n != workers*each {
		t.Fatalf("queue holds %d jobs, want %d", n, workers*each)
	}
}

func TestPublishWithoutRouteOrTarget(t *testing.T) {
	conn := dial(t)
	p := newPublisher(t, conn)
	err := p.Publish(brokertest.Context(t, 5*time.Second), broker.Job{Type: "unknown"})
	if !errors.Is(err, broker.ErrNoRoute) {
		t.Fatalf("Publish without a route = %v, want ErrNoRoute", err)
	}
}

type staticRouter map[string][2]string

func (r staticRouter) Route(jobType string) (string, string, bool) {
	x, ok := r[jobType]
	return x[0], x[1], ok
}

func TestPublishRoutesByType(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn, broker.WithRouter(staticRouter{"email.send": {exchange, "k"}}))
	ctx := brokertest.Context(t, 5*time.Second)
	if err := p.Publish(ctx, broker.Job{Type: "email.send"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := p.Publish(ctx, broker.Job{Type: "other"}); !errors.Is(err, broker.ErrNoRoute) {
		t.Fatalf("Publish of an unrouted type = %v, want ErrNoRoute", err)
	}
	if n := brokertest.Depth(t, queue); n != 1 {
		t.Fatalf("queue holds %d jobs, want 1", n)
	}
}

func TestPublishAfterCloseFails(t *testing.T) {
	conn := dial(t)
	exchange, _ := setup(t, nil)
	p, err := broker.NewPublisher(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := brokertest.Context(t, 5*time.Second)
	if err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(exchange, "k")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(exchange, "k")); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
}

func TestPublishHonoursCancelledContext(t *testing.T) {
	conn := dial(t)
	exchange, queue := setup(t, nil)
	p := newPublisher(t, conn)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Publish(ctx, broker.Job{Type: "t"}, broker.To(exchange, "k")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled ctx = %v, want context.Canceled", err)
	}
	if n := brokertest.Depth(t, queue); n != 0 {
		t.Fatalf("queue holds %d jobs, want 0", n)
	}
}

// TestPublishBatchHoldsNoWrittenBodies: a batch of large jobs holds in
// memory only what the caller gave it, not the encoded body of every job
// already written and awaiting its confirm. 100 jobs of 1 MiB share one
// payload; the live heap, read as the 91st job is published, must not hold
// the 90 encoded bodies before it.
func TestPublishBatchHoldsNoWrittenBodies(t *testing.T) {
	const mib = 1 << 20
	var live uint64
	var seen int
	obs := broker.ObserverFuncs{OnPublish: func(ctx context.Context, _ broker.PublishInfo, _ *broker.Envelope) (context.Context, func(error)) {
		if seen++; seen == 91 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			live = ms.HeapAlloc
		}
		return ctx, nil
	}}
	conn := dial(t, broker.WithObserver(obs))
	queue := brokertest.Queue(t, "batch-memory", nil)
	p := newPublisher(t, conn)
	data := make([]byte, mib)
	jobs := make([]broker.Job, 100)
	for i := range jobs {
		jobs[i] = broker.Job{Type: "large", Payload: data}
	}
	if err := p.PublishBatch(brokertest.Context(t, time.Minute), jobs, broker.ToQueue(queue)); err != nil {
		t.Fatal(err)
	}
	if seen < 91 {
		t.Fatalf("the observer saw %d publishes, want 100", seen)
	}
	t.Logf("live heap at the 91st job: %.1f MiB", float64(live)/mib)
	if live > 32*mib {
		t.Fatalf("live heap at the 91st of 100 jobs of 1 MiB is %.1f MiB: the batch holds the bodies it wrote", float64(live)/mib)
	}
	if n := brokertest.Depth(t, queue); n != len(jobs) {
		t.Fatalf("queue holds %d jobs, want %d", n, len(jobs))
	}
}

// writeCounter counts the writes of the connections it dials once armed:
// what write(2) is called for.
type writeCounter struct {
	armed  atomic.Bool
	writes atomic.Int64
}

func (w *writeCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := new(net.Dialer).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, w: w}, nil
}

type countedConn struct {
	net.Conn
	w *writeCounter
}

func (c *countedConn) Write(b []byte) (int, error) {
	if c.w.armed.Load() {
		c.w.writes.Add(1)
	}
	return c.Conn.Write(b)
}

// TestPublishBatchWritesInBulkWhileTheWindowSlides: once more jobs are
// written than the window holds, each next job waits for the oldest's
// confirm. A confirm already in needs no flush, so the jobs keep leaving
// in writes of a full buffer, not one write each.
func TestPublishBatchWritesInBulkWhileTheWindowSlides(t *testing.T) {
	var wc writeCounter
	conn := dial(t, broker.WithDialer(wc.dial))
	queue := brokertest.Queue(t, "batch-writes", nil)
	const window, jobs = 64, 4000
	p := newPublisher(t, conn, broker.WithBatchWindow(window))
	ctx := brokertest.Context(t, time.Minute)
	// The channel and the queue's check come first, outside the count.
	if err := p.Publish(ctx, broker.Job{Type: "warm"}, broker.ToQueue(queue)); err != nil {
		t.Fatal(err)
	}
	batch := make([]broker.Job, jobs)
	for i := range batch {
		batch[i] = broker.Job{Type: "bulk", Payload: map[string]any{"n": i}}
	}
	wc.armed.Store(true)
	err := p.PublishBatch(ctx, batch, broker.ToQueue(queue))
	wc.armed.Store(false)
	if err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	writes := wc.writes.Load()
	t.Logf("%d jobs, window %d: %d writes", jobs, window, writes)
	// A write per job once the window is full would be jobs-window writes.
	if writes > jobs/4 {
		t.Fatalf("%d jobs took %d writes: the batch flushes for each job while its window slides", jobs, writes)
	}
	if n := brokertest.Depth(t, queue); n != jobs+1 {
		t.Fatalf("queue holds %d jobs, want %d", n, jobs+1)
	}
}
