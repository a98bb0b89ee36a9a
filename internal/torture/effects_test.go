//go:build torture

package torture_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/brokertest/rawmsg"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/redistest"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/topology"
)

// effectJobType is the effects run's job type: a trip booked by the trip
// service, charged by the billing service.
const effectJobType = "trip.booked"

// effectsSchema is the two services' own tables, beside the outbox and
// the inbox. charges (billing's effects) and notices (notify's) have no
// unique key on purpose: a second effect of a job is a second row, for
// the ledger to find.
const effectsSchema = `
CREATE TABLE trips (
	id bigserial PRIMARY KEY,
	job_id text NOT NULL UNIQUE,
	behaviour text NOT NULL
);
CREATE TABLE charges (
	id bigserial PRIMARY KEY,
	job_id text NOT NULL,
	trip_id bigint NOT NULL,
	attempt int NOT NULL,
	worker text NOT NULL,
	at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE notices (LIKE charges INCLUDING ALL)`

// effectsTx is one transaction of the trip service: trips booked and
// their jobs written to the outbox together, committed or, on purpose,
// rolled back.
type effectsTx struct {
	Jobs     []effectPayload
	Rollback bool
	Ordering string // the jobs' outbox ordering key, or ""
}

// effectsPlan is what an effects run draws from its seed.
type effectsPlan struct {
	Exchange, Queue      string // Queue is billing's
	Notify               string // notify's queue
	QueueType, DelayType string
	Txs                  []effectsTx
	jobs                 int
}

func newEffectsPlan(seed uint64, n int, name func(string) string) *effectsPlan {
	r := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	types := []string{"classic", "quorum"}
	p := &effectsPlan{Exchange: name("trips"), Queue: name("billing"), Notify: name("notify"), QueueType: types[r.IntN(2)], DelayType: types[r.IntN(2)]}
	dies := max(2, n/100)
	for p.jobs < n {
		tx := effectsTx{Rollback: r.IntN(100) < 5}
		if r.IntN(100) < 30 {
			tx.Ordering = fmt.Sprintf("driver-%d", r.IntN(20))
		}
		for range 1 + r.IntN(4) {
			var j effectPayload
			switch x := r.IntN(100); {
			case !tx.Rollback && dies > 0 && x < 3:
				j.B = effectDieLate
				dies--
			case x < 65:
				j.B = effectOK
			case x < 82:
				j = effectPayload{B: effectSlow, Ms: 50 + r.IntN(751)}
			default:
				j.B = effectFailTx
			}
			tx.Jobs = append(tx.Jobs, j)
		}
		if !tx.Rollback {
			p.jobs += len(tx.Jobs)
		}
		p.Txs = append(p.Txs, tx)
	}
	return p
}

func (p *effectsPlan) yaml() string {
	return fmt.Sprintf(`version: 1
delay: {queue_type: %s}
exchanges:
  %s: {type: direct}
queues:
  %[3]s: {type: %[4]s}
  %[5]s: {type: %[4]s}
bindings:
  - {exchange: %[2]s, queue: %[3]s, routing_keys: [%[6]s]}
  - {exchange: %[2]s, queue: %[5]s, routing_keys: [%[6]s]}
routes:
  %[6]s: {exchange: %[2]s, retry: {max_attempts: 10, initial_interval: 300ms, multiplier: 1.5, max_interval: 3s, jitter: 0.2}}
`, p.DelayType, p.Exchange, p.Queue, p.QueueType, p.Notify, effectJobType)
}

// effectsLedger is what the children of an effects run reported. The
// database is the ledger's truth; these lines are checked against it.
type effectsLedger struct {
	mu            sync.Mutex
	effects       map[string]map[string]int // "eff" lines per consumer role and job id
	skipped       map[string]int            // duplicates the inbox skipped, per consumer role
	died          map[string]int            // consumers that killed themselves after a commit, per role
	diedBeforeMrk int                       // relays that killed themselves before marking a batch
	relaySent     int                       // rows the relays' committed batches sent
	relayFailed   int
	bad           []string
}

func newEffectsLedger() *effectsLedger {
	return &effectsLedger{effects: map[string]map[string]int{roleBilling: {}, roleNotify: {}}, skipped: map[string]int{}, died: map[string]int{}}
}

func (l *effectsLedger) line(role string, slot int, line string) {
	f := strings.Fields(line)
	l.mu.Lock()
	defer l.mu.Unlock()
	consumer := role == roleBilling || role == roleNotify || role == roleChain || role == roleSagaStep
	switch {
	case consumer && len(f) == 3 && f[0] == "eff":
		l.effects[role][f[1]]++
	case consumer && len(f) == 2 && f[0] == "skip":
		l.skipped[role]++
	case consumer && len(f) == 2 && f[0] == "die":
		l.died[role]++
	case role == roleRelay && len(f) == 1 && f[0] == "die-before-mark":
		l.diedBeforeMrk++
	case role == roleRelay && len(f) == 3 && f[0] == "batch":
		var sent, failed int
		if _, err := fmt.Sscan(f[1], &sent); err == nil {
			l.relaySent += sent
		}
		if _, err := fmt.Sscan(f[2], &failed); err == nil {
			l.relayFailed += failed
		}
	default:
		l.bad = append(l.bad, fmt.Sprintf("%s %d: %q", role, slot, line))
	}
}

// TestEffects is the torture of effects across services: a trip service
// books trips and writes their jobs to a transactional outbox in the same
// PostgreSQL transactions (a few rolled back on purpose), relays publish
// them, billing workers charge each trip through a PostgreSQL inbox and
// notify workers notify its passenger through a Redis inbox. Meanwhile
// relays and workers are SIGKILLed (also at the worst moments: a relay
// with its batch confirmed and not marked sent, a worker with its effect
// committed and not acked), the broker closes their connections and
// PostgreSQL terminates their sessions. The ledger is in the database:
// every committed trip is charged exactly once and notified at least
// once (at most once more per notify worker's death in the window Redis
// cannot close), and nothing else is.
func TestEffects(t *testing.T) {
	cfg := loadConfig(t)
	n := max(cfg.jobs/2, 20)
	replay := fmt.Sprintf("seed=%d (replay: make torture TORTURE_SEED=%d TORTURE_JOBS=%d)", cfg.seed, cfg.seed, cfg.jobs)
	deadline := time.Now().Add(time.Duration(cfg.minutes) * time.Minute)
	chaos := rand.New(rand.NewPCG(cfg.seed, 2))

	vhost := brokertest.Vhost(t)
	const password = "torture"
	user := brokertest.User(t, password, vhost, brokertest.Permissions{Configure: ".*", Write: ".*", Read: ".*"})
	url := brokertest.URLFor(t, user, password, vhost)
	version, _ := brokertest.Conn(t).Properties["version"].(string)

	p := newEffectsPlan(cfg.seed, n, func(what string) string { return brokertest.Name(t, what) })
	text := p.yaml()
	topo, err := topology.Parse("effects.yaml", []byte(text))
	if err != nil {
		t.Fatalf("%s: the generated topology: %v\n%s", replay, err, text)
	}
	t.Logf("torture effects: %s, %d jobs in %d transactions, queues %s and %s (%s), delay cascade %s",
		replay, p.jobs, len(p.Txs), p.Queue, p.Notify, p.QueueType, p.DelayType)
	ctx := brokertest.Context(t, time.Duration(cfg.minutes+2)*time.Minute)

	// The services' database: a schema of the run's own.
	schema := pgtest.Schema(t)
	db := pgtest.Pool(t, schema)
	if _, err := db.Exec(ctx, effectsSchema); err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	store, err := pginbox.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	_, redisPrefix := redistest.Client(t)
	// Sessions are named so that the chaos can terminate the run's own.
	appPrefix := fmt.Sprintf("torture-%x-", rand.Uint32())
	dbURL := func(app string) string { return pgtest.SchemaURL(t, schema) + "&application_name=" + appPrefix + app }
	producerDB, err := pgxpool.New(ctx, dbURL("producer"))
	if err != nil {
		t.Fatal(err)
	}
	defer producerDB.Close()

	conn, err := broker.Dial(ctx, []string{url}, broker.WithName(brokertest.ConnName(t, "declare")))
	if err != nil {
		t.Fatal(err)
	}
	decl := broker.NewDeclarer(conn)
	if _, err := topology.Declare(ctx, decl, topo); err != nil {
		t.Fatalf("declare: %v", err)
	}
	decl.Close(ctx)
	conn.Close()

	l := newEffectsLedger()
	fl := newFleet(t)
	start := func(role, queue string, i int) {
		name := brokertest.ConnName(t, fmt.Sprintf("%s%d", role, i))
		fl.start(i, name, role, []string{
			childRoleEnv + "=" + role, childURLEnv + "=" + url, childTopologyEnv + "=" + text, childNameEnv + "=" + name,
			childDBEnv + "=" + dbURL(fmt.Sprintf("%s%d", role, i)), childQueueEnv + "=" + queue,
			childRedisEnv + "=" + redistest.URL(t), childPrefixEnv + "=" + redisPrefix,
		}, func(slot int, line string) { l.line(role, slot, line) })
	}
	for i := range 2 {
		start(roleRelay, "", i)
	}
	for i := range cfg.workers {
		start(roleBilling, p.Queue, i)
	}
	for i := range 2 {
		start(roleNotify, p.Notify, i)
	}

	prod := produceTrips(ctx, producerDB, topo, p)

	// The chaos until every committed trip has its effects: SIGKILLs,
	// closed broker connections, terminated database sessions.
	kills, closes, terminated := map[string]int{}, 0, 0
	nextKill := time.Now().Add(jitter(chaos, 1500*time.Millisecond, 4*time.Second))
	nextClose := time.Now().Add(jitter(chaos, 3*time.Second, 8*time.Second))
	nextTerm := time.Now().Add(jitter(chaos, 3*time.Second, 8*time.Second))
	const stall = 45 * time.Second
	quiet, lastDone, lastProgress, lastLog := 0, -1, time.Now(), time.Now()
	produced := false
	for {
		time.Sleep(time.Second)
		select {
		case <-prod.done:
			produced = true
		default:
		}
		pr := effectsProgress(ctx, t, db)
		if d := 2*pr.trips - pr.uncharged - pr.unnotified; d != lastDone {
			lastDone, lastProgress = d, time.Now()
		}
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			t.Logf("torture effects: %s %d committed trips, %d charged, %d notified, outbox backlog %d; kills %v, closed connections %d, terminated sessions %d",
				time.Now().Format("15:04:05"), pr.trips, pr.trips-pr.uncharged, pr.trips-pr.unnotified, pr.backlog, kills, closes, terminated)
		}
		done := produced && pr.uncharged == 0 && pr.unnotified == 0 && pr.backlog == 0
		if !done {
			if time.Now().After(nextKill) {
				if s := fl.sups[chaos.IntN(len(fl.sups))]; s.kill() {
					kills[fl.roles[s]]++
				}
				nextKill = time.Now().Add(jitter(chaos, 1500*time.Millisecond, 4*time.Second))
			}
			if time.Now().After(nextClose) {
				if s := fl.sups[chaos.IntN(len(fl.sups))]; s.running() {
					closes += brokertest.CloseConnectionsIfAny(t, s.name)
				}
				nextClose = time.Now().Add(jitter(chaos, 3*time.Second, 8*time.Second))
			}
			if time.Now().After(nextTerm) {
				terminated += terminateSession(ctx, t, db, appPrefix, chaos)
				nextTerm = time.Now().Add(jitter(chaos, 3*time.Second, 8*time.Second))
			}
		}
		if done || produced && pr.backlog == 0 && time.Since(lastProgress) > stall {
			if pending(t, url, []string{p.Queue, p.Notify}) == 0 {
				quiet++
			} else {
				quiet = 0
			}
			if quiet >= 3 {
				if !done {
					t.Logf("torture effects: %d trips uncharged and %d unnotified, no progress for %s, every queue empty: the dead letters decide",
						pr.uncharged, pr.unnotified, stall)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: no quiescence within %d minutes (TORTURE_MINUTES): of %d committed trips, %d uncharged and %d unnotified; outbox backlog %d",
				replay, cfg.minutes, pr.trips, pr.uncharged, pr.unnotified, pr.backlog)
			break
		}
	}
	if stuck := fl.stop(); stuck > 0 {
		t.Errorf("%s: %d children did not shut down within a minute of being asked to", replay, stuck)
	}
	<-prod.done

	parked := readEffectsDeadLetters(t, url, p.Queue)
	parkedNotify := readEffectsDeadLetters(t, url, p.Notify)
	v := checkEffects(ctx, t, db, prod, l, parked, parkedNotify)
	starts, failures := fl.stats()
	// A notify worker SIGKILLed between a job's effect and its done mark
	// in Redis leaves the job to run again: at most one more effect per
	// job it was running (its concurrency), and one per terminated
	// session whose insert committed unseen.
	notifyAllowed := 4*kills[roleNotify] + terminated
	l.mu.Lock()
	fmt.Printf("torture effects ledger: seed=%d trips=%d rolled_back=%d charges=%d lost=%d duplicated_effects=%d phantom=%d parked=%d "+
		"skipped_duplicates=%d notices=%d notify_lost=%d notify_duplicated=%d (allowed %d) notify_parked=%d "+
		"relay_sent=%d died_after_commit=%d notify_died_after_done=%d relay_died_before_mark=%d kills=%d (relay %d, billing %d, notify %d) restarts=%d "+
		"closed_connections=%d terminated_sessions=%d producer_retries=%d broker=%s\n",
		cfg.seed, v.trips, len(prod.rolledBack), v.charges, len(v.lost), v.duplicated, len(v.phantom), len(parked),
		l.skipped[roleBilling], v.notices, len(v.notifyLost), v.notifyDuplicated, notifyAllowed, len(parkedNotify),
		l.relaySent, l.died[roleBilling], l.died[roleNotify], l.diedBeforeMrk,
		kills[roleRelay]+kills[roleBilling]+kills[roleNotify], kills[roleRelay], kills[roleBilling], kills[roleNotify], starts-len(fl.sups),
		closes, terminated, prod.retries, version)
	died, relaySent, bad := l.died[roleBilling], l.relaySent, l.bad
	l.mu.Unlock()
	for _, c := range []struct {
		what string
		ids  []string
	}{
		{"committed trips never charged (lost)", v.lost},
		{"jobs charged more than once", v.twice},
		{"charges of no committed trip (phantoms: a rolled-back transaction's job, or one never written)", v.phantom},
		{"charges of another trip than their job's", v.wrongTrip},
		{"inbox records without a charge", v.recordOnly},
		{"charges without an inbox record", v.chargeOnly},
		{"effects a worker reported committed that the database does not hold", v.reportedMissing},
		{"outbox rows left unsent", v.unsent},
		{"jobs parked in billing's dead-letter queue", parkedList(parked)},
		{"committed trips never notified (lost)", v.notifyLost},
		{"notices of no committed trip", v.notifyPhantom},
		{"jobs parked in notify's dead-letter queue", parkedList(parkedNotify)},
		{"malformed lines from the children", bad},
	} {
		if len(c.ids) > 0 {
			t.Errorf("%s: %d %s:\n%s", replay, len(c.ids), c.what, first(c.ids, 20))
		}
	}
	if v.notifyDuplicated > notifyAllowed {
		t.Errorf("%s: %d duplicate notices, more than the %d the notify workers' deaths (%d) and terminated sessions (%d) explain:\n%s",
			replay, v.notifyDuplicated, notifyAllowed, kills[roleNotify], terminated, first(v.notifyTwice, 20))
	}
	if len(failures) > 0 {
		t.Errorf("%s: %d child processes ended otherwise than by a SIGKILL or a shutdown:\n%s", replay, len(failures), first(failures, 5))
	}
	if relaySent > v.trips {
		t.Errorf("%s: the relays' committed batches sent %d rows, more than the %d written: a row was marked sent twice", replay, relaySent, v.trips)
	}
	if died == 0 {
		t.Errorf("%s: no billing worker killed itself between a commit and its ack: the die-after-commit jobs did not run", replay)
	}
	if prod.err != nil {
		t.Errorf("%s: the trip service: %v", replay, prod.err)
	}
}

// production is what the trip service committed, rolled back, and could
// not tell.
type production struct {
	done       chan struct{}
	rolledBack []string // job ids written in transactions rolled back on purpose
	retries    int      // transactions that failed (a terminated session) and were written again
	err        error    // a transaction that failed every time
}

// produceTrips runs the plan's transactions from 4 goroutines, spread over
// about 30 seconds. A transaction that fails (its session terminated by
// the chaos) is written again with new ids: whether the failed one
// committed the database says, and the ledger reads it from there.
func produceTrips(ctx context.Context, db *pgxpool.Pool, topo *topology.Topology, p *effectsPlan) *production {
	prod := &production{done: make(chan struct{})}
	var mu sync.Mutex
	txs := make(chan effectsTx)
	var wg sync.WaitGroup
	errRollback := errors.New("rolled back on purpose")
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tx := range txs {
				var err error
				for try := 0; try < 10; try++ {
					var ids []string
					err = pgx.BeginFunc(ctx, db, func(dbtx pgx.Tx) error {
						for _, j := range tx.Jobs {
							id, err := broker.NewJobID()
							if err != nil {
								return err
							}
							if err := dbtx.QueryRow(ctx, "INSERT INTO trips (job_id, behaviour) VALUES ($1, $2) RETURNING id", id, j.B).Scan(&j.Trip); err != nil {
								return err
							}
							opts := []outbox.PublishOption{outbox.Router(topo)}
							if tx.Ordering != "" {
								opts = append(opts, outbox.OrderingKey(tx.Ordering))
							}
							if err := outbox.Publish(ctx, dbtx, broker.Job{ID: id, Type: effectJobType, Payload: j}, opts...); err != nil {
								return err
							}
							ids = append(ids, id)
						}
						if tx.Rollback {
							return errRollback
						}
						return nil
					})
					if errors.Is(err, errRollback) {
						mu.Lock()
						prod.rolledBack = append(prod.rolledBack, ids...)
						mu.Unlock()
						err = nil
					}
					if err == nil || ctx.Err() != nil {
						break
					}
					mu.Lock()
					prod.retries++
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
				}
				if err != nil {
					mu.Lock()
					prod.err = errors.Join(prod.err, err)
					mu.Unlock()
				}
			}
		}()
	}
	go func() {
		defer close(prod.done)
		defer wg.Wait()
		defer close(txs)
		pace := 30 * time.Second / time.Duration(max(len(p.Txs), 1))
		begin := time.Now()
		for i, tx := range p.Txs {
			if d := time.Until(begin.Add(time.Duration(i) * pace)); d > 0 {
				time.Sleep(d)
			}
			select {
			case txs <- tx:
			case <-ctx.Done():
				return
			}
		}
	}()
	return prod
}

// progress is how far an effects run is.
type progress struct {
	trips, uncharged, unnotified, backlog int
}

// effectsProgress reads the committed trips, those not charged or not
// notified yet, and the outbox's backlog.
func effectsProgress(ctx context.Context, t *testing.T, db *pgxpool.Pool) progress {
	t.Helper()
	var pr progress
	err := db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM trips),
		(SELECT count(*) FROM trips t WHERE NOT EXISTS (SELECT 1 FROM charges c WHERE c.job_id = t.job_id)),
		(SELECT count(*) FROM trips t WHERE NOT EXISTS (SELECT 1 FROM notices n WHERE n.job_id = t.job_id)),
		(SELECT count(*) FROM warren_outbox WHERE sent_at IS NULL)`).Scan(&pr.trips, &pr.uncharged, &pr.unnotified, &pr.backlog)
	if err != nil {
		t.Fatalf("read the progress: %v", err)
	}
	return pr
}

// terminateSession terminates one of the run's database sessions (a
// relay's, a worker's or the trip service's), as an operator or a
// failover would, and returns how many it terminated.
func terminateSession(ctx context.Context, t *testing.T, db *pgxpool.Pool, prefix string, r *rand.Rand) int {
	t.Helper()
	rows, err := db.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1 || '%'", prefix)
	if err != nil {
		t.Fatalf("list the run's sessions: %v", err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil || len(pids) == 0 {
		return 0
	}
	var ok bool
	if err := db.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pids[r.IntN(len(pids))]).Scan(&ok); err != nil || !ok {
		return 0
	}
	return 1
}

// readEffectsDeadLetters reads the queue's dead letters: job id and class.
func readEffectsDeadLetters(t *testing.T, url, queue string) map[string]string {
	t.Helper()
	c, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("read the dead-letter queue: %v", err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("read the dead-letter queue: %v", err)
	}
	parked := map[string]string{}
	dlq := topology.DeadLetterQueueName(queue)
	for {
		d, ok, err := ch.Get(dlq, true)
		if err != nil {
			t.Fatalf("read %s: %v", dlq, err)
		}
		if !ok {
			return parked
		}
		env, err := rawmsg.Envelope(&d)
		if err != nil {
			t.Errorf("%s holds a message that is not a job (%v): %q", dlq, err, d.MessageId)
			continue
		}
		parked[env.ID] = "?"
		if env.Failure != nil {
			parked[env.ID] = env.Failure.Class + ": " + env.Failure.Error
		}
	}
}

func parkedList(parked map[string]string) []string {
	var out []string
	for id, why := range parked {
		out = append(out, id+" ("+why+")")
	}
	return out
}

// effectsVerdict is the ledger, read from the database.
type effectsVerdict struct {
	trips, charges, duplicated int
	lost, twice, phantom       []string
	wrongTrip                  []string
	recordOnly, chargeOnly     []string
	reportedMissing            []string
	unsent                     []string

	notices, notifyDuplicated              int
	notifyLost, notifyTwice, notifyPhantom []string
}

// checkEffects reads the ledger from the database: every committed trip
// charged exactly once, by its own job, with one inbox record, and
// notified; and compares it with what the children reported.
func checkEffects(ctx context.Context, t *testing.T, db *pgxpool.Pool, prod *production, l *effectsLedger, parked, parkedNotify map[string]string) effectsVerdict {
	t.Helper()
	ids := func(sql string, args ...any) []string {
		t.Helper()
		rows, err := db.Query(ctx, sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return out
	}
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := db.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	// effects checks one consumer's table: the trips without an effect
	// (parked ones apart), the jobs with several, and effects of no trip.
	effects := func(table string, parked map[string]string) (n, duplicated int, lost, twice, phantom []string) {
		for _, id := range ids(`SELECT t.job_id FROM trips t WHERE NOT EXISTS (SELECT 1 FROM ` + table + ` e WHERE e.job_id = t.job_id) ORDER BY t.id`) {
			if _, ok := parked[id]; !ok {
				lost = append(lost, id)
			}
		}
		twice = ids(`SELECT job_id || ': ' || string_agg(worker || ' attempt ' || attempt, ', ' ORDER BY id) FROM ` + table + ` GROUP BY job_id HAVING count(*) > 1`)
		phantom = ids(`SELECT e.job_id FROM ` + table + ` e WHERE NOT EXISTS (SELECT 1 FROM trips t WHERE t.job_id = e.job_id)`)
		return count(`SELECT count(*) FROM ` + table), count(`SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM ` + table + ` GROUP BY job_id) e`),
			lost, twice, phantom
	}
	var v effectsVerdict
	v.trips = count("SELECT count(*) FROM trips")
	v.charges, v.duplicated, v.lost, v.twice, v.phantom = effects("charges", parked)
	v.notices, v.notifyDuplicated, v.notifyLost, v.notifyTwice, v.notifyPhantom = effects("notices", parkedNotify)
	v.wrongTrip = ids(`SELECT c.job_id FROM charges c JOIN trips t ON t.job_id = c.job_id WHERE t.id <> c.trip_id`)
	v.recordOnly = ids(`SELECT i.job_id FROM warren_inbox i WHERE i.consumer = $1 AND NOT EXISTS (SELECT 1 FROM charges c WHERE c.job_id = i.job_id)`, inboxConsumer)
	v.chargeOnly = ids(`SELECT DISTINCT c.job_id FROM charges c WHERE NOT EXISTS (SELECT 1 FROM warren_inbox i WHERE i.consumer = $1 AND i.job_id = c.job_id)`, inboxConsumer)
	v.unsent = ids(`SELECT job_id FROM warren_outbox WHERE sent_at IS NULL`)
	charged := map[string]bool{}
	for _, id := range ids(`SELECT DISTINCT job_id FROM charges`) {
		charged[id] = true
	}
	l.mu.Lock()
	for id := range l.effects[roleBilling] {
		if !charged[id] {
			v.reportedMissing = append(v.reportedMissing, id)
		}
	}
	l.mu.Unlock()
	rolledBack := map[string]bool{}
	for _, id := range prod.rolledBack {
		rolledBack[id] = true
	}
	for i, id := range v.phantom {
		if rolledBack[id] {
			v.phantom[i] += " (its transaction was rolled back on purpose)"
		}
	}
	return v
}
