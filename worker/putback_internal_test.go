package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
)

// TestPutBackCancelsTheConsumerFirst returns a job not started while its
// consumer still consumes the queue, as a job that stops waiting for its
// rate limit does when the pool begins to stop, before Run cancels the
// consumers: the consumer is cancelled before the job's copy is
// published, so the copy waits in the queue rather than come back to the
// consumer (which would return it, and report it Requeued, a second
// time). Every job is reported Requeued once, and is in the queue once.
func TestPutBackCancelsTheConsumerFirst(t *testing.T) {
	t.Parallel()
	ex, queue := brokertest.Name(t, "x"), brokertest.Name(t, "q")
	topo := topotest.Apply(t, fmt.Sprintf(`version: 1
exchanges:
  %[1]s: {type: direct}
queues:
  %[2]s: {type: classic}
bindings:
  - exchange: %[1]s
    queue: %[2]s
    routing_keys: [ok]
routes:
  ok: {exchange: %[1]s}
`, ex, queue))
	conn := testkit.Dial(t, "worker-test-putback")
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())

	var mu sync.Mutex
	requeued := map[string]int{}
	p, err := NewPool(conn, topo, HandlerFunc(func(context.Context, *Job) error { return nil }),
		WithQueue(queue, Concurrency(1), Prefetch(8)),
		WithObserver(OutcomeFunc(func(o Outcome) {
			mu.Lock()
			defer mu.Unlock()
			if o.Status == Requeued {
				requeued[o.JobID]++
			}
		})))
	if err != nil {
		t.Fatal(err)
	}
	defer p.closePublisher()
	q := p.queues[0]

	ctx := brokertest.Context(t, 30*time.Second)
	c, err := p.consume(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	jobs := []broker.Job{{Type: "ok"}, {Type: "ok"}, {Type: "ok"}}
	if err := pub.PublishBatch(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	var ds []*broker.Delivery
	for range jobs {
		d, ok := c.Next(ctx)
		if !ok {
			t.Fatalf("a job published was not delivered: %v", c.Err())
		}
		ds = append(ds, d)
	}

	p.returnUnstarted(q, c, ds[0])
	// The prefetch has room for the copy: had c still consumed the queue,
	// the broker would have delivered it to c.
	if d, ok := c.Next(ctx); ok {
		t.Fatalf("job %s was delivered to the consumer that returned it: the consumer still consumed the queue when its copy was published", d.Envelope.ID)
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("the consumer was not cancelled: Next waited until %v", err)
	}

	p.putBack(ctx, q, c, ds[1:]) // as Run's shutdown returns the rest
	if err := p.closeConsumer(c); err != nil {
		t.Fatal(err)
	}
	if d := brokertest.Depth(t, queue); d != len(jobs) {
		t.Errorf("%d jobs in the queue, want %d", d, len(jobs))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, j := range jobs {
		if n := requeued[j.ID]; n != 1 {
			t.Errorf("job %s reported Requeued %d times, want once", j.ID, n)
		}
	}
}
