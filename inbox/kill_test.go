package inbox_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/queuetest"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// The child worker of TestKillAfterCommit: its handler writes the job's
// effect in the inbox's transaction; once the inbox committed it, the
// child prints "committed ID" and blocks, never returning to the pool,
// so the job is never acked. The parent kills it there.
const (
	killChildEnv = "WARREN_TEST_INBOX_KILL_CHILD" // the topology file
	killQueueEnv = "WARREN_TEST_INBOX_QUEUE"
	killAMQPEnv  = "WARREN_TEST_INBOX_AMQP_URL"
	killPGEnv    = "WARREN_TEST_INBOX_DATABASE_URL"
	killJobsEnv  = "WARREN_TEST_INBOX_JOBS"
)

type ranKey struct{}

func killChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "inbox kill child:", err)
		return 1
	}
	ctx := context.Background()
	topo, err := topology.Parse("child.yaml", []byte(os.Getenv(killChildEnv)))
	if err != nil {
		return fail(err)
	}
	db, err := pgxpool.New(ctx, os.Getenv(killPGEnv))
	if err != nil {
		return fail(err)
	}
	store, err := pginbox.New(db)
	if err != nil {
		return fail(err)
	}
	ib, err := inbox.New(store, "billing.charge")
	if err != nil {
		return fail(err)
	}
	conn, err := broker.Dial(ctx, []string{os.Getenv(killAMQPEnv)}, broker.WithName("inbox-test-kill-child"))
	if err != nil {
		return fail(err)
	}
	var mu sync.Mutex
	// afterCommit runs outside the inbox: when the inbox returns, its
	// transaction has committed; the pool has not acked.
	afterCommit := func(next worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
			ran := new(bool)
			if err := next.HandleJob(context.WithValue(ctx, ranKey{}, ran), job); err != nil || !*ran {
				return err // failed, or skipped
			}
			mu.Lock()
			fmt.Printf("committed %s\n", job.ID)
			mu.Unlock()
			select {} // killed here
		})
	}
	mux := worker.NewMux()
	mux.Use(afterCommit, ib.Middleware)
	mux.HandleFunc("charge", func(ctx context.Context, job *worker.Job) error {
		*ctx.Value(ranKey{}).(*bool) = true
		return (&ledger{pool: db}).write(ctx, job)
	})
	var n int
	fmt.Sscan(os.Getenv(killJobsEnv), &n)
	pool, err := worker.NewPool(conn, topo, mux, worker.WithQueue(os.Getenv(killQueueEnv), worker.Concurrency(n), worker.Prefetch(n)))
	if err != nil {
		return fail(err)
	}
	if err := pool.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// TestKillAfterCommit: workers SIGKILLed between the commit of their
// jobs' effects (with the inbox records) and the acks. The broker
// delivers the jobs again, to a new worker, whose inbox skips each: every
// job has exactly one effect, and every redelivery was counted as a
// skipped duplicate.
func TestKillAfterCommit(t *testing.T) {
	t.Parallel()
	schema := pgtest.Schema(t)
	db := pgtest.Pool(t, schema)
	store, err := pginbox.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(brokertest.Context(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	l := newLedger(t, db)

	// Each round has a queue of its own, so that a child is given its
	// own jobs only, not those of the child killed before it.
	const rounds, perRound = 3, 4
	var ids []string
	var fixtures []*queuetest.Fixture
	for round := range rounds {
		f := queuetest.New(t, "charge")
		fixtures = append(fixtures, f)
		var batch []string
		for range perRound {
			id := brokertest.JobID(t)
			batch = append(batch, id)
			f.Publish(broker.Job{ID: id, Type: "charge", Payload: "card"})
		}
		ids = append(ids, batch...)

		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), killChildEnv+"="+f.YAML, killQueueEnv+"="+f.Queue,
			killAMQPEnv+"="+brokertest.URL(t), killPGEnv+"="+pgtest.SchemaURL(t, schema), fmt.Sprintf("%s=%d", killJobsEnv, perRound))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		committed := make(chan string, perRound)
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if id, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
					committed <- id
				}
			}
		}()
		got := map[string]bool{}
		timeout := time.After(60 * time.Second)
		for len(got) < perRound {
			select {
			case id := <-committed:
				got[id] = true
			case <-timeout:
				cmd.Process.Kill()
				<-readDone
				cmd.Wait()
				t.Fatalf("round %d: %d of %d jobs committed in 60 s\n%s", round, len(got), perRound, stderr.String())
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-readDone
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: the child ended with %v, want killed\n%s", round, err, stderr.String())
		}
		for _, id := range batch {
			if !got[id] {
				t.Errorf("round %d: job %s was not the child's", round, id)
			}
		}
		// The effects committed, the acks never sent.
		if c := l.counts(t); len(c) != len(ids) {
			t.Fatalf("round %d: %d jobs have effects after the kill, want %d", round, len(c), len(ids))
		}
	}

	ib, err := inbox.New(store, "billing.charge")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ran := 0
	mux := worker.NewMux()
	mux.Use(ib.Middleware)
	mux.HandleFunc("charge", func(ctx context.Context, job *worker.Job) error {
		mu.Lock()
		ran++
		mu.Unlock()
		return l.write(ctx, job)
	})
	for _, f := range fixtures {
		f.Run(mux)
	}
	for _, f := range fixtures {
		f.WaitCount(worker.Succeeded, perRound, 60*time.Second)
	}
	checkOnce(t, l, ids)
	if got := ib.Skipped(); got != int64(len(ids)) {
		t.Errorf("Skipped() = %d, want %d: every redelivered job skipped", got, len(ids))
	}
	if ran != 0 {
		t.Errorf("the handler ran %d times after the kills, want 0", ran)
	}
	quarantined := 0
	for _, f := range fixtures {
		for _, o := range f.Outcomes() {
			if o.Status != worker.Succeeded && o.Status != worker.Quarantined {
				t.Errorf("job %s: %s, want succeeded (or quarantined first, as a redelivery)", o.JobID, o.Status)
			}
		}
		quarantined += f.Count(worker.Quarantined)
	}
	t.Logf("%d jobs, killed after commit in %d workers: each has one effect; %d redeliveries skipped (%d quarantined first)",
		len(ids), rounds, ib.Skipped(), quarantined)
}
