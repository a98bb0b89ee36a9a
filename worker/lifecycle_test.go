package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/brokertest/rawmsg"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// TestDefaultRetriesReachTheDeadLetterQueue: jobs that always fail, under
// the default retry policy (5 attempts from 1 s, with jitter), all end in
// the dead-letter queue after their fifth attempt. Their delays cross the
// delay cascade's levels again and again; a retried job that carried the
// x-death header of its earlier trips was taken by RabbitMQ 3.x for a
// dead-letter cycle and dropped (classic delay queues) or stuck for ever
// (quorum), depending on the jitter drawn.
func TestDefaultRetriesReachTheDeadLetterQueue(t *testing.T) {
	t.Parallel()
	const jobs = 30
	f := newFixture(t, fixtureOpts{retry: "default"})
	mux := worker.NewMux()
	mux.HandleFunc("fail", func(ctx context.Context, job *worker.Job) error {
		return errors.New("always fails")
	})
	l := newLedger()
	f.run(mux, worker.WithObserver(worker.OutcomeFunc(l.observe)))
	payloads := make([]any, jobs)
	for i := range payloads {
		payloads[i] = i
	}
	ids := f.publish("fail", payloads...)

	// 1+2+4+8 s of delays, with up to 50% jitter: about 23 s at the most.
	dlq := topology.DeadLetterQueueName(f.queue)
	deadline := time.Now().Add(60 * time.Second)
	for brokertest.Depth(t, dlq) < jobs && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := brokertest.Depth(t, dlq); n != jobs {
		t.Fatalf("%d of %d jobs reached the dead-letter queue within 60 s; outcomes: %d retried, %d dead-lettered",
			n, jobs, l.status(worker.Retried), l.status(worker.DeadLettered))
	}
	got := f.dlq(jobs, 10*time.Second)
	for _, id := range ids {
		d, ok := got[id]
		if !ok {
			t.Errorf("job %s is not in the dead-letter queue", id)
			continue
		}
		env, err := rawmsg.Envelope(&d)
		if err != nil {
			t.Errorf("job %s: %v", id, err)
			continue
		}
		if env.Attempt != 5 {
			t.Errorf("job %s dead-lettered at attempt %d, want 5", id, env.Attempt)
		}
		for name := range env.Headers {
			t.Errorf("job %s: header %q reached the dead-letter queue", id, name)
		}
	}
	if n := brokertest.Depth(t, f.queue); n != 0 {
		t.Errorf("%d jobs left in the work queue", n)
	}
}
