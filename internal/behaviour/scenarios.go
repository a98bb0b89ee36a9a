package behaviour

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

var scenarios = []scenario{
	{"PublishConfirmedHandledOnce", publishHandledOnce},
	{"HandlerErrorRetriedThenSucceeds", retriedThenSucceeds},
	{"ExhaustedRetriesDeadLettered", exhaustedDeadLettered},
	{"PermanentErrorDeadLetteredAtOnce", permanentDeadLettered},
	{"UnroutableMandatoryPublish", unroutable},
	{"RequestReply", requestReply},
	{"PrefetchRespected", prefetchRespected},
	{"ClosedConnectionRedeliversUnacked", closedRedelivers},
	{"PurgeAndPassiveDeclareCounts", purgeAndCounts},
	{"ExpiredMessagesDeadLettered", expiredDeadLettered},
	{"ScheduledJobAfterItsDelay", scheduledAfterDelay},
	{"QuorumDeliveryLimitDeadLetters", quorumDeliveryLimit},
	{"RejectedDeadLettered", rejectedDeadLettered},
}

// jobType is the job type of every scenario; each has its own exchange.
const jobType = "behaviour.job"

// setup is one scenario's topology and connections.
type setup struct {
	topo      *topology.Topology
	queue     string // the work queue
	dlq       string
	worker    *broker.Conn
	producer  *broker.Conn
	pub       *broker.Publisher
	exchange  string
	queueArgs string // extra YAML of the work queue, e.g. "message_ttl: 1s"
}

// newSetup applies a topology of one exchange and one classic work queue
// (retries: maxAttempts, 1s then 2s, no jitter) routing jobType, and dials a worker's and a producer's
// connection.
func newSetup(t *testing.T, target Target, maxAttempts int, queueArgs string) *setup {
	t.Helper()
	s := &setup{exchange: name(t, "x"), queue: name(t, "q"), queueArgs: queueArgs}
	s.topo = target.Apply(t, fmt.Sprintf(`
version: 1
defaults:
  queue_type: classic
  retry: {max_attempts: %d, initial_interval: 1s, max_interval: 2s, jitter: 0}
exchanges:
  %s: {type: direct}
queues:
  %s: {%s}
bindings:
  - {exchange: %s, queue: %s, routing_key: %s}
routes:
  %s: {exchange: %s}
`, maxAttempts, s.exchange, s.queue, queueArgs, s.exchange, s.queue, jobType, jobType, s.exchange))
	q, ok := s.topo.Queue(s.queue)
	if !ok || q.DeadLetterQueue == "" {
		t.Fatalf("topology: queue %s or its dead-letter queue missing", s.queue)
	}
	s.dlq = q.DeadLetterQueue
	s.worker, s.producer = target.Dial(t), target.Dial(t)
	pub, err := broker.NewPublisher(s.producer, broker.WithRouter(s.topo))
	must(t, err)
	t.Cleanup(func() { pub.Close(context.Background()) })
	s.pub = pub
	return s
}

func publishHandledOnce(t *testing.T, target Target) {
	s := newSetup(t, target, 3, "")
	l := newLedger()
	runPool(t, s.worker, s.topo, l.handler(func(ctx context.Context, job *worker.Job) error { return nil }))
	var ids []string
	for i := range 5 {
		ids = append(ids, l.publish(t, s.pub, broker.Job{Type: jobType, Payload: i}))
	}
	target.Await(t, "5 jobs handled", func() bool { return l.count("handled") == 5 })
	target.Await(t, "the queue empty", func() bool { return depth(t, s.worker, s.queue) == 0 })
	for _, id := range ids {
		if got := l.attemptsOf(id); !slices.Equal(got, []int{1}) {
			t.Errorf("job %s: attempts %v, want [1]", id, got)
		}
	}
	l.check(t)
}

func retriedThenSucceeds(t *testing.T, target Target) {
	s := newSetup(t, target, 3, "")
	l := newLedger()
	var lastErrors []string
	runPool(t, s.worker, s.topo, l.handler(func(ctx context.Context, job *worker.Job) error {
		if job.MaxAttempts != 3 {
			return worker.Permanent(fmt.Errorf("max attempts %d, want 3", job.MaxAttempts))
		}
		if f := job.Envelope.Failure; f != nil {
			lastErrors = append(lastErrors, f.Error)
		}
		if job.Attempt < 3 {
			return fmt.Errorf("attempt %d failed", job.Attempt)
		}
		return nil
	}), worker.WithQueue(s.queue, worker.Concurrency(1)))
	id := l.publish(t, s.pub, broker.Job{Type: jobType, Payload: "x"})
	target.Await(t, "the job handled", func() bool { return l.count("handled") == 1 })
	if got := l.attemptsOf(id); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("attempts %v, want [1 2 3]", got)
	}
	if want := []string{"attempt 1 failed", "attempt 2 failed"}; !slices.Equal(lastErrors, want) {
		t.Errorf("the retries carried the errors %q, want %q", lastErrors, want)
	}
	l.check(t)
}

func exhaustedDeadLettered(t *testing.T, target Target) {
	s := newSetup(t, target, 2, "")
	l := newLedger()
	runPool(t, s.worker, s.topo, l.handler(func(ctx context.Context, job *worker.Job) error {
		return errors.New("boom")
	}))
	id := l.publish(t, s.pub, broker.Job{Type: jobType, Payload: "x"})
	es := takeDeadLetters(t, target, s.worker, s.dlq, 1)
	l.deadLettered(es)
	e := es[0]
	if e.Envelope.ID != id || e.By != "warren" || e.Attempts != 2 || !strings.Contains(e.Error, "boom") || e.Class == "" ||
		e.Origin.Queue != s.queue || len(e.Deaths) != 0 {
		t.Errorf("dead letter: id %s by %q, attempts %d, class %q, error %q, origin %+v, x-death %v; want %s by warren after 2 attempts with boom from %s, no x-death",
			e.Envelope.ID, e.By, e.Attempts, e.Class, e.Error, e.Origin, e.Deaths, id, s.queue)
	}
	if got := l.attemptsOf(id); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("attempts %v, want [1 2]", got)
	}
	l.check(t)
}

func permanentDeadLettered(t *testing.T, target Target) {
	s := newSetup(t, target, 5, "")
	l := newLedger()
	runPool(t, s.worker, s.topo, l.handler(func(ctx context.Context, job *worker.Job) error {
		return worker.Permanent(errors.New("bad input"))
	}))
	id := l.publish(t, s.pub, broker.Job{Type: jobType, Payload: "x"})
	es := takeDeadLetters(t, target, s.worker, s.dlq, 1)
	l.deadLettered(es)
	if e := es[0]; e.By != "warren" || e.Attempts != 1 || !strings.Contains(e.Error, "bad input") {
		t.Errorf("dead letter by %q after %d attempts: %q; want by warren after 1 attempt with bad input", e.By, e.Attempts, e.Error)
	}
	if got := l.attemptsOf(id); !slices.Equal(got, []int{1}) {
		t.Errorf("attempts %v, want [1]", got)
	}
	l.check(t)
}

func unroutable(t *testing.T, target Target) {
	s := newSetup(t, target, 1, "")
	err := s.pub.Publish(ctxOf(t), broker.Job{Type: jobType, Payload: "x"}, broker.To(s.exchange, "behaviour.nowhere"))
	if !errors.Is(err, broker.ErrUnroutable) {
		t.Fatalf("publish to an unbound routing key: %v, want ErrUnroutable", err)
	}
	// The publisher still works after a return.
	l := newLedger()
	l.publish(t, s.pub, broker.Job{Type: jobType, Payload: "x"})
	target.Await(t, "the routable job queued", func() bool { return depth(t, s.worker, s.queue) == 1 })
	runPool(t, s.worker, s.topo, l.handler(func(ctx context.Context, job *worker.Job) error { return nil }))
	target.Await(t, "the job handled", func() bool { return l.count("handled") == 1 })
	l.check(t)
}

func requestReply(t *testing.T, target Target) {
	s := newSetup(t, target, 3, "")
	l := newLedger()
	runPool(t, s.worker, s.topo, worker.TypedResult(func(ctx context.Context, job *worker.Job, in string) (string, error) {
		if in == "bad" {
			return "", worker.Permanent(errors.New("no such report"))
		}
		l.outcome(job.ID, "handled")
		return "rendered " + in, nil
	}))
	caller, err := broker.NewCaller(s.producer, broker.WithCallRouter(s.topo))
	must(t, err)
	defer caller.Close(context.Background())
	ctx := ctxOf(t)

	okID, err := broker.NewJobID()
	must(t, err)
	l.published1(okID)
	reply, err := caller.Call(ctx, broker.Job{ID: okID, Type: jobType, Payload: "q3"})
	must(t, err)
	var got string
	if err := reply.Decode(&got); err != nil || got != "rendered q3" {
		t.Errorf("reply %q (%v), want \"rendered q3\"", got, err)
	}

	badID, err := broker.NewJobID()
	must(t, err)
	l.published1(badID)
	_, err = caller.Call(ctx, broker.Job{ID: badID, Type: jobType, Payload: "bad"})
	var remote *broker.RemoteError
	if !errors.As(err, &remote) || remote.Message != "no such report" || remote.RequestID != badID {
		t.Errorf("call: %v, want a RemoteError of request %s saying no such report", err, badID)
	}
	l.deadLettered(takeDeadLetters(t, target, s.worker, s.dlq, 1))
	l.check(t)
}

// consume starts a consumer of queue with the prefetch given.
func consume(t testing.TB, conn *broker.Conn, queue string, prefetch int) *broker.Consumer {
	t.Helper()
	c, err := broker.Consume(ctxOf(t), conn, queue, broker.WithPrefetch(prefetch))
	must(t, err)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// next takes the consumer's next delivery, failing t after Timeout.
func next(t testing.TB, c *broker.Consumer) *broker.Delivery {
	t.Helper()
	d, ok := c.Next(ctxOf(t))
	if !ok {
		t.Fatalf("no delivery from %s within %v: %v", c.Queue(), Timeout, c.Err())
	}
	return d
}

// nothingMore fails t if c delivers within a short while.
func nothingMore(t testing.TB, c *broker.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if d, ok := c.Next(ctx); ok {
		t.Fatalf("delivery of %s beyond the prefetch window", d.Envelope.ID)
	}
}

func prefetchRespected(t *testing.T, target Target) {
	s := newSetup(t, target, 1, "")
	l := newLedger()
	for i := range 4 {
		l.publish(t, s.pub, broker.Job{Type: jobType, Payload: i})
	}
	c := consume(t, s.worker, s.queue, 2)
	first, second := next(t, c), next(t, c)
	nothingMore(t, c)
	must(t, first.Ack())
	l.outcome(first.Envelope.ID, "handled")
	third := next(t, c)
	nothingMore(t, c)
	for _, d := range []*broker.Delivery{second, third} {
		must(t, d.Ack())
		l.outcome(d.Envelope.ID, "handled")
	}
	fourth := next(t, c)
	must(t, fourth.Ack())
	l.outcome(fourth.Envelope.ID, "handled")
	l.check(t)
}

func closedRedelivers(t *testing.T, target Target) {
	s := newSetup(t, target, 1, "")
	l := newLedger()
	for i := range 3 {
		l.publish(t, s.pub, broker.Job{Type: jobType, Payload: i})
	}
	doomed := target.Dial(t)
	c := consume(t, doomed, s.queue, 3)
	held := map[string]bool{}
	for range 3 {
		d := next(t, c)
		if d.Redelivered {
			t.Errorf("job %s redelivered on its first delivery", d.Envelope.ID)
		}
		held[d.Envelope.ID] = true
	}
	must(t, doomed.Close()) // with three jobs unacked
	c2 := consume(t, s.worker, s.queue, 3)
	for range 3 {
		d := next(t, c2)
		if !d.Redelivered || !held[d.Envelope.ID] {
			t.Errorf("job %s: redelivered %v, held before %v; want both", d.Envelope.ID, d.Redelivered, held[d.Envelope.ID])
		}
		must(t, d.Ack())
		l.outcome(d.Envelope.ID, "handled")
	}
	l.check(t)
}

func purgeAndCounts(t *testing.T, target Target) {
	s := newSetup(t, target, 1, "")
	l := newLedger()
	var ids []string
	for i := range 3 {
		ids = append(ids, l.publish(t, s.pub, broker.Job{Type: jobType, Payload: i}))
	}
	ctx := ctxOf(t)
	d := broker.NewDeclarer(s.worker)
	defer d.Close(ctx)
	info, err := d.QueueInfo(ctx, s.queue)
	must(t, err)
	if info.Messages != 3 || info.Consumers != 0 {
		t.Errorf("queue info %+v, want 3 messages, 0 consumers", info)
	}
	c := consume(t, s.worker, s.queue, 1)
	taken := next(t, c)
	target.Await(t, "one consumer, 2 ready", func() bool {
		info, err = d.QueueInfo(ctx, s.queue)
		must(t, err)
		return info.Messages == 2 && info.Consumers == 1
	})
	n, err := d.Purge(ctx, s.queue)
	must(t, err)
	if n != 2 {
		t.Errorf("purge removed %d, want 2 (the unacked one stays)", n)
	}
	must(t, taken.Ack())
	l.outcome(taken.Envelope.ID, "handled")
	for _, id := range ids {
		if id != taken.Envelope.ID {
			l.outcome(id, "purged")
		}
	}
	nothingMore(t, c)
	info, err = d.QueueInfo(ctx, s.queue)
	must(t, err)
	if info.Messages != 0 {
		t.Errorf("after purge: %d messages, want 0", info.Messages)
	}
	l.check(t)
}

func expiredDeadLettered(t *testing.T, target Target) {
	s := newSetup(t, target, 1, "message_ttl: 2s")
	l := newLedger()
	byQueue := l.publish(t, s.pub, broker.Job{Type: jobType, Payload: "queue ttl"})
	// A per-message expiration, shorter than the queue's TTL.
	env, err := broker.NewEnvelope(broker.Job{Type: jobType, Payload: "own expiration"})
	must(t, err)
	msg := env.Message()
	msg.Expiration = "1000"
	snd, err := broker.NewSender(s.producer)
	must(t, err)
	defer snd.Close(context.Background())
	must(t, snd.PublishMessage(ctxOf(t), "", s.queue, msg))
	l.published1(env.ID)

	target.Pass(t, 500*time.Millisecond)
	if n := depth(t, s.worker, s.queue); n != 2 {
		t.Errorf("after 0.5s the queue holds %d, want 2 (nothing expired yet)", n)
	}
	es := takeDeadLetters(t, target, s.worker, s.dlq, 2)
	l.deadLettered(es)
	for _, e := range es {
		if e.By != "rabbitmq" || e.Class != "rabbitmq:expired" || len(e.Deaths) != 1 ||
			e.Deaths[0].Reason != "expired" || e.Deaths[0].Queue != s.queue || e.Deaths[0].Count != 1 {
			t.Errorf("dead letter %s: by %q, class %q, x-death %+v; want expired from %s once, by rabbitmq", e.Envelope.ID, e.By, e.Class, e.Deaths, s.queue)
		}
	}
	for _, e := range es {
		want := map[string][2]string{byQueue: {s.exchange, jobType}, env.ID: {"", s.queue}}[e.Envelope.ID]
		if d := e.Deaths; len(d) == 1 && (d[0].Exchange != want[0] || !slices.Equal(d[0].RoutingKeys, []string{want[1]}) || d[0].Time.IsZero()) {
			t.Errorf("x-death of %s: exchange %q, routing keys %q, time %v; want %q, [%q], a time", e.Envelope.ID, d[0].Exchange, d[0].RoutingKeys, d[0].Time, want[0], want[1])
		}
	}
	// Only a queue's head expires: the message with the shorter
	// expiration waits behind the other and leaves after it.
	if es[0].Envelope.ID != byQueue || es[1].Envelope.ID != env.ID {
		t.Errorf("dead letters in the order %s, %s; want %s (the head, queue TTL) then %s (own expiration)", es[0].Envelope.ID, es[1].Envelope.ID, byQueue, env.ID)
	}
	l.check(t)
}

func scheduledAfterDelay(t *testing.T, target Target) {
	s := newSetup(t, target, 1, "")
	l := newLedger()
	runPool(t, s.worker, s.topo, l.handler(func(ctx context.Context, job *worker.Job) error { return nil }))
	l.publish(t, s.pub, broker.Job{Type: jobType, Payload: "later"}, broker.In(2*time.Second))
	target.Pass(t, time.Second)
	if n := l.count("handled"); n != 0 {
		t.Fatalf("the job delayed 2s was handled after 1s")
	}
	target.Await(t, "the scheduled job handled", func() bool { return l.count("handled") == 1 })
	l.check(t)
}

func quorumDeliveryLimit(t *testing.T, target Target) {
	s := newSetup(t, target, 1, "type: quorum, delivery_limit: 2")
	l := newLedger()
	id := l.publish(t, s.pub, broker.Job{Type: jobType, Payload: "poison"})
	c := consume(t, s.worker, s.queue, 1)
	// Delivered once, then again after each of two requeues; the third
	// requeue passes the limit and the broker dead-letters the job.
	for want := range 3 {
		d := next(t, c)
		if d.Envelope.ID != id || d.DeliveryCount != want || d.Redelivered != (want > 0) {
			t.Errorf("delivery %d: job %s, delivery count %d, redelivered %v; want %s, %d, %v", want+1, d.Envelope.ID, d.DeliveryCount, d.Redelivered, id, want, want > 0)
		}
		must(t, d.Requeue())
	}
	es := takeDeadLetters(t, target, s.worker, s.dlq, 1)
	l.deadLettered(es)
	if e := es[0]; e.By != "rabbitmq" || e.Class != "rabbitmq:delivery_limit" || len(e.Deaths) != 1 || e.Deaths[0].Queue != s.queue {
		t.Errorf("dead letter by %q, class %q, x-death %+v; want delivery_limit from %s, by rabbitmq", e.By, e.Class, e.Deaths, s.queue)
	}
	nothingMore(t, c)
	l.check(t)
}

func rejectedDeadLettered(t *testing.T, target Target) {
	s := newSetup(t, target, 1, "")
	l := newLedger()
	id := l.publish(t, s.pub, broker.Job{Type: jobType, Payload: "x"})
	c := consume(t, s.worker, s.queue, 1)
	d := next(t, c)
	must(t, d.Reject())
	es := takeDeadLetters(t, target, s.worker, s.dlq, 1)
	l.deadLettered(es)
	e := es[0]
	if e.Envelope.ID != id || e.By != "rabbitmq" || e.Class != "rabbitmq:rejected" || len(e.Deaths) != 1 ||
		e.Deaths[0].Queue != s.queue || e.Deaths[0].Exchange != s.exchange || e.Deaths[0].Count != 1 {
		t.Errorf("dead letter %s by %q, class %q, x-death %+v; want %s rejected from %s (published to %s) once, by rabbitmq", e.Envelope.ID, e.By, e.Class, e.Deaths, id, s.queue, s.exchange)
	}
	if first := e.Envelope.Headers["x-first-death-reason"]; first != "rejected" {
		t.Errorf("x-first-death-reason %v, want rejected", first)
	}
	nothingMore(t, c)
	l.check(t)
}
