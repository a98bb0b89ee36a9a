package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/worker"
)

// TestForgedAttemptHeadersCannotRetryForever: jobs whose warren-attempt
// header was forged (negative, zero, huge, not a number, or past the
// policy's last attempt) are handled at most once and parked; none is
// retried, so no header can keep a job going round.
func TestForgedAttemptHeadersCannotRetryForever(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{retry: "{max_attempts: 3, initial_interval: 1s, jitter: 0}"})
	handled := newLedger()
	mux := worker.NewMux()
	mux.HandleFunc("fail", func(ctx context.Context, job *worker.Job) error {
		handled.add(job.ID)
		return fmt.Errorf("always fails (attempt %d)", job.Attempt)
	})
	outcomes := newLedger()
	f.run(mux, worker.WithObserver(worker.OutcomeFunc(outcomes.observe)))

	body, err := msgpack.Marshal(map[string]any{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		attempt any
		class   string // the class it is parked with
		runs    int    // times the handler sees it
	}{
		{"negative", int64(-5), worker.ClassMalformed, 0},
		{"zero", int32(0), worker.ClassMalformed, 0},
		{"huge", int64(1) << 40, worker.ClassMalformed, 0},
		{"past the limit of any job", int64(broker.MaxAttempt + 1), worker.ClassMalformed, 0},
		{"not a number", "1e9", worker.ClassMalformed, 0},
		{"a table", amqp.Table{"n": int64(1)}, worker.ClassMalformed, 0},
		{"past the policy's last attempt", int64(broker.MaxAttempt), worker.ClassError, 1},
		{"at the policy's last attempt", int16(3), worker.ClassError, 1},
	}
	ctx := brokertest.Context(t, 30*time.Second)
	ids := make(map[string]int, len(cases)) // id -> case
	for i, c := range cases {
		id := fmt.Sprintf("forged-%d", i)
		ids[id] = i
		err := f.snd.PublishMessage(ctx, f.exchange, "fail", broker.Message{
			MessageID: id, Type: "fail", ContentType: broker.ContentType, DeliveryMode: amqp.Persistent,
			Headers: broker.Table{broker.HeaderAttempt: c.attempt}, Body: body,
		})
		if err != nil {
			t.Fatalf("%s: publish: %v", c.name, err)
		}
	}

	parked := f.dlq(len(cases), 20*time.Second)
	for id, i := range ids {
		c := cases[i]
		d, ok := parked[id]
		if !ok {
			t.Errorf("%s: not in the dead-letter queue", c.name)
			continue
		}
		if got := d.Headers[broker.HeaderErrorClass]; got != c.class {
			t.Errorf("%s: parked with class %v, want %s (error %v)", c.name, got, c.class, d.Headers[broker.HeaderError])
		}
		handled.mu.Lock()
		runs := handled.handled[id]
		handled.mu.Unlock()
		if runs != c.runs {
			t.Errorf("%s: handled %d times, want %d", c.name, runs, c.runs)
		}
	}
	testkit.WaitFor(t, 5*time.Second, "the outcomes", func() bool { return outcomes.status(worker.DeadLettered) == len(cases) })
	if n := outcomes.status(worker.Retried); n != 0 {
		t.Errorf("%d retries of forged jobs, want none", n)
	}
	if n := brokertest.Depth(t, f.queue); n != 0 {
		t.Errorf("%d jobs left in the work queue", n)
	}
}
