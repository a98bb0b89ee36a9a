package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/saga"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "coordinator":
		os.Exit(coordinatorChild())
	case "billing":
		os.Exit(billingChild())
	}
	os.Exit(brokertest.Main(m))
}

// The children of TestBookingSurvivesKills, each a service alone in a
// process of its own, killed by the test: the booking saga's coordinator
// (with its outbox relay), or billing.
const (
	childEnv         = "TAXI_TEST_CHILD" // coordinator or billing
	childTopologyEnv = "TAXI_TEST_TOPOLOGY"
	childPrefixEnv   = "TAXI_TEST_PREFIX" // of the queues' names
	childAMQPEnv     = "TAXI_TEST_AMQP_URL"
	childPGEnv       = "TAXI_TEST_DATABASE_URL"
	childHaltEnv     = "TAXI_TEST_BILLING_HALT_AFTER_COMMIT"
)

// childSetup is what both children read from their environment.
func childSetup(ctx context.Context, name string) (*pgxpool.Pool, *broker.Conn, *topology.Topology, string, error) {
	topo, err := topology.Parse("taxi.yaml", []byte(os.Getenv(childTopologyEnv)))
	if err != nil {
		return nil, nil, nil, "", err
	}
	db, err := pgxpool.New(ctx, os.Getenv(childPGEnv))
	if err != nil {
		return nil, nil, nil, "", err
	}
	conn, err := broker.Dial(ctx, []string{os.Getenv(childAMQPEnv)}, broker.WithName(name))
	if err != nil {
		return nil, nil, nil, "", err
	}
	return db, conn, topo, os.Getenv(childPrefixEnv), nil
}

// coordinatorChild runs the booking saga's coordinator and its outbox
// relay until it is killed.
func coordinatorChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "coordinator child:", err)
		return 1
	}
	ctx := context.Background()
	db, conn, topo, prefix, err := childSetup(ctx, "taxi-test-coordinator-child")
	if err != nil {
		return fail(err)
	}
	c, _, err := newTestCoordinator(db, conn, topo, prefix)
	if err != nil {
		return fail(err)
	}
	if err := c.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// billingChild runs billing. Its hook, outside the inbox, tells the
// parent on stdout of each trip it charged ("charged TRIP", once the
// charge and the inbox record have committed) or skipped ("skipped ID");
// for the first childHaltEnv charges it then blocks, before the ack and
// the reply, until the parent kills it.
func billingChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "billing child:", err)
		return 1
	}
	ctx := context.Background()
	halt, err := strconv.Atoi(os.Getenv(childHaltEnv))
	if err != nil || halt < 1 {
		return fail(fmt.Errorf("%s=%q: want a count of charges", childHaltEnv, os.Getenv(childHaltEnv)))
	}
	db, conn, topo, prefix, err := childSetup(ctx, "taxi-test-billing-child")
	if err != nil {
		return fail(err)
	}
	store, err := migrate(ctx, db)
	if err != nil {
		return fail(err)
	}
	ib, err := inbox.New(store, billingConsumer)
	if err != nil {
		return fail(err)
	}
	var mu sync.Mutex // one line at a time, and counts the halts
	halted := 0
	hook := func(next worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
			charged := new(string)
			if err := next.HandleJob(context.WithValue(ctx, chargedKey{}, charged), job); err != nil {
				return err
			}
			mu.Lock()
			if *charged == "" {
				fmt.Printf("skipped %s\n", job.ID)
				mu.Unlock()
				return nil
			}
			fmt.Printf("charged %s\n", *charged)
			halted++
			block := halted <= halt
			mu.Unlock()
			if block {
				select {} // committed, neither acked nor replied to: killed here
			}
			return nil
		})
	}
	pool, err := worker.NewPool(conn, topo, billingMux(ib, nil, hook),
		worker.WithQueue(prefix+".billing", worker.Concurrency(halt), worker.Prefetch(halt)))
	if err != nil {
		return fail(err)
	}
	if err := pool.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// testTopology is the example's topology under names of the test's own,
// prefix.*.
func testTopology(prefix string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `version: 1
defaults: {queue_type: quorum}
exchanges:
  %[1]s.requests: {type: direct}
  %[1]s.events: {type: fanout}
queues:
  %[1]s.passenger: {}
  %[1]s.dispatch: {}
  %[1]s.billing: {}
  %[1]s.trip: {}
  %[1]s.notifications: {}
  %[1]s.saga.replies: {reply_queue: true}
bindings:
  - {exchange: %[1]s.events, queue: %[1]s.notifications}
`, prefix)
	routes := map[string]string{
		AuthoriseType: "passenger", ReleaseType: "passenger",
		ReserveDriverType: "dispatch", ReleaseDriverType: "dispatch",
		ChargeType: "billing", ConfirmType: "trip",
	}
	for typ, queue := range routes {
		fmt.Fprintf(&b, "  - {exchange: %[1]s.requests, queue: %[1]s.%[2]s, routing_key: %[3]s}\n", prefix, queue, typ)
	}
	b.WriteString("routes:\n")
	for typ := range routes {
		fmt.Fprintf(&b, "  %s: {exchange: %s.requests}\n", typ, prefix)
	}
	fmt.Fprintf(&b, "  %s: {exchange: %s.events}\n", TripBookedType, prefix)
	return b.String()
}

// newTestCoordinator returns a coordinator of the booking saga, its
// relay polling often.
func newTestCoordinator(db *pgxpool.Pool, conn *broker.Conn, topo *topology.Topology, prefix string, opts ...saga.Option) (*saga.Coordinator, *saga.Definition[Booking], error) {
	def, err := bookingSaga()
	if err != nil {
		return nil, nil, err
	}
	opts = append([]saga.Option{saga.WithReplyQueue(prefix + ".saga.replies"),
		saga.WithRelayOptions(outbox.WithPollInterval(50 * time.Millisecond))}, opts...)
	c, err := saga.NewCoordinator(db, conn, topo, opts...)
	if err != nil {
		return nil, nil, err
	}
	return c, def, c.Register(def)
}

// TestBookingSurvivesKills: bookings run as sagas while their services
// die at the worst moments.
//
//   - The coordinator, a process of its own, is SIGKILLed after the broker
//     confirmed the sagas' first commands and before its relay marked
//     them sent: the commands are out, the outbox says they are not, and
//     the next coordinator sends each again. The passenger service
//     answers both copies; the coordinator applies the first reply and
//     ignores the second.
//   - Then coordinators, each a process of its own, are SIGKILLed at
//     random moments, one after another, while the sagas go on: now and
//     then with a reply applied and committed but not acked, which the
//     next coordinator gets again and ignores, or with commands sent and
//     not marked, which its relay sends again.
//   - Meanwhile billing, a process of its own, is SIGKILLed twice with charges
//     committed (the charge and the inbox record, in one transaction) and
//     their commands neither acked nor replied to. The broker delivers
//     them again, to the restarted billing, whose inbox skips them and
//     replies with the receipt it kept: the sagas go on with the receipt
//     of the charge that was made.
//
// The ledger: every saga ended completed or compensated as its ride
// should, each booked trip charged once (though the charges table has no
// unique key) with the receipt its saga recorded, no charge for the
// others, drivers held for the booked trips and released for the others
// that had one, one trip.booked per booked trip, no command pending.
func TestBookingSurvivesKills(t *testing.T) {
	t.Parallel()
	ctx := brokertest.Context(t, 3*time.Minute)
	schema := pgtest.Schema(t)
	db := pgtest.Pool(t, schema)
	store, err := migrate(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate(ctx, db); err != nil { // as at every start
		t.Fatalf("migrate again: %v", err)
	}
	prefix := brokertest.Name(t, "taxi")
	yaml := testTopology(prefix)
	topo := topotest.Apply(t, yaml)
	conn := testkit.Dial(t, "taxi-test")

	// A coordinator that does not run: it starts the sagas.
	starter, def, err := newTestCoordinator(db, conn, topo, prefix, saga.WithoutRelay())
	if err != nil {
		t.Fatal(err)
	}
	kinds := []booking{
		{rider: "ada", amount: 23_50, want: saga.Completed, reserves: true},
		{rider: "grace", amount: 41_00, want: saga.Completed, reserves: true},
		{rider: "ken", amount: 18_00, want: saga.Compensated, reserves: true},     // card declined
		{rider: "linus", amount: 480_00, want: saga.Compensated, reserves: false}, // authorisation declined
	}
	const n = 12
	rides := make([]ride, n)
	for i := range rides {
		b := kinds[i%len(kinds)]
		b.ride = fmt.Sprintf("r-%d", i+1)
		rides[i] = ride{booking: b, trip: brokertest.JobID(t)}
		if err := startBooking(ctx, db, starter, def, Booking{Trip: rides[i].trip, Ride: b.ride, Rider: b.rider, Amount: b.amount}); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), childTopologyEnv+"="+yaml, childPrefixEnv+"="+prefix,
		childAMQPEnv+"="+brokertest.URL(t), childPGEnv+"="+pgtest.SchemaURL(t, schema))
	killCoordinatorMidBatch(t, db, schema, env, prefix+".passenger", n)
	if d := brokertest.Depth(t, prefix+".passenger"); d != n {
		t.Fatalf("%s holds %d commands, want %d", prefix+".passenger", d, n)
	}

	// The services, here, and a coordinator, here, to the end: its relay
	// sends the first commands again.
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stopAll := func() {
		stop()
		testkit.WaitDone(t, &wg, time.Minute, "the services to stop")
	}
	defer stopAll() // before the connections close (t.Cleanup)
	run := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil && runCtx.Err() == nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	serve := func(queue string, h worker.Handler) {
		pool, err := worker.NewPool(testkit.Dial(t, "taxi-test-"+queue), topo, h, worker.WithQueue(prefix+"."+queue))
		if err != nil {
			t.Fatal(err)
		}
		run(queue, pool.Run)
	}
	dispatchInbox, err := inbox.New(store, dispatchConsumer)
	if err != nil {
		t.Fatal(err)
	}
	serve("passenger", passengerMux(nil))
	serve("dispatch", dispatchMux(dispatchInbox))
	serve("trip", confirmMux(db, topo, nil))
	// Coordinators, each in a process of its own, SIGKILLed at random
	// moments (now and then with a reply applied and committed, not acked)
	// while billing, in a process of its own, charges halt trips, which
	// commit, and is killed before acking and replying, twice.
	chaosDone := make(chan struct{})
	var chaos sync.WaitGroup
	endChaos := sync.OnceFunc(func() {
		close(chaosDone)
		testkit.WaitDone(t, &chaos, time.Minute, "the coordinators killed at random")
	})
	defer endChaos() // when the test fails before
	coordKills := 0
	chaos.Add(1)
	go func() {
		defer chaos.Done()
		coordKills = killCoordinatorsAtRandom(t, env, chaosDone, 5)
	}()
	childSkipped, killed := 0, 0
	for round, halt := range []int{2, 1} {
		got, skipped := killBillingAfterCommit(t, db, env, halt)
		childSkipped += skipped
		killed += halt
		t.Logf("round %d: billing killed with trips %v charged, neither acked nor replied to", round, got)
	}
	endChaos()
	if coordKills < 5 {
		t.Fatalf("%d coordinators killed at random, want at least 5", coordKills)
	}

	// A coordinator, here, to the end.
	coord, _, err := newTestCoordinator(db, testkit.Dial(t, "taxi-test-coordinator"), topo, prefix)
	if err != nil {
		t.Fatal(err)
	}
	run("coordinator", coord.Run)

	// Billing restarted, here, to the end.
	billingInbox, err := inbox.New(store, billingConsumer)
	if err != nil {
		t.Fatal(err)
	}
	serve("billing", billingMux(billingInbox, nil))

	ended := make(map[string]saga.Instance)
	for _, r := range rides {
		in, err := awaitSaga(brokertest.Context(t, time.Minute), db, r.trip)
		if err != nil {
			t.Fatal(err)
		}
		if err := settle(ctx, db, in); err != nil {
			t.Fatal(err)
		}
		ended[r.trip] = in
	}

	// The ledger.
	booked := 0
	for _, r := range rides {
		in := ended[r.trip]
		got, err := effects(ctx, db, r.trip)
		if err != nil {
			t.Fatal(err)
		}
		if want := r.effect(); got != want {
			t.Errorf("ride %s (%s): %s, want %s (commands: %v)", r.ride, r.rider, got, want, in.Commands)
		}
		if in.Status != saga.Completed {
			continue
		}
		booked++
		var receipt string
		if err := db.QueryRow(ctx, "SELECT receipt FROM charges WHERE trip_id = $1", r.trip).Scan(&receipt); err != nil {
			t.Errorf("ride %s: its charge: %v", r.ride, err)
			continue
		}
		var b Booking
		if err := json.Unmarshal(in.State, &b); err != nil || b.Receipt != receipt {
			t.Errorf("ride %s: the saga's state %s (%v), want the receipt of its charge, %s", r.ride, in.State, err, receipt)
		}
	}
	var charges, pending int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM charges").Scan(&charges); err != nil {
		t.Fatal(err)
	}
	if charges != booked {
		t.Errorf("%d charges for %d booked trips, want one each", charges, booked)
	}
	if err := db.QueryRow(ctx, "SELECT count(*) FROM warren_saga_steps WHERE status = 'pending'").Scan(&pending); err != nil || pending != 0 {
		t.Errorf("%d commands pending after every saga ended (%v)", pending, err)
	}
	skipped := billingInbox.Skipped() + int64(childSkipped)
	if skipped < int64(killed) {
		t.Errorf("billing's inbox skipped %d duplicates, want at least %d (one per charge killed before its ack)", skipped, killed)
	}
	testkit.WaitFor(t, 30*time.Second, "one trip.booked per booked trip", func() bool {
		return brokertest.Depth(t, prefix+".notifications") == booked
	})
	time.Sleep(200 * time.Millisecond) // a second copy would show now
	if d := brokertest.Depth(t, prefix+".notifications"); d != booked {
		t.Errorf("%d trip.booked events for %d booked trips", d, booked)
	}
	// Each event carries the correlation id of the command that caused
	// it: the trip.confirm of its saga.
	d := brokertest.Get(t, prefix+".notifications", 5*time.Second)
	if in, ok := ended[d.MessageId]; !ok {
		t.Errorf("trip.booked %s: no such trip", d.MessageId)
	} else if confirm := in.Commands[len(in.Commands)-1]; confirm.JobType != ConfirmType || d.CorrelationId != confirm.JobID {
		t.Errorf("trip.booked %s: correlation id %q, want the job id of its saga's last command, %s %s", d.MessageId, d.CorrelationId, confirm.JobType, confirm.JobID)
	}
	t.Logf("ledger: %d sagas, %d completed, %d charges; a coordinator killed mid-batch, %d more at random; billing killed twice with %d charges committed and not acked; %d duplicates skipped by billing's inbox",
		n, booked, charges, coordKills, killed, skipped)
}

// killCoordinatorMidBatch runs a coordinator in a process of its own
// and SIGKILLs it mid-batch: after the broker confirmed the n commands
// its relay sent to queue, before the relay marks their rows sent. A
// trigger on the outbox holds the marking on an advisory lock the test
// holds. The relay's transaction rolls back: the rows are unsent again,
// and the commands are in the queue.
func killCoordinatorMidBatch(t *testing.T, db *pgxpool.Pool, schema string, env []string, queue string, n int) {
	t.Helper()
	ctx := brokertest.Context(t, time.Minute)
	lock, err := db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if _, err := lock.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", schema); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `
CREATE FUNCTION hold_outbox_marking() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_advisory_xact_lock_shared(hashtext(current_schema()));
	RETURN NEW;
END $$;
CREATE TRIGGER hold_outbox_marking BEFORE UPDATE ON warren_outbox FOR EACH ROW EXECUTE FUNCTION hold_outbox_marking();`); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(slices.Clip(env), childEnv+"=coordinator")
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	testkit.WaitDepth(t, queue, n, 60*time.Second)
	if s, err := outbox.ReadStats(ctx, db); err != nil || s.Backlog != int64(n) {
		t.Fatalf("outbox stats %+v, %v: want the %d rows unsent while the relay waits to mark them", s, err, n)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the coordinator child ended with %v, want killed\n%s", err, stderr.String())
	}
	// The dead relay's backend runs on, finds its client gone and rolls
	// back; dropping the trigger waits for it.
	if _, err := lock.Exec(ctx, "SELECT pg_advisory_unlock(hashtext($1))", schema); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "DROP TRIGGER hold_outbox_marking ON warren_outbox; DROP FUNCTION hold_outbox_marking()"); err != nil {
		t.Fatal(err)
	}
}

// killCoordinatorsAtRandom runs coordinators, one at a time, each in a
// process of its own, and SIGKILLs each after 200 to 700 ms, until done is
// closed and at least min were killed. It returns how many it killed.
func killCoordinatorsAtRandom(t *testing.T, env []string, done <-chan struct{}, min int) int {
	kills := 0
	for {
		select {
		case <-done:
			if kills >= min {
				return kills
			}
		default:
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(slices.Clip(env), childEnv+"=coordinator")
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Error(err)
			return kills
		}
		time.Sleep(time.Duration(200+rand.IntN(500)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		var ee *exec.ExitError
		if err := cmd.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("a coordinator ended with %v, want killed by SIGKILL\n%s", err, stderr.String())
			return kills
		}
		kills++
	}
}

// killBillingAfterCommit runs billing in a process of its own until it
// has charged halt trips, which it holds neither acked nor replied to,
// and SIGKILLs it. It returns the trips charged, each once, and how many
// duplicates the child's inbox skipped.
func killBillingAfterCommit(t *testing.T, db *pgxpool.Pool, env []string, halt int) ([]string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(slices.Clip(env), childEnv+"=billing", childHaltEnv+"="+strconv.Itoa(halt))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	charged := make(chan string, halt)
	readDone := make(chan struct{})
	skipped := 0
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if trip, ok := strings.CutPrefix(sc.Text(), "charged "); ok {
				charged <- trip
			} else if strings.HasPrefix(sc.Text(), "skipped ") {
				skipped++
			}
		}
	}()
	var got []string
	timeout := time.After(60 * time.Second)
	for len(got) < halt {
		select {
		case trip := <-charged:
			got = append(got, trip)
		case <-timeout:
			cmd.Process.Kill()
			<-readDone
			cmd.Wait()
			t.Fatalf("%d of %d charges committed in 60 s\n%s", len(got), halt, stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-readDone
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the billing child ended with %v, want killed by SIGKILL\n%s", err, stderr.String())
	}
	for _, trip := range got {
		if n := chargesOf(t, db, trip); n != 1 {
			t.Errorf("trip %s has %d charges after the kill, want 1 (committed before it)", trip, n)
		}
	}
	return got, skipped
}

// chargesOf returns how many charges trip id has.
func chargesOf(t *testing.T, db *pgxpool.Pool, id string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "SELECT count(*) FROM charges WHERE trip_id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
