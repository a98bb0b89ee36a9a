package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/outbox"
)

// childEnv makes the test binary a relay that kills itself mid-batch (see
// runChild).
const childEnv = "WARREN_OUTBOX_TEST_CHILD"

// The child's settings.
const (
	envDB    = "WARREN_OUTBOX_TEST_DB"
	envAMQP  = "WARREN_OUTBOX_TEST_AMQP"
	envStage = "WARREN_OUTBOX_TEST_STAGE" // the batch stage the child dies at
	envBatch = "WARREN_OUTBOX_TEST_BATCH" // in which batch, from 1
	envAt    = "WARREN_OUTBOX_TEST_AT"    // once the stage's count reaches this
)

const childBatch = 100

// runChild relays with batches of childBatch and sends itself SIGKILL at
// the stage asked: no commit, no rollback, no channel close — the
// process is gone as in a crash.
func runChild() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, os.Getenv(envDB))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	conn, err := broker.Dial(ctx, []string{os.Getenv(envAMQP)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	stage := os.Getenv(envStage)
	batch, _ := strconv.Atoi(os.Getenv(envBatch))
	at, _ := strconv.Atoi(os.Getenv(envAt))
	batches := 0
	r, err := outbox.NewRelay(pool, conn, outbox.WithBatchSize(childBatch), outbox.WithoutListen(),
		outbox.WithHook(func(s string, n int) {
			if s == "claimed" {
				batches++
			}
			if batches == batch && s == stage && n >= at {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute)
			}
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	_ = r.Run(ctx)
	return 3 // not killed
}

// A relay killed mid-batch loses nothing: the rows of its batch are sent
// again by the next relay, duplicates of the same job ids only.
func TestRelayKilledMidBatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stage string
		at    int
	}{
		{"half the batch on the wire", "sent", childBatch / 2},
		{"every confirm in, before marking", "confirmed", childBatch},
		{"marked, before the commit", "marked", childBatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ids := newIDs(t, 5*childBatch)
			f.publish(t, ids, nil)

			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"=1", envDB+"="+pgtest.SchemaURL(t, f.schema), envAMQP+"="+brokertest.URL(t),
				envStage+"="+tc.stage, envBatch+"=3", envAt+"="+strconv.Itoa(tc.at))
			cmd.Stderr = os.Stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the relay ended with %v, want killed by SIGKILL", err)
			}

			ctx := brokertest.Context(t, time.Minute)
			before, err := outbox.List(ctx, f.pool, outbox.ListOptions{Sent: true, Limit: 10 * childBatch})
			if err != nil {
				t.Fatal(err)
			}
			if len(before) != 2*childBatch {
				t.Fatalf("%d rows marked sent by the killed relay, want the %d of its two committed batches", len(before), 2*childBatch)
			}
			sentBefore := map[string]bool{}
			for _, r := range before {
				sentBefore[r.JobID] = true
			}

			f.relay(t)
			f.waitSent(t)
			ds := drain(t, f.queue, len(ids), 500*time.Millisecond)

			// The ledger: every row's job at least once; a duplicate only of
			// a job the killed relay had not marked sent; nothing else.
			c := counts(ds)
			lost, dup := 0, 0
			for _, id := range ids {
				switch n := c[id]; {
				case n == 0:
					lost++
				case n > 1:
					dup += n - 1
					if sentBefore[id] {
						t.Errorf("job %s, committed as sent by the killed relay, arrived %d times", id, n)
					}
				}
				delete(c, id)
			}
			if lost > 0 || len(c) > 0 {
				t.Errorf("lost %d jobs, %d unexpected", lost, len(c))
			}
			if dup > childBatch {
				t.Errorf("%d duplicates, more than the killed batch (%d rows)", dup, childBatch)
			}
			t.Logf("%d deliveries of %d jobs: %d duplicates (same job ids)", len(ds), len(ids), dup)
			s, err := outbox.ReadStats(ctx, f.pool)
			if err != nil || s.Backlog != 0 {
				t.Errorf("after the second relay: %+v, %v; want every row sent", s, err)
			}
		})
	}
}
