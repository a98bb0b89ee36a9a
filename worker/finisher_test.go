package worker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/queuetest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// finished records what a Finisher heard, and whether the job's
// delivery was still unacked then.
type finished struct {
	mu   sync.Mutex
	ends map[string][]worker.End
	fail map[string]int // job id: how many calls fail before one succeeds
}

func (f *finished) FinishJob(_ context.Context, job *worker.Job, end worker.End) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ends[job.ID] = append(f.ends[job.ID], end)
	if f.fail[job.ID] > 0 {
		f.fail[job.ID]--
		return errors.New("finisher failing on purpose")
	}
	return nil
}

func (f *finished) get(id string) []worker.End {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]worker.End(nil), f.ends[id]...)
}

// A Finisher hears of each job that ended, once, with how it ended and
// the handler's result; a failing Finisher leaves the job to run again.
func TestFinisher(t *testing.T) {
	t.Parallel()
	f := queuetest.New(t, "ok", "bad", "flaky")
	fin := &finished{ends: map[string][]worker.End{}, fail: map[string]int{}}
	ok, bad, flaky := brokertest.JobID(t), brokertest.JobID(t), brokertest.JobID(t)
	fin.fail[flaky] = 1
	var mu sync.Mutex
	runs := map[string]int{}
	mux := worker.NewMux()
	handle := func(ctx context.Context, job *worker.Job) error {
		mu.Lock()
		runs[job.ID]++
		mu.Unlock()
		if job.Type == "bad" {
			return worker.Permanent(errors.New("bad on purpose"))
		}
		job.SetResult("result of " + job.Type)
		return nil
	}
	for _, ty := range []string{"ok", "bad", "flaky"} {
		mux.HandleFunc(ty, handle)
	}
	f.Run(mux, worker.WithFinisher(fin))
	for id, ty := range map[string]string{ok: "ok", bad: "bad", flaky: "flaky"} {
		f.Publish(broker.Job{ID: id, Type: ty, Payload: 1})
	}
	f.WaitCount(worker.Succeeded, 2, 30*time.Second)
	f.WaitCount(worker.DeadLettered, 1, 30*time.Second)

	if e := fin.get(ok); len(e) != 1 || e[0].Status != worker.Succeeded || e[0].Result != "result of ok" || e[0].Err != nil {
		t.Errorf("ok: the finisher heard %+v, want one Succeeded with its result", e)
	}
	if e := fin.get(bad); len(e) != 1 || e[0].Status != worker.DeadLettered || e[0].Class != worker.ClassPermanent || e[0].Err == nil {
		t.Errorf("bad: the finisher heard %+v, want one DeadLettered of class permanent", e)
	}
	if got := brokertest.Depth(t, topology.DeadLetterQueueName(f.Queue)); got != 1 {
		t.Errorf("the dead-letter queue holds %d jobs, want 1: the finisher runs after the dead letter is stored", got)
	}
	// The first call failed: the job was returned and ran again.
	e := fin.get(flaky)
	if len(e) != 2 || e[0].Status != worker.Succeeded || e[1].Status != worker.Succeeded {
		t.Errorf("flaky: the finisher heard %+v, want Succeeded twice (the first call failed)", e)
	}
	mu.Lock()
	defer mu.Unlock()
	if runs[flaky] != 2 || runs[ok] != 1 || runs[bad] != 1 {
		t.Errorf("handler runs %v, want flaky 2 (its finisher failed once), ok 1, bad 1", runs)
	}
	if n := f.Count(worker.Requeued); n != 1 {
		t.Errorf("%d deliveries requeued, want 1 (the flaky job's first)", n)
	}
}

func TestWithFinisherNil(t *testing.T) {
	f := queuetest.New(t, "x")
	_, err := worker.NewPool(testkit.Dial(t, "finisher-nil"), f.Topo, worker.NewMux(), worker.WithFinisher(nil))
	if err == nil {
		t.Fatal("WithFinisher(nil): no error")
	}
}
