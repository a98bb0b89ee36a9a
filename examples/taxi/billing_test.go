package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
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
	"github.com/warrenmq/warren/internal/queuetest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) {
	if os.Getenv(childTopologyEnv) != "" {
		os.Exit(billingChild())
	}
	if os.Getenv(childRelayEnv) != "" {
		os.Exit(relayChild())
	}
	os.Exit(brokertest.Main(m))
}

// The billing child of TestBillingKilledAfterCommit: the billing service
// alone, in a process of its own. Its hook, outside the inbox, tells the
// parent on stdout of each event it charged ("charged ID", once the
// charge and the inbox record have committed) or skipped ("skipped ID");
// for the first childHaltEnv charges it then blocks, before the ack,
// until the parent kills it.
const (
	childTopologyEnv = "TAXI_TEST_BILLING_TOPOLOGY" // the topology file
	childQueueEnv    = "TAXI_TEST_BILLING_QUEUE"
	childAMQPEnv     = "TAXI_TEST_BILLING_AMQP_URL"
	childPGEnv       = "TAXI_TEST_BILLING_DATABASE_URL"
	childHaltEnv     = "TAXI_TEST_BILLING_HALT_AFTER_COMMIT"
	childRelayEnv    = "TAXI_TEST_RELAY" // the relay child, instead
)

// relayChild is the trip service's outbox relay alone, in a process of
// its own, until it is killed.
func relayChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "relay child:", err)
		return 1
	}
	ctx := context.Background()
	db, err := pgxpool.New(ctx, os.Getenv(childPGEnv))
	if err != nil {
		return fail(err)
	}
	conn, err := broker.Dial(ctx, []string{os.Getenv(childAMQPEnv)}, broker.WithName("taxi-test-relay-child"))
	if err != nil {
		return fail(err)
	}
	relay, err := outbox.NewRelay(db, conn, outbox.WithPollInterval(50*time.Millisecond))
	if err != nil {
		return fail(err)
	}
	if err := relay.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

func billingChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "billing child:", err)
		return 1
	}
	ctx := context.Background()
	topo, err := topology.Parse("billing.yaml", []byte(os.Getenv(childTopologyEnv)))
	if err != nil {
		return fail(err)
	}
	halt, err := strconv.Atoi(os.Getenv(childHaltEnv))
	if err != nil || halt < 1 {
		return fail(fmt.Errorf("%s=%q: want a count of charges", childHaltEnv, os.Getenv(childHaltEnv)))
	}
	db, err := pgxpool.New(ctx, os.Getenv(childPGEnv))
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
	conn, err := broker.Dial(ctx, []string{os.Getenv(childAMQPEnv)}, broker.WithName("taxi-test-billing-child"))
	if err != nil {
		return fail(err)
	}
	var mu sync.Mutex // one line at a time, and counts the halts
	halted := 0
	hook := func(next worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
			charged := new(bool)
			if err := next.HandleJob(context.WithValue(ctx, chargedKey{}, charged), job); err != nil {
				return err
			}
			mu.Lock()
			if !*charged {
				fmt.Printf("skipped %s\n", job.ID)
				mu.Unlock()
				return nil
			}
			fmt.Printf("charged %s\n", job.ID)
			halted++
			block := halted <= halt
			mu.Unlock()
			if block {
				select {} // committed, not acked: killed here
			}
			return nil
		})
	}
	pool, err := worker.NewPool(conn, topo, billingMux(ib, nil, hook),
		worker.WithQueue(os.Getenv(childQueueEnv), worker.Concurrency(halt), worker.Prefetch(halt)))
	if err != nil {
		return fail(err)
	}
	if err := pool.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// TestBillingKilledAfterCommit: the trip service books trips through the
// outbox; the relay, a process of its own, publishes their events and is
// SIGKILLed before it marks them sent, so the next relay sends each
// again; and billing — a process of its own — is SIGKILLed, twice, with charges committed (the charge and
// the inbox record, in one transaction) and their events not acked. The
// broker delivers those events again, to the restarted billing, whose
// inbox skips them: the ledger has exactly one charge per booked trip,
// though the charges table has no unique key.
func TestBillingKilledAfterCommit(t *testing.T) {
	t.Parallel()
	ctx := brokertest.Context(t, 2*time.Minute)
	schema := pgtest.Schema(t)
	db := pgtest.Pool(t, schema)
	store, err := migrate(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrate(ctx, db); err != nil { // as at every start
		t.Fatalf("migrate again: %v", err)
	}
	// Billing's queue, bound to an exchange that trip.booked routes to.
	f := queuetest.New(t, TripBookedType)

	const trips = 8
	var booked []string
	for i := range trips {
		id := brokertest.JobID(t)
		booked = append(booked, id)
		e := TripBooked{Trip: id, Ride: fmt.Sprintf("r-%d", i+1), Rider: "ada", Amount: 10_00 + i}
		if err := bookTrip(ctx, db, f.Topo, e); err != nil {
			t.Fatal(err)
		}
	}
	killRelayMidBatch(t, db, schema, f, trips)

	// The relay restarted: it sends the batch again.
	relay, err := outbox.NewRelay(db, testkit.Dial(t, "taxi-test-relay"), outbox.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	t.Cleanup(func() {
		stopRelay()
		if err := testkit.Recv(t, relayDone, 60*time.Second, "the relay to stop"); err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	testkit.WaitFor(t, 60*time.Second, "the outbox's backlog to be sent", func() bool {
		s, err := outbox.ReadStats(ctx, db)
		return err == nil && s.Backlog == 0
	})
	if n := brokertest.Depth(t, f.Queue); n != 2*trips {
		t.Fatalf("billing's queue holds %d events, want %d: each trip's, from both relays", n, 2*trips)
	}

	// Each child charges halt events, which commit, and is killed before
	// acking them.
	var mu sync.Mutex
	childSkipped := 0
	killed := 0
	for round, halt := range []int{3, 2} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childTopologyEnv+"="+f.YAML, childQueueEnv+"="+f.Queue,
			childAMQPEnv+"="+brokertest.URL(t), childPGEnv+"="+pgtest.SchemaURL(t, schema),
			childHaltEnv+"="+strconv.Itoa(halt))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		charged := make(chan string, trips)
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if id, ok := strings.CutPrefix(sc.Text(), "charged "); ok {
					charged <- id
				} else if _, ok := strings.CutPrefix(sc.Text(), "skipped "); ok {
					mu.Lock()
					childSkipped++
					mu.Unlock()
				}
			}
		}()
		got := map[string]bool{}
		timeout := time.After(60 * time.Second)
		for len(got) < halt {
			select {
			case id := <-charged:
				got[id] = true
			case <-timeout:
				cmd.Process.Kill()
				<-readDone
				cmd.Wait()
				t.Fatalf("round %d: %d of %d charges committed in 60 s\n%s", round, len(got), halt, stderr.String())
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-readDone
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: the child ended with %v, want killed\n%s", round, err, stderr.String())
		}
		killed += halt
		for id := range got {
			if n := chargesOf(t, db, id); n != 1 {
				t.Errorf("round %d: trip %s has %d charges after the kill, want 1 (committed before it)", round, id, n)
			}
		}
	}

	// Billing restarted, here, to the end.
	ib, err := inbox.New(store, billingConsumer)
	if err != nil {
		t.Fatal(err)
	}
	stop := f.Run(billingMux(ib, nil))
	skipped := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return ib.Skipped() + int64(childSkipped)
	}
	// Until every trip is charged and every redelivery skipped, or for
	// 30 seconds: then the ledger says what went wrong.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(testkit.Poll) {
		var n int
		err := db.QueryRow(ctx, "SELECT count(DISTINCT trip_id) FROM charges").Scan(&n)
		if err == nil && n == trips && skipped() >= int64(killed+trips) {
			break
		}
	}
	stop()

	// The ledger.
	for _, id := range booked {
		if n := chargesOf(t, db, id); n != 1 {
			t.Errorf("trip %s: %d charges, want 1", id, n)
		}
	}
	var charges, strays int
	if err := db.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE trip_id NOT IN (SELECT id FROM trips)) FROM charges").Scan(&charges, &strays); err != nil {
		t.Fatal(err)
	}
	if charges != trips || strays != 0 {
		t.Errorf("%d charges (%d for no booked trip), want %d", charges, strays, trips)
	}
	if s := skipped(); s < int64(killed+trips) {
		t.Errorf("the inbox skipped %d duplicates, want at least %d (one per event killed before its ack, one per event sent twice by the relay)", s, killed+trips)
	}
	var sent, unsent int
	if err := db.QueryRow(ctx, "SELECT count(*) FILTER (WHERE sent_at IS NOT NULL), count(*) FILTER (WHERE sent_at IS NULL) FROM warren_outbox").Scan(&sent, &unsent); err != nil {
		t.Fatal(err)
	}
	if sent != trips || unsent != 0 {
		t.Errorf("outbox: %d rows sent, %d unsent; want %d sent", sent, unsent, trips)
	}
	for _, q := range []string{f.Queue, topology.QuarantineQueueName(f.Queue)} {
		if n := brokertest.Depth(t, q); n != 0 {
			t.Errorf("queue %s: %d events left, want 0", q, n)
		}
	}
	t.Logf("ledger: %d trips booked, %d outbox rows sent (each twice: the first relay was killed before marking them), %d charges; billing killed twice with %d charges committed and not acked; %d duplicates skipped by the inbox",
		trips, sent, charges, killed, skipped())
}

// killRelayMidBatch runs a relay in a process of its own and SIGKILLs it
// mid-batch: after the broker confirmed the batch's n events, before the
// relay marks their rows sent. A trigger on the outbox holds the marking
// on an advisory lock the test holds. The relay's transaction rolls
// back: the rows are unsent again, and the events are in the queue.
func killRelayMidBatch(t *testing.T, db *pgxpool.Pool, schema string, f *queuetest.Fixture, n int) {
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
	cmd.Env = append(os.Environ(), childRelayEnv+"=1", childAMQPEnv+"="+brokertest.URL(t), childPGEnv+"="+pgtest.SchemaURL(t, schema))
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
	testkit.WaitDepth(t, f.Queue, n, 60*time.Second)
	if s, err := outbox.ReadStats(ctx, db); err != nil || s.Backlog != int64(n) {
		t.Fatalf("outbox stats %+v, %v: want the %d rows unsent while the relay waits to mark them", s, err, n)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the relay child ended with %v, want killed\n%s", err, stderr.String())
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

// chargesOf returns how many charges trip id has.
func chargesOf(t *testing.T, db *pgxpool.Pool, id string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "SELECT count(*) FROM charges WHERE trip_id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
