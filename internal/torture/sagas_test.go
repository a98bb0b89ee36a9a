//go:build torture

package torture_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/saga"
	"github.com/warrenmq/warren/topology"
)

// expectSaga returns the effects saga n must have, in order, when its
// step fails fails (-1: none): each step before it; then the
// compensations of those that have one, newest first, each on its step's
// result.
func expectSaga(n, fails int) []string {
	var out []string
	done := sagaSteps
	if fails >= 0 {
		done = fails
	}
	for p := range done {
		out = append(out, fmt.Sprintf("step %d %q", p, ""))
	}
	if fails >= 0 {
		for p := done - 1; p >= 0; p-- {
			if sagaCompensated[p] {
				out = append(out, fmt.Sprintf("compensation %d %q", p, fmt.Sprintf("n%d/s%d", n, p)))
			}
		}
	}
	return out
}

// TestSagas is the torture of orchestrated sagas (package saga): sagas of
// four steps, some failing for good at a step so that the steps before it
// that have a compensation are undone, run by coordinator processes and
// step worker processes (their effects through a PostgreSQL inbox), while
// both are SIGKILLed at random (a few step workers also between an
// effect's commit and its reply) and the broker closes their connections.
// The ledger: every saga ends completed or compensated, as planned; each
// step before the failing one took effect once, each compensation once,
// newest first, on its step's result.
func TestSagas(t *testing.T) {
	cfg := loadConfig(t)
	n := max(cfg.jobs/10, 10)
	replay := fmt.Sprintf("seed=%d (replay: make torture TORTURE_SEED=%d TORTURE_JOBS=%d)", cfg.seed, cfg.seed, cfg.jobs)
	deadline := time.Now().Add(time.Duration(cfg.minutes) * time.Minute)
	chaos := rand.New(rand.NewPCG(cfg.seed, 4))
	fails := make([]int, n)
	for i := range fails {
		fails[i] = -1
		if chaos.IntN(100) < 40 {
			fails[i] = chaos.IntN(sagaSteps)
		}
	}

	vhost := brokertest.Vhost(t)
	const password = "torture"
	user := brokertest.User(t, password, vhost, brokertest.Permissions{Configure: ".*", Write: ".*", Read: ".*"})
	url := brokertest.URLFor(t, user, password, vhost)
	version, _ := brokertest.Conn(t).Properties["version"].(string)

	exchange, steps, replies := brokertest.Name(t, "commands"), brokertest.Name(t, "steps"), brokertest.Name(t, "replies")
	qtype := []string{"classic", "quorum"}[chaos.IntN(2)]
	text := fmt.Sprintf(`version: 1
exchanges:
  %[1]s: {type: direct}
queues:
  %[2]s: {type: %[4]s}
  %[3]s: {type: %[4]s}
bindings:
  - {exchange: %[1]s, queue: %[2]s, routing_keys: [saga.step, saga.undo]}
routes:
  saga.step: {exchange: %[1]s, retry: {max_attempts: 10, initial_interval: 300ms, multiplier: 1.5, max_interval: 3s, jitter: 0.2}}
  saga.undo: {exchange: %[1]s, retry: {max_attempts: 10, initial_interval: 300ms, multiplier: 1.5, max_interval: 3s, jitter: 0.2}}
`, exchange, steps, replies, qtype)
	topo, err := topology.Parse("sagas.yaml", []byte(text))
	if err != nil {
		t.Fatalf("the generated topology: %v\n%s", err, text)
	}
	t.Logf("torture sagas: %s, %d sagas, queues %s and %s (%s)", replay, n, steps, replies, qtype)
	ctx := brokertest.Context(t, time.Duration(cfg.minutes+2)*time.Minute)

	schema := pgtest.Schema(t)
	db := pgtest.Pool(t, schema)
	if _, err := saga.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	store, err := pginbox.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `CREATE TABLE saga_effects (
		id bigserial PRIMARY KEY, n int NOT NULL, kind text NOT NULL, place int NOT NULL, payload text NOT NULL, worker text NOT NULL)`); err != nil {
		t.Fatal(err)
	}

	conn, err := broker.Dial(ctx, []string{url}, broker.WithName(brokertest.ConnName(t, "starter")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	decl := broker.NewDeclarer(conn)
	if _, err := topology.Declare(ctx, decl, topo); err != nil {
		t.Fatalf("declare: %v", err)
	}
	decl.Close(ctx)
	def, err := defineTortureSaga()
	if err != nil {
		t.Fatal(err)
	}
	// The service that starts the sagas: a coordinator that does not run.
	starter, err := saga.NewCoordinator(db, conn, topo, saga.WithReplyQueue(replies), saga.WithoutRelay())
	if err != nil {
		t.Fatal(err)
	}
	if err := starter.Register(def); err != nil {
		t.Fatal(err)
	}

	l := newEffectsLedger()
	l.effects[roleSagaStep] = map[string]int{}
	fl := newFleet(t)
	start := func(role, queue string, i int) {
		name := brokertest.ConnName(t, fmt.Sprintf("%s%d", role, i))
		fl.start(i, name, role, []string{
			childRoleEnv + "=" + role, childURLEnv + "=" + url, childTopologyEnv + "=" + text, childNameEnv + "=" + name,
			childDBEnv + "=" + pgtest.SchemaURL(t, schema), childQueueEnv + "=" + queue,
		}, func(slot int, line string) { l.line(role, slot, line) })
	}
	for i := range 2 {
		start(roleCoordinator, replies, i)
	}
	for i := range cfg.workers {
		start(roleSagaStep, steps, i)
	}

	// The sagas, started over about 20 seconds.
	started := make(chan error, 1)
	go func() {
		pace := 20 * time.Second / time.Duration(n)
		begin := time.Now()
		for i := range n {
			if d := time.Until(begin.Add(time.Duration(i) * pace)); d > 0 {
				time.Sleep(d)
			}
			if err := saga.StartTx(ctx, starter, def, fmt.Sprintf("saga-%d", i), sagaState{N: i, Fails: fails[i]}); err != nil {
				started <- fmt.Errorf("saga %d: %w", i, err)
				return
			}
		}
		started <- nil
	}()

	kills := map[string]int{}
	closes := 0
	nextKill := time.Now().Add(jitter(chaos, 2*time.Second, 6*time.Second))
	nextClose := time.Now().Add(jitter(chaos, 3*time.Second, 8*time.Second))
	const stall = 45 * time.Second
	last, lastProgress, lastLog := -1, time.Now(), time.Now()
	allStarted := false
	for {
		time.Sleep(time.Second)
		select {
		case err := <-started:
			if err != nil {
				t.Fatalf("%s: starting the sagas: %v", replay, err)
			}
			allStarted = true
		default:
		}
		var ended int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM warren_saga WHERE status IN ('completed', 'compensated', 'failed')").Scan(&ended); err != nil {
			t.Fatal(err)
		}
		if ended != last {
			last, lastProgress = ended, time.Now()
		}
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			t.Logf("torture sagas: %s %d of %d sagas ended; kills %v, closed connections %d", time.Now().Format("15:04:05"), ended, n, kills, closes)
		}
		if allStarted && ended == n {
			break
		}
		if time.Now().After(nextKill) {
			if s := fl.sups[chaos.IntN(len(fl.sups))]; s.kill() {
				kills[fl.roles[s]]++
			}
			nextKill = time.Now().Add(jitter(chaos, 2*time.Second, 6*time.Second))
		}
		if time.Now().After(nextClose) {
			if s := fl.sups[chaos.IntN(len(fl.sups))]; s.running() {
				closes += brokertest.CloseConnectionsIfAny(t, s.name)
			}
			nextClose = time.Now().Add(jitter(chaos, 3*time.Second, 8*time.Second))
		}
		if allStarted && time.Since(lastProgress) > stall {
			t.Errorf("%s: no saga ended for %s: %d of %d ended", replay, stall, ended, n)
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: not every saga ended within %d minutes: %d of %d", replay, cfg.minutes, ended, n)
			break
		}
	}
	// Late duplicates (a command sent again by a relay that died
	// mid-batch) have a moment to show.
	time.Sleep(2 * time.Second)
	if stuck := fl.stop(); stuck > 0 {
		t.Errorf("%s: %d children did not shut down within a minute of being asked to", replay, stuck)
	}

	// The ledger.
	got := map[int][]string{}
	rows, err := db.Query(ctx, "SELECT n, kind, place, payload FROM saga_effects ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var i, place int
		var kind, payload string
		if err := rows.Scan(&i, &kind, &place, &payload); err != nil {
			t.Fatal(err)
		}
		got[i] = append(got[i], fmt.Sprintf("%s %d %q", kind, place, payload))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var wrong []string
	completed, compensated, effects, want := 0, 0, 0, 0
	for i := range n {
		exp := expectSaga(i, fails[i])
		want += len(exp)
		effects += len(got[i])
		status := saga.Completed
		if fails[i] >= 0 {
			status = saga.Compensated
		}
		in, err := saga.Get(ctx, db, fmt.Sprintf("saga-%d", i))
		if err != nil {
			wrong = append(wrong, fmt.Sprintf("saga %d: %v", i, err))
			continue
		}
		if in.Status != status || strings.Join(got[i], "; ") != strings.Join(exp, "; ") {
			wrong = append(wrong, fmt.Sprintf("saga %d (fails at %d): %s with effects [%s]; want %s with [%s]; last error %q",
				i, fails[i], in.Status, strings.Join(got[i], "; "), status, strings.Join(exp, "; "), in.LastError))
			continue
		}
		if status == saga.Completed {
			completed++
		} else {
			compensated++
		}
	}
	var pending int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM warren_saga_steps WHERE status = 'pending'").Scan(&pending); err != nil {
		t.Fatal(err)
	}
	starts, failures := fl.stats()
	l.mu.Lock()
	skipped, died, bad := l.skipped[roleSagaStep], l.died[roleSagaStep], l.bad
	l.mu.Unlock()
	fmt.Printf("torture sagas ledger: seed=%d sagas=%d completed=%d compensated=%d wrong=%d effects=%d (want %d) pending_commands=%d "+
		"skipped_duplicates=%d died_after_commit=%d kills=%d (coordinator %d, step worker %d) restarts=%d closed_connections=%d broker=%s\n",
		cfg.seed, n, completed, compensated, len(wrong), effects, want, pending, skipped, died,
		kills[roleCoordinator]+kills[roleSagaStep], kills[roleCoordinator], kills[roleSagaStep], starts-len(fl.sups), closes, version)
	if len(wrong) > 0 {
		t.Errorf("%s: %d sagas whose end or effects differ from their plan:\n%s", replay, len(wrong), first(wrong, 20))
	}
	if pending > 0 {
		t.Errorf("%s: %d commands still pending after every saga ended", replay, pending)
	}
	if len(bad) > 0 {
		t.Errorf("%s: %d malformed lines from the children:\n%s", replay, len(bad), first(bad, 5))
	}
	if len(failures) > 0 {
		t.Errorf("%s: %d child processes ended otherwise than by a SIGKILL or a shutdown:\n%s", replay, len(failures), first(failures, 5))
	}
	if died == 0 {
		t.Errorf("%s: no step worker killed itself between an effect's commit and its reply", replay)
	}
	if kills[roleCoordinator] == 0 {
		t.Logf("torture sagas: no coordinator was SIGKILLed from outside in this run")
	}
}
