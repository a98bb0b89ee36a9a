//go:build faults

package faults_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// TestPublishBatchConnectionReset: the connection of a large PublishBatch
// is reset mid-batch, while jobs sit written but unflushed in its buffer
// and others wait for their confirms. The batch must fail with a
// *BatchError, and every job it does not list — every job it reports
// confirmed — must be in the queue: a flush that failed or a confirm that
// never came is a listed job, never a silent loss. The queue holds no job
// twice (nothing was republished).
func TestPublishBatchConnectionReset(t *testing.T) {
	queue := brokertest.Queue(t, "batch-reset", nil)
	p := startProxy(t, brokertest.URL(t))
	ctx := brokertest.Context(t, 2*time.Minute)
	conn, err := broker.Dial(ctx, []string{p.url}, broker.WithName(brokertest.ConnName(t, "batch-reset")), broker.WithoutReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	pub, err := broker.NewPublisher(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })

	const n = 40000
	jobs := make([]broker.Job, n)
	for i := range jobs {
		jobs[i] = broker.Job{ID: fmt.Sprintf("%s-%06d", queue, i), Type: "batch.reset", Payload: i}
	}
	done := make(chan error, 1)
	go func() { done <- pub.PublishBatch(ctx, jobs, broker.ToQueue(queue)) }()

	// Reset once a part of the batch is in: the rest is in flight or not
	// yet written.
	deadline := time.Now().Add(time.Minute)
	for brokertest.Depth(t, queue) < n/8 {
		select {
		case err := <-done:
			t.Fatalf("the batch of %d ended before the reset (err %v): make it larger", n, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch did not get an eighth of its jobs in within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.setReset(t, true)
	t.Cleanup(func() { p.setReset(t, false) })
	t.Logf("reset with %d of %d jobs in the queue", brokertest.Depth(t, queue), n)

	var batchErr error
	select {
	case batchErr = <-done:
	case <-time.After(time.Minute):
		t.Fatal("PublishBatch did not return within a minute of its connection's reset")
	}
	var be *broker.BatchError
	if !errors.As(batchErr, &be) {
		t.Fatalf("PublishBatch after a reset = %v, want a *BatchError", batchErr)
	}
	listed := make(map[string]bool, len(be.Failed))
	for _, f := range be.Failed {
		if f.JobID != jobs[f.Index].ID {
			t.Fatalf("failure at index %d names job %s, the job there is %s", f.Index, f.JobID, jobs[f.Index].ID)
		}
		listed[f.JobID] = true
	}
	if len(listed) == 0 || len(listed) == n {
		t.Fatalf("%d of %d jobs listed as failed: the reset should have come mid-batch", len(listed), n)
	}

	// The ledger: read the queue back on a connection of its own.
	in := map[string]int{}
	ch := brokertest.Channel(t)
	if err := ch.Qos(1000, 0, false); err != nil {
		t.Fatal(err)
	}
	depth := brokertest.Depth(t, queue)
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range depth {
		select {
		case d := <-deliveries:
			in[d.MessageId]++
		case <-time.After(30 * time.Second):
			t.Fatalf("read %d of the %d jobs in the queue, then nothing for 30s", len(in), depth)
		}
	}
	lost, dup, listedIn := 0, 0, 0
	for _, j := range jobs {
		c := in[j.ID]
		switch {
		case c > 1:
			dup++
		case c == 0 && !listed[j.ID]:
			lost++
			if lost <= 5 {
				t.Errorf("job %s was reported confirmed (not in the BatchError) and is not in the queue", j.ID)
			}
		case c == 1 && listed[j.ID]:
			listedIn++ // reached the broker, its confirm did not come back: allowed
		}
	}
	t.Logf("ledger: jobs=%d confirmed=%d listed=%d in_queue=%d listed_but_in=%d lost=%d duplicates=%d",
		n, n-len(listed), len(listed), depth, listedIn, lost, dup)
	if lost > 0 || dup > 0 {
		t.Fatalf("%d confirmed job(s) lost, %d duplicated", lost, dup)
	}
	// A caller branches on the cause: every failure is the lost connection.
	for _, f := range be.Failed {
		if !errors.Is(f.Err, broker.ErrClosed) {
			t.Fatalf("failure of job %s = %v, want one wrapping ErrClosed", f.JobID, f.Err)
		}
	}
}
