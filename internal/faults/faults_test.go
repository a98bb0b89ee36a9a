//go:build faults

package faults_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/rabbitnode"
	"github.com/warrenmq/warren/worker"
)

const (
	jobs      = 4000
	producers = 8
)

// TestNodeKilledAndRestarted: the node is killed with SIGKILL mid-run and
// started again on its data; durable queues and persistent jobs survive,
// clients reconnect, nothing confirmed is lost.
func TestNodeKilledAndRestarted(t *testing.T) {
	for _, qt := range []string{"classic", "quorum"} {
		t.Run(qt, func(t *testing.T) {
			n := rabbitnode.Start(t)
			r := newRun(t, []string{n.URL()}, qt)
			// RabbitMQ 3.x writes new queue definitions to disk up to 2s
			// after declaring them: a kill sooner loses the queue (not a
			// client's fault; a topology is applied long before).
			n.SyncMetadata(t)
			stop := r.work(nil)
			produced := r.produce(jobs, producers)
			r.after(jobs / 4)
			n.Kill(t)
			time.Sleep(time.Second)
			n.Restart(t)
			r.finish(produced, stop)
		})
	}
}

// TestStopAppStartApp: rabbitmqctl stop_app / start_app.
func TestStopAppStartApp(t *testing.T) {
	n := rabbitnode.Start(t)
	r := newRun(t, []string{n.URL()}, "quorum")
	stop := r.work(nil)
	produced := r.produce(jobs, producers)
	r.after(jobs / 4)
	n.StopApp(t)
	time.Sleep(time.Second)
	n.StartApp(t)
	r.finish(produced, stop)
}

// TestAllConnectionsClosed: the broker closes every client connection
// (rabbitmqctl close_all_connections), twice.
func TestAllConnectionsClosed(t *testing.T) {
	n := rabbitnode.Start(t)
	r := newRun(t, []string{n.URL()}, "classic")
	stop := r.work(nil)
	produced := r.produce(jobs, producers)
	r.after(jobs / 4)
	n.CloseAllConnections(t, "fault suite")
	r.after(jobs / 2)
	n.CloseAllConnections(t, "fault suite")
	r.finish(produced, stop)
}

// TestMemoryAlarm: a memory alarm blocks the publishers (they wait, within
// their ctx) while the pool drains what is queued; when the alarm clears,
// the publishers go on, and nothing is lost.
func TestMemoryAlarm(t *testing.T) {
	n := rabbitnode.Start(t)
	r := newRun(t, []string{n.URL()}, "classic")
	<-r.produce(jobs/2, producers) // a backlog, before any worker
	n.SetMemoryAlarm(t, true)
	produced := r.produce(jobs, producers) // blocked by the alarm
	stop := r.work(nil)
	r.after(jobs / 2) // the whole backlog drains during the alarm
	if got := r.ledger.total(); got != jobs/2 {
		t.Errorf("%d jobs confirmed during the alarm, want none beyond the %d before it", got-jobs/2, jobs/2)
	}
	n.SetMemoryAlarm(t, false)
	r.finish(produced, stop)
	if got := r.ledger.total(); got != jobs/2+jobs {
		t.Errorf("%d jobs confirmed in all, want %d", got, jobs/2+jobs)
	}
}

// TestConsumerTimeout: a job outlives the broker's consumer_timeout; the
// broker closes the channel (406), the job goes back to the queue, the pool
// consumes again and handles it (a second time), nothing is lost.
func TestConsumerTimeout(t *testing.T) {
	n := rabbitnode.Start(t, rabbitnode.WithConfig("consumer_timeout = 3000"))
	r := newRun(t, []string{n.URL()}, "classic")
	var once sync.Once
	slow := make(chan string, 1)
	stop := r.work(func(ctx context.Context, job *worker.Job) error {
		once.Do(func() {
			slow <- job.ID
			// Longer than consumer_timeout (the broker checks it about
			// once a minute on 3.x: wait up to its check).
			select {
			case <-time.After(75 * time.Second):
			case <-ctx.Done():
			}
		})
		return nil
	})
	produced := r.produce(500, 2)
	id := <-slow
	r.finish(produced, stop)
	r.ledger.mu.Lock()
	defer r.ledger.mu.Unlock()
	if r.ledger.handled[id] == 0 {
		t.Errorf("the slow job %s was never handled", id)
	}
}

// TestClusterLeaderKilled: a three-node cluster; the quorum queue's leader
// node is killed with SIGKILL; clients given the three URLs carry on.
func TestClusterLeaderKilled(t *testing.T) {
	c := rabbitnode.StartCluster(t, 3)
	r := newRun(t, c.URLs(), "quorum")
	for _, n := range c.Nodes() {
		n.SyncMetadata(t)
	}
	stop := r.work(nil)
	produced := r.produce(jobs, producers)
	r.after(jobs / 4)
	leader := c.Leader(t, r.queue)
	t.Logf("killing %s, the leader of %s", leader.Name(), r.queue)
	leader.Kill(t)
	r.after(jobs / 2)
	leader.Restart(t)
	r.finish(produced, stop)
}
