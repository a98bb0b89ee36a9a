package batch_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/batch"
	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// childEnv makes the test binary a worker of a batch's jobs (see
// runChild), killed by the test at a random moment.
const childEnv = "WARREN_BATCH_TEST_CHILD"

// The child's settings.
const (
	envDB       = "WARREN_BATCH_TEST_DB"
	envAMQP     = "WARREN_BATCH_TEST_AMQP"
	envTopology = "WARREN_BATCH_TEST_TOPOLOGY"
	envQueue    = "WARREN_BATCH_TEST_QUEUE"
)

// runChild runs a pool of the test queue with the batches' Finisher until
// it is killed. It leaves the callback to the test: it holds it unhandled
// until it dies, and the broker delivers it again.
func runChild() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "batch child:", err); return 2 }
	db, err := pgxpool.New(ctx, os.Getenv(envDB))
	if err != nil {
		return fail(err)
	}
	conn, err := broker.Dial(ctx, []string{os.Getenv(envAMQP)}, broker.WithName("batch-test-child"))
	if err != nil {
		return fail(err)
	}
	topo, err := topology.Parse("topology.yaml", []byte(os.Getenv(envTopology)))
	if err != nil {
		return fail(err)
	}
	fin, err := batch.NewFinisher(db)
	if err != nil {
		return fail(err)
	}
	// Besides the test's kills at random moments, the child kills itself
	// now and then with a job counted and not acked.
	die := worker.FinisherFunc(func(context.Context, *worker.Job, worker.End) error {
		if rand.IntN(40) == 0 {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
		return nil
	})
	mux := worker.NewMux()
	mux.HandleFunc("work", func(ctx context.Context, job *worker.Job) error {
		var fail bool
		if err := job.Decode(&fail); err != nil {
			return err
		}
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
		if fail {
			return worker.Permanent(errors.New("failing on purpose"))
		}
		return nil
	})
	mux.HandleFunc("done", func(ctx context.Context, job *worker.Job) error {
		<-ctx.Done()
		return ctx.Err()
	})
	pool, err := worker.NewPool(conn, topo, mux, worker.WithQueue(os.Getenv(envQueue), worker.Concurrency(8)),
		worker.WithFinisher(fin), worker.WithFinisher(die))
	if err != nil {
		return fail(err)
	}
	if err := pool.Run(ctx); err != nil {
		return fail(err)
	}
	return 3 // not killed
}

// Worker processes killed with SIGKILL at random moments, and restarted,
// while they run a batch of 500 jobs: the jobs they held are delivered
// again, some of them already counted. Then a pool that is not killed
// finishes: the callback is written once and runs once, with every job
// counted once.
func TestWorkersKilled(t *testing.T) {
	f := newFixture(t)
	const n = 500
	id, _ := f.publish(t, n, func(i int) bool { return i%25 == 0 }, broker.Job{Type: "done"})
	env := append(os.Environ(), childEnv+"=1", envDB+"="+pgtest.SchemaURL(t, f.schema), envAMQP+"="+brokertest.URL(t),
		envTopology+"="+f.YAML, envQueue+"="+f.Queue)

	killed := testkit.KillChildren(t, env, 2, 8*time.Second, 300*time.Millisecond, 1200*time.Millisecond)()
	ctx := brokertest.Context(t, 2*time.Minute)
	st, err := batch.Get(ctx, f.db, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d workers killed; %d of %d jobs counted after the kills", killed, st.Succeeded+st.Failed, n)
	if killed < 4 {
		t.Fatalf("only %d workers killed: the test proves nothing", killed)
	}

	f.run(t, newFinisher(t, f.db))
	testkit.WaitFor(t, time.Minute, "the callback", func() bool { return len(f.results()) > 0 })
	time.Sleep(time.Second)
	got := f.results()
	if len(got) != 1 || got[0].ID != id || got[0].Total != n || got[0].Failed != n/25 || got[0].Succeeded != n-n/25 || len(got[0].Failures) != n/25 {
		t.Fatalf("callbacks %v, want one: %d jobs, %d failed", summary(got), n, n/25)
	}
	var written int
	if err := f.db.QueryRow(ctx, `SELECT count(*) FROM warren_outbox WHERE job_id = $1`, batch.CallbackID(id)).Scan(&written); err != nil || written != 1 {
		t.Errorf("the callback written %d times (%v), want once", written, err)
	}
}
