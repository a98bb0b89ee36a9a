package saga_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/saga"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// childEnv makes the test binary a coordinator (see runChild), killed by
// the test at a random moment.
const childEnv = "WARREN_SAGA_TEST_CHILD"

// The child's settings.
const (
	envDB       = "WARREN_SAGA_TEST_DB"
	envAMQP     = "WARREN_SAGA_TEST_AMQP"
	envTopology = "WARREN_SAGA_TEST_TOPOLOGY"
	envReplies  = "WARREN_SAGA_TEST_REPLIES"
)

// runChild runs a coordinator of the test saga until it is killed.
func runChild() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "saga child:", err); return 2 }
	db, err := pgxpool.New(ctx, os.Getenv(envDB))
	if err != nil {
		return fail(err)
	}
	conn, err := broker.Dial(ctx, []string{os.Getenv(envAMQP)}, broker.WithName("saga-test-child"))
	if err != nil {
		return fail(err)
	}
	topo, err := topology.Parse("topology.yaml", []byte(os.Getenv(envTopology)))
	if err != nil {
		return fail(err)
	}
	def, err := saga.Define("trip", steps(0)...)
	if err != nil {
		return fail(err)
	}
	// Besides the test's kills at random moments, the child kills itself
	// now and then with a reply applied but not committed, or committed but
	// not acked (its copy is then delivered again: a duplicate to ignore).
	die := func(stage string) {
		if rand.IntN(6) == 0 {
			fmt.Fprintln(os.Stderr, "saga child: killed at", stage)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
	}
	c, err := saga.NewCoordinator(db, conn, topo, saga.WithReplyQueue(os.Getenv(envReplies)), saga.WithHook(die),
		saga.WithRelayOptions(outbox.WithPollInterval(50*time.Millisecond), outbox.WithBatchSize(5)))
	if err != nil {
		return fail(err)
	}
	if err := c.Register(def); err != nil {
		return fail(err)
	}
	if err := c.Run(ctx); err != nil {
		return fail(err)
	}
	return 3 // not killed
}

// Coordinators killed with SIGKILL at random moments, and restarted, while
// 50 sagas run against step workers whose effects go through an inbox:
// every saga ends completed or compensated, with each succeeded step's
// effect once and each compensation's once, newest step first.
func TestCoordinatorsKilled(t *testing.T) {
	f := newFixture(t)
	f.workers(t, func(typ, id string) error {
		// Slow enough that work is in flight through the kills and after.
		time.Sleep(time.Duration(100+rand.IntN(600)) * time.Millisecond)
		if typ == "step.c" && strings.HasSuffix(id, "c") {
			return worker.Permanent(errors.New("refused"))
		}
		return nil
	})
	def := define(t, 0)
	// A coordinator that does not run: it starts the sagas.
	starter, err := saga.NewCoordinator(f.db, f.conn, f.topo, saga.WithReplyQueue(f.replies), saga.WithoutRelay())
	if err != nil {
		t.Fatal(err)
	}
	if err := starter.Register(def); err != nil {
		t.Fatal(err)
	}

	const n = 50
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("trip-%02d", i)
		if i%3 == 0 {
			ids[i] += "-c" // step c fails: compensated
		}
	}
	env := append(os.Environ(), childEnv+"=1", envDB+"="+pgtest.SchemaURL(t, f.schema), envAMQP+"="+brokertest.URL(t),
		envTopology+"="+f.yaml, envReplies+"="+f.replies)

	waitKilled := testkit.KillChildren(t, env, 2, 8*time.Second, 100*time.Millisecond, time.Second)
	ctx := brokertest.Context(t, 2*time.Minute)
	for _, id := range ids {
		if err := saga.StartTx(ctx, starter, def, id, trip{ID: id}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	killed := waitKilled()
	var running int
	if err := f.db.QueryRow(ctx, `SELECT count(*) FROM warren_saga WHERE status IN ('running', 'compensating')`).Scan(&running); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d coordinators killed; %d sagas of %d still running after the kills", killed, running, n)
	if killed < 4 {
		t.Fatalf("only %d coordinators killed: the test proves nothing", killed)
	}

	// A coordinator that is not killed finishes the work.
	f.coordinator(t, def)
	ended := f.waitEnded(t, ids...)

	// The ledger.
	for _, id := range ids {
		want, status := "step.a step.b step.c", saga.Completed
		if strings.HasSuffix(id, "c") {
			want, status = "step.a step.b step.b.undo step.a.undo", saga.Compensated
		}
		in := ended[id]
		if got := strings.Join(f.effects(t, id), " "); got != want || in.Status != status {
			t.Errorf("saga %s: %s with effects %q, want %s with %q (commands: %s)", id, in.Status, got, status, want, commandsOf(in))
		}
	}
	var pending int
	if err := f.db.QueryRow(ctx, `SELECT count(*) FROM warren_saga_steps WHERE status = 'pending'`).Scan(&pending); err != nil || pending != 0 {
		t.Errorf("%d commands pending after every saga ended (%v)", pending, err)
	}
}
