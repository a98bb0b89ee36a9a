package warrentest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/internal/amqpmem"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// url is what the kit's connections are dialled with: the host is never
// looked up, the emulation answers.
const url = "amqp://guest:guest@warrentest/"

// Kit is an emulated broker with a topology declared on it, and the
// connections a test made to it. Everything it opened is closed by the
// test's cleanup.
type Kit struct {
	t    testing.TB
	mem  *amqpmem.Broker
	topo *topology.Topology

	mu    sync.Mutex
	conns []*broker.Conn
	conn  *broker.Conn
	pub   *broker.Publisher
}

// Option configures New.
type Option func(*options) error

type options struct {
	brokerOpts []broker.Option
}

// WithBrokerOptions adds options to every connection the kit dials (Conn,
// Dial), e.g. broker.WithLogger.
func WithBrokerOptions(opts ...broker.Option) Option {
	return func(o *options) error {
		o.brokerOpts = append(o.brokerOpts, opts...)
		return nil
	}
}

// New starts an emulated broker and declares topo on it (its work queues,
// their dead-letter and quarantine queues, the delay cascade). A failure
// fails the test. The broker and every connection are closed when the test
// ends.
func New(t testing.TB, topo *topology.Topology, opts ...Option) *Kit {
	t.Helper()
	if topo == nil {
		t.Fatal("warrentest: New: nil topology; load one with topology.Load or topology.Parse")
	}
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			t.Fatalf("warrentest: New: %v", err)
		}
	}
	k := &Kit{t: t, mem: amqpmem.New(), topo: topo}
	t.Cleanup(k.close)
	k.conn = k.dial(o.brokerOpts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := broker.NewDeclarer(k.conn)
	defer d.Close(ctx)
	report, err := topology.Declare(ctx, d, topo)
	if err != nil {
		t.Fatalf("warrentest: declare the topology: %v\n%v", err, report)
	}
	return k
}

func (k *Kit) dial(opts ...broker.Option) *broker.Conn {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append([]broker.Option{broker.WithDialer(k.mem.Dial), broker.WithName("warrentest")}, opts...)
	c, err := broker.Dial(ctx, []string{url}, all...)
	if err != nil {
		k.t.Fatalf("warrentest: dial the emulated broker: %v", err)
	}
	k.mu.Lock()
	k.conns = append(k.conns, c)
	k.mu.Unlock()
	return c
}

func (k *Kit) close() {
	k.mu.Lock()
	pub, conns := k.pub, k.conns
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if pub != nil {
		pub.Close(ctx)
	}
	for i := len(conns) - 1; i >= 0; i-- {
		conns[i].Close()
	}
	k.mem.Close()
}

// Conn is the kit's shared connection: build Publishers, Callers and Pools
// on it as on a real one. Do not close it; the kit does.
func (k *Kit) Conn() *broker.Conn { return k.conn }

// Dial opens another connection (a producer's apart from a worker's, as in
// production), closed when the test ends.
func (k *Kit) Dial(opts ...broker.Option) *broker.Conn {
	k.t.Helper()
	return k.dial(opts...)
}

// DialContext dials the emulated broker: pass it to broker.WithDialer to
// connect code that dials for itself (any URL then reaches the kit).
func (k *Kit) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return k.mem.Dial(ctx, network, addr)
}

// Topology is the topology the kit declared.
func (k *Kit) Topology() *topology.Topology { return k.topo }

// Publisher returns a Publisher on Conn that routes jobs by the topology,
// created on first use and closed by the kit.
func (k *Kit) Publisher() *broker.Publisher {
	k.t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.pub == nil {
		pub, err := broker.NewPublisher(k.conn, broker.WithRouter(k.topo))
		if err != nil {
			k.t.Fatalf("warrentest: publisher: %v", err)
		}
		k.pub = pub
	}
	return k.pub
}

// DropConnections breaks every connection to the kit's broker at once, as
// a network failure would: the broker returns their unacked jobs to their
// queues, marked redelivered, and the Conns reconnect (as they would to
// RabbitMQ), so a test can check that its code rides out a lost
// connection without losing a job.
func (k *Kit) DropConnections() { k.mem.DropConnections() }

// Now is the virtual time of the broker.
func (k *Kit) Now() time.Time { return k.mem.Now() }

// Advance moves the virtual clock forward: messages whose delay or TTL
// runs out in that time move on (a delayed job reaches its queue).
func (k *Kit) Advance(d time.Duration) { k.mem.Advance(d) }

// DrainShutdownTimeout is how long Drain's pool lets a job in flight
// finish once Drain's ctx has ended.
const DrainShutdownTimeout = time.Second

// Drain runs a worker.Pool with h on the kit's connection (opts are
// worker.NewPool's; without WithQueue every work queue is consumed) until
// nothing is left to do: every queue the pool consumes (Pool.Queues) is
// empty, no job is in flight, and no delayed job (a retry waiting for its
// backoff, a scheduled job) remains — when only delayed jobs are left, the
// virtual clock jumps to the next one's due time. A queue of the pool
// counts while it has no consumer, as after a dropped connection until
// the pool consumes it again. It returns the pool's error, or ctx's when
// ctx ends first. Jobs that are not handled stay where they are: in
// dead-letter queues, in queues nobody consumes (a paused queue among
// them). Drain moves the clock only for the delay cascade: a message TTL
// of a queue (x-message-ttl, a per-message expiration) runs out only when
// Advance passes it.
func (k *Kit) Drain(ctx context.Context, h worker.Handler, opts ...worker.Option) error {
	// When ctx ends with a job in flight, its handler gets a second
	// before its ctx is cancelled (worker.WithShutdownTimeout in opts
	// overrides it), so a hanging handler does not hold the test for the
	// pool's default of 30s.
	opts = append([]worker.Option{worker.WithShutdownTimeout(DrainShutdownTimeout)}, opts...)
	pool, err := worker.NewPool(k.conn, k.topo, h, opts...)
	if err != nil {
		return fmt.Errorf("warrentest: drain: %w", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	runErr := make(chan error, 1) // Run's one result
	go func() { runErr <- pool.Run(runCtx) }()
	stopped := func() error {
		stop()
		return <-runErr
	}
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		changed := k.mem.Changed()
		if k.idle(pool) && pool.Ready() == nil {
			at, ok := k.mem.NextExpiry(delayQueues...)
			if !ok {
				// Settled: confirm it holds once more after a pause, in
				// case a client-side step (an ack on its way) is pending.
				time.Sleep(2 * time.Millisecond)
				if k.idle(pool) {
					if _, ok := k.mem.NextExpiry(delayQueues...); !ok {
						return stopped()
					}
				}
				continue
			}
			if d := at.Sub(k.mem.Now()); d > 0 {
				k.mem.Advance(d)
			} else {
				k.mem.Advance(0)
			}
			continue
		}
		select {
		case err := <-runErr:
			if err == nil {
				err = errors.New("the pool stopped before the queues drained")
			}
			return fmt.Errorf("warrentest: drain: %w", err)
		case <-ctx.Done():
			if err := stopped(); err != nil {
				return fmt.Errorf("warrentest: drain: %w (and %w)", ctx.Err(), err)
			}
			return fmt.Errorf("warrentest: drain: %w; still in the queues: %s", ctx.Err(), k.describe())
		case <-changed:
		case <-poll.C:
		}
	}
}

// delayQueues are the queues of the delay cascade, where retries and
// scheduled jobs wait.
var delayQueues = func() []string {
	names := make([]string, topology.DelayLevels)
	for level := range names {
		names[level] = topology.DelayExchangeName(level)
	}
	return names
}()

// idle says whether the broker holds nothing more for pool to do: no
// message is unacked anywhere; every queue the pool consumes, paused ones
// aside, is empty, and so is its quarantine (a pool reads its quarantine
// with basic.get, not with a consumer: see package worker); and so is
// every other queue with a consumer (a test's own).
//
// The pool's queues are those it was built for (Pool.Queues), not those
// the broker shows a consumer on: after a lost connection, a queue has no
// consumer until the pool consumes it again, and its jobs, back in the
// queue, wait for that. Drain's polls can miss a consumer's whole life
// (consume, deliver, connection lost) between two of them, so what they
// saw cannot stand for what the pool consumes.
func (k *Kit) idle(pool *worker.Pool) bool {
	ours := map[string]bool{}
	for _, name := range pool.Queues() {
		ours[name] = true
	}
	for _, name := range pool.Paused() {
		delete(ours, name) // nobody consumes it: its jobs stay, as Drain says
	}
	qs := k.mem.Queues() // one snapshot: every count of the same moment
	ready := make(map[string]int, len(qs))
	for _, q := range qs {
		if q.Unacked > 0 || q.Consumers > 0 && q.Ready > 0 {
			return false
		}
		ready[q.Name] = q.Ready
	}
	for name := range ours {
		if ready[name] > 0 {
			return false
		}
		if q, ok := k.topo.Queue(name); ok && q.QuarantineQueue != "" && ready[q.QuarantineQueue] > 0 {
			return false
		}
	}
	return true
}

func (k *Kit) describe() string {
	var parts []string
	for _, q := range k.mem.Queues() {
		if q.Ready > 0 || q.Unacked > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d ready, %d unacked, %d consumers", q.Name, q.Ready, q.Unacked, q.Consumers))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}

// Enqueued returns the jobs waiting in queue, head first, without
// consuming them; for a message that is not a well-formed job, an
// envelope of what could be read. A queue that does not exist fails the
// test.
func (k *Kit) Enqueued(queue string) []*broker.Envelope {
	k.t.Helper()
	return k.enqueued(k.t, queue)
}

func (k *Kit) enqueued(t testing.TB, queue string) []*broker.Envelope {
	t.Helper()
	msgs := k.messages(t, queue)
	out := make([]*broker.Envelope, 0, len(msgs))
	for _, m := range msgs {
		env, err := m.Envelope()
		if err != nil {
			env = &broker.Envelope{ID: m.MessageID, Type: m.Type, ContentType: m.ContentType, Headers: m.Headers, Body: m.Body}
		}
		out = append(out, env)
	}
	return out
}

func (k *Kit) messages(t testing.TB, queue string) []broker.Message {
	t.Helper()
	msgs, err := k.mem.Messages(queue)
	if err != nil {
		t.Fatalf("warrentest: %v; the topology's work queues are %v (their dead letters: DeadLettered)", err, queueNames(k.topo))
	}
	return msgs
}

func queueNames(t *topology.Topology) []string {
	var names []string
	for _, q := range t.WorkQueues() {
		names = append(names, q.Name)
	}
	return names
}

// RequireEnqueued returns the jobs of jobType waiting in queue, failing t
// when there is none.
func (k *Kit) RequireEnqueued(t testing.TB, queue, jobType string) []*broker.Envelope {
	t.Helper()
	var out []*broker.Envelope
	var types []string
	for _, env := range k.enqueued(t, queue) {
		if env.Type == jobType {
			out = append(out, env)
		}
		types = append(types, env.Type)
	}
	if len(out) == 0 {
		t.Fatalf("warrentest: no job of type %q in queue %q (it holds %d: %v)", jobType, queue, len(types), types)
	}
	return out
}

// DeadLettered returns the entries of the dead-letter queue of the work
// queue named queue (or of queue itself, when it is a dead-letter queue),
// with the reasons warren or RabbitMQ recorded, as warren dlq list reads
// them.
func (k *Kit) DeadLettered(queue string) []deadletter.Entry {
	k.t.Helper()
	return k.deadLettered(k.t, queue)
}

func (k *Kit) deadLettered(t testing.TB, queue string) []deadletter.Entry {
	t.Helper()
	dlq := queue
	if q, ok := k.topo.Queue(queue); ok && q.DeadLetterQueue != "" {
		dlq = q.DeadLetterQueue
	}
	msgs := k.messages(t, dlq)
	out := make([]deadletter.Entry, 0, len(msgs))
	for _, m := range msgs {
		env, err := m.Envelope()
		if err != nil {
			env = &broker.Envelope{ID: m.MessageID, Type: m.Type, ContentType: m.ContentType, Headers: m.Headers, Body: m.Body}
		}
		out = append(out, deadletter.NewEntry(&broker.Delivery{Envelope: env, Err: err}))
	}
	return out
}

// RequireDeadLettered returns the dead-letter entries of jobType for the
// work queue named queue (see DeadLettered), failing t when there is none.
func (k *Kit) RequireDeadLettered(t testing.TB, queue, jobType string) []deadletter.Entry {
	t.Helper()
	var out []deadletter.Entry
	var types []string
	for _, e := range k.deadLettered(t, queue) {
		if e.Envelope.Type == jobType {
			out = append(out, e)
		}
		types = append(types, e.Envelope.Type)
	}
	if len(out) == 0 {
		t.Fatalf("warrentest: no dead-lettered job of type %q for queue %q (its dead-letter queue holds %d: %v)", jobType, queue, len(types), types)
	}
	return out
}
