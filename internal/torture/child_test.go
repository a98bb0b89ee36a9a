//go:build torture

package torture_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// The worker child is this test binary run again with these variables
// set: init then runs the child (childMain) instead of the tests.
const (
	childURLEnv      = "WARREN_TORTURE_CHILD_URL"
	childTopologyEnv = "WARREN_TORTURE_CHILD_TOPOLOGY"
	childNameEnv     = "WARREN_TORTURE_CHILD_NAME"
)

func init() {
	if os.Getenv(childURLEnv) != "" {
		os.Exit(childMain())
	}
}

// workerChild consumes every work queue of the topology until its stdin
// (the parent's pipe) ends, then shuts down gracefully. It reports on
// stdout, one line per event, each line one write(2) so that a SIGKILL
// loses none that was written:
//
//	ran ID ATTEMPT                    a handler returned nil
//	out STATUS ID ATTEMPT CLASS QUEUE the pool settled a delivery (its observer)
//
// What each job's handler does is in its payload (see behaviour).
func workerChild(ctx context.Context) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "torture worker:", err)
		return 1
	}
	topo, err := topology.Parse("torture.yaml", []byte(os.Getenv(childTopologyEnv)))
	if err != nil {
		return fail(err)
	}
	log := childLogger()
	conn, err := dialChild(ctx, log)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	var rep reporter
	report := rep.report
	opts := []worker.Option{
		worker.WithLogger(log),
		worker.WithHandlerTimeout(handlerTimeout),
		worker.WithShutdownTimeout(10 * time.Second),
		worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) {
			class := o.Class
			if class == "" {
				class = "-"
			}
			report("out %s %s %d %s %s", o.Status, o.JobID, o.Attempt, class, o.Queue)
		})),
	}
	for _, q := range topo.Queues {
		if q.Derived {
			continue // dead-letter, quarantine and delay queues
		}
		opts = append(opts, worker.WithQueue(q.Name, worker.Concurrency(4), worker.Prefetch(8)))
	}
	pool, err := worker.NewPool(conn, topo, worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		if err := handle(ctx, job); err != nil {
			return err
		}
		report("ran %s %d", job.ID, job.Attempt)
		return nil
	}), opts...)
	if err != nil {
		return fail(err)
	}
	if err := pool.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// handle does what the job's payload says.
func handle(ctx context.Context, job *worker.Job) error {
	var p payload
	if err := job.Decode(&p); err != nil {
		return err
	}
	switch p.B {
	case succeed:
		return nil
	case slow:
		select {
		case <-time.After(time.Duration(p.Millis) * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	case failThen:
		if job.Attempt <= p.K {
			return fmt.Errorf("torture: failing attempt %d of %d on purpose", job.Attempt, p.K)
		}
		return nil
	case fail:
		return errors.New("torture: failing on purpose, every time")
	case permanent:
		return worker.Permanent(errors.New("torture: a permanent failure on purpose"))
	case panics:
		panic("torture: a handler panicking on purpose")
	case timeout:
		<-ctx.Done()
		return ctx.Err()
	case kill:
		os.Exit(killExit)
	}
	return worker.Permanent(fmt.Errorf("torture: unknown behaviour %q", p.B))
}

// event is a line a worker child reported.
type event struct {
	What    string // "ran" or "out"
	Status  string // of an "out" line
	ID      string
	Attempt int
	Class   string
	Queue   string
}

func parseEvent(line string) (event, error) {
	f := strings.Fields(line)
	var e event
	switch {
	case len(f) == 3 && f[0] == "ran":
		e = event{What: f[0], ID: f[1]}
		_, err := fmt.Sscan(f[2], &e.Attempt)
		return e, err
	case len(f) == 6 && f[0] == "out":
		e = event{What: f[0], Status: f[1], ID: f[2], Class: f[4], Queue: f[5]}
		_, err := fmt.Sscan(f[3], &e.Attempt)
		return e, err
	}
	return e, fmt.Errorf("malformed line %q", line)
}
