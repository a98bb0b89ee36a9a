//go:build torture

package torture_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/brokertest/rawmsg"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/workflow"
)

// maxChainSteps is the longest chain of a run.
const maxChainSteps = 5

// plannedChain is one chain of a run: its steps' types ("s0", "r1", "f2",
// …: kind and place) and their compensations ("u0", or "" for none).
type plannedChain struct {
	Steps []string
	Comps []string
	Fails int // the place of the step that fails for good; -1 for none
}

// expect returns the effects the chain must have, in order: each step's
// before the failing one, with its payload; then the compensations of
// those that have one, newest first, each with its step's result.
func (c plannedChain) expect(n int) []string {
	var out []string
	payload := fmt.Sprintf("c%d", n)
	results := make([]string, 0, len(c.Steps))
	for i, ty := range c.Steps {
		if i == c.Fails {
			break
		}
		out = append(out, fmt.Sprintf("step %s %q", ty, payload))
		payload += "/s" + strconv.Itoa(i)
		results = append(results, payload)
	}
	if c.Fails >= 0 {
		for i := len(results) - 1; i >= 0; i-- {
			if c.Comps[i] != "" {
				out = append(out, fmt.Sprintf("compensation %s %q", c.Comps[i], results[i]))
			}
		}
	}
	return out
}

func newChainsPlan(seed uint64, n int) []plannedChain {
	r := rand.New(rand.NewPCG(seed, seed^0x2545f4914f6cdd1d))
	dies := max(2, n/40)
	chains := make([]plannedChain, n)
	for i := range chains {
		c := plannedChain{Fails: -1}
		steps := 2 + r.IntN(maxChainSteps-1)
		if r.IntN(100) < 40 {
			c.Fails = r.IntN(steps)
		}
		for p := range steps {
			kind := chainStep
			switch x := r.IntN(100); {
			case p == c.Fails:
				kind = chainFail
			case x < 15:
				kind = chainFailOnce
			case x < 20 && dies > 0:
				kind = chainDieLate
				dies--
			}
			c.Steps = append(c.Steps, string(rune(kind))+strconv.Itoa(p))
			comp := ""
			if r.IntN(100) < 70 {
				comp = string(rune(chainUndo)) + strconv.Itoa(p)
			}
			c.Comps = append(c.Comps, comp)
		}
		chains[i] = c
	}
	return chains
}

// TestChains is the torture of chains (package workflow): chains of 2–5
// steps, some failing for good at a step so that the steps before it are
// compensated, run by worker processes whose effects go through a
// PostgreSQL inbox, while the workers are SIGKILLed (also between an
// effect's commit and its ack, before the chain's next step is published)
// and the broker closes their connections. The ledger is in the database:
// each chain's steps took effect once each, in order, each on its
// predecessor's result, and, when a step failed, the compensations of the
// steps before it took effect once each, newest first, on their steps'
// results.
func TestChains(t *testing.T) {
	cfg := loadConfig(t)
	n := max(cfg.jobs/10, 10)
	replay := fmt.Sprintf("seed=%d (replay: make torture TORTURE_SEED=%d TORTURE_JOBS=%d)", cfg.seed, cfg.seed, cfg.jobs)
	deadline := time.Now().Add(time.Duration(cfg.minutes) * time.Minute)
	chaos := rand.New(rand.NewPCG(cfg.seed, 3))
	plan := newChainsPlan(cfg.seed, n)

	vhost := brokertest.Vhost(t)
	const password = "torture"
	user := brokertest.User(t, password, vhost, brokertest.Permissions{Configure: ".*", Write: ".*", Read: ".*"})
	url := brokertest.URLFor(t, user, password, vhost)
	version, _ := brokertest.Conn(t).Properties["version"].(string)

	exchange, queue := brokertest.Name(t, "chains"), brokertest.Name(t, "steps")
	qtype := []string{"classic", "quorum"}[chaos.IntN(2)]
	var yaml strings.Builder
	fmt.Fprintf(&yaml, "version: 1\nexchanges:\n  %s: {type: direct}\nqueues:\n  %s: {type: %s}\nbindings:\n  - {exchange: %s, queue: %s, routing_keys: [", exchange, queue, qtype, exchange, queue)
	var types []string
	for p := range maxChainSteps {
		for _, k := range []rune{chainStep, chainFailOnce, chainDieLate, chainFail, chainUndo} {
			types = append(types, string(k)+strconv.Itoa(p))
		}
	}
	yaml.WriteString(strings.Join(types, ", ") + "]}\nroutes:\n")
	for _, ty := range types {
		fmt.Fprintf(&yaml, "  %s: {exchange: %s, retry: {max_attempts: 10, initial_interval: 300ms, multiplier: 1.5, max_interval: 3s, jitter: 0.2}}\n", ty, exchange)
	}
	text := yaml.String()
	topo, err := topology.Parse("chains.yaml", []byte(text))
	if err != nil {
		t.Fatalf("the generated topology: %v\n%s", err, text)
	}
	t.Logf("torture chains: %s, %d chains, queue %s (%s)", replay, n, queue, qtype)
	ctx := brokertest.Context(t, time.Duration(cfg.minutes+2)*time.Minute)

	schema := pgtest.Schema(t)
	db := pgtest.Pool(t, schema)
	if _, err := db.Exec(ctx, `CREATE TABLE chain_effects (
		id bigserial PRIMARY KEY, chain_id text NOT NULL, kind text NOT NULL, place int NOT NULL,
		job_type text NOT NULL, payload text NOT NULL, worker text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	store, err := pginbox.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	conn, err := broker.Dial(ctx, []string{url}, broker.WithName(brokertest.ConnName(t, "producer")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	decl := broker.NewDeclarer(conn)
	if _, err := topology.Declare(ctx, decl, topo); err != nil {
		t.Fatalf("declare: %v", err)
	}
	decl.Close(ctx)

	l := newEffectsLedger()
	l.effects[roleChain] = map[string]int{}
	fl := newFleet(t)
	for i := range cfg.workers {
		name := brokertest.ConnName(t, fmt.Sprintf("chain%d", i))
		fl.start(i, name, roleChain, []string{
			childRoleEnv + "=" + roleChain, childURLEnv + "=" + url, childTopologyEnv + "=" + text, childNameEnv + "=" + name,
			childDBEnv + "=" + pgtest.SchemaURL(t, schema), childQueueEnv + "=" + queue,
		}, func(slot int, line string) { l.line(roleChain, slot, line) })
	}

	// The chains, started over about 20 seconds.
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	var idsMu sync.Mutex
	ids := map[string]int{} // chain id: its place in the plan
	published := make(chan struct{})
	var pubErr error
	go func() {
		defer close(published)
		pace := 20 * time.Second / time.Duration(len(plan))
		begin := time.Now()
		for i, c := range plan {
			if d := time.Until(begin.Add(time.Duration(i) * pace)); d > 0 {
				time.Sleep(d)
			}
			steps := make([]workflow.Step, len(c.Steps))
			for p, ty := range c.Steps {
				steps[p] = workflow.Step{Type: ty}
				if c.Comps[p] != "" {
					steps[p].Compensate = &workflow.Step{Type: c.Comps[p]}
				}
			}
			steps[0].Payload = fmt.Sprintf("c%d", i)
			ch, err := workflow.NewChain(steps...)
			if err == nil {
				var id string
				pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				id, err = ch.Publish(pctx, pub)
				cancel()
				idsMu.Lock()
				ids[id] = i
				idsMu.Unlock()
			}
			if err != nil {
				pubErr = fmt.Errorf("chain %d: %w", i, err)
				return
			}
		}
	}()

	want := 0
	for i, c := range plan {
		want += len(c.expect(i))
	}
	kills, closes := 0, 0
	nextKill := time.Now().Add(jitter(chaos, 2*time.Second, 6*time.Second))
	nextClose := time.Now().Add(jitter(chaos, 3*time.Second, 8*time.Second))
	const stall = 45 * time.Second
	quiet, last, lastProgress, lastLog := 0, -1, time.Now(), time.Now()
	done := false
	for {
		time.Sleep(time.Second)
		select {
		case <-published:
			done = true
		default:
		}
		var got int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM chain_effects").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != last {
			last, lastProgress = got, time.Now()
		}
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			t.Logf("torture chains: %s %d of %d effects; kills %d, closed connections %d", time.Now().Format("15:04:05"), got, want, kills, closes)
		}
		finished := done && got >= want
		if !finished {
			if time.Now().After(nextKill) {
				if fl.sups[chaos.IntN(len(fl.sups))].kill() {
					kills++
				}
				nextKill = time.Now().Add(jitter(chaos, 2*time.Second, 6*time.Second))
			}
			if time.Now().After(nextClose) {
				if s := fl.sups[chaos.IntN(len(fl.sups))]; s.running() {
					closes += brokertest.CloseConnectionsIfAny(t, s.name)
				}
				nextClose = time.Now().Add(jitter(chaos, 3*time.Second, 8*time.Second))
			}
		}
		if finished || done && time.Since(lastProgress) > stall {
			if pending(t, url, []string{queue}) == 0 {
				quiet++
			} else {
				quiet = 0
			}
			if quiet >= 3 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: no quiescence within %d minutes: %d of %d effects", replay, cfg.minutes, got, want)
			break
		}
	}
	if stuck := fl.stop(); stuck > 0 {
		t.Errorf("%s: %d workers did not shut down within a minute of being asked to", replay, stuck)
	}
	<-published
	if pubErr != nil {
		t.Fatalf("%s: publishing the chains: %v", replay, pubErr)
	}

	// The ledger: every chain's effects, in the order they committed.
	got := map[int][]string{}
	var foreign []string
	rows, err := db.Query(ctx, "SELECT chain_id, kind, job_type, payload FROM chain_effects ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var chainID, kind, ty, payload string
		if err := rows.Scan(&chainID, &kind, &ty, &payload); err != nil {
			t.Fatal(err)
		}
		i, ok := ids[chainID]
		if !ok {
			foreign = append(foreign, chainID)
			continue
		}
		got[i] = append(got[i], fmt.Sprintf("%s %s %q", kind, ty, payload))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var wrong []string
	completed, compensated, effects := 0, 0, 0
	for i, c := range plan {
		exp := c.expect(i)
		effects += len(got[i])
		if strings.Join(got[i], "; ") != strings.Join(exp, "; ") {
			wrong = append(wrong, fmt.Sprintf("chain %d %v (fails at %d, compensations %v): got [%s], want [%s]",
				i, c.Steps, c.Fails, c.Comps, strings.Join(got[i], "; "), strings.Join(exp, "; ")))
			continue
		}
		if c.Fails < 0 {
			completed++
		} else {
			compensated++
		}
	}
	parked, parkedTwice, badParked := readChainDeadLetters(t, url, queue, plan, ids)
	failing := 0
	for _, c := range plan {
		if c.Fails >= 0 {
			failing++
		}
	}
	starts, failures := fl.stats()
	l.mu.Lock()
	skipped, died, bad := l.skipped[roleChain], l.died[roleChain], l.bad
	l.mu.Unlock()
	fmt.Printf("torture chains ledger: seed=%d chains=%d completed=%d compensated=%d wrong=%d effects=%d (want %d) parked=%d (want %d) parked_twice=%d "+
		"skipped_duplicates=%d died_after_commit=%d kills=%d restarts=%d closed_connections=%d broker=%s\n",
		cfg.seed, n, completed, compensated, len(wrong), effects, want, parked, failing, parkedTwice, skipped, died, kills, starts-len(fl.sups), closes, version)
	if len(wrong) > 0 {
		t.Errorf("%s: %d chains whose effects differ from their plan:\n%s", replay, len(wrong), first(wrong, 20))
	}
	if len(bad) > 0 {
		t.Errorf("%s: %d malformed lines from the workers:\n%s", replay, len(bad), first(bad, 5))
	}
	if len(foreign) > 0 {
		t.Errorf("%s: %d effects of chains this run did not start", replay, len(foreign))
	}
	if parked != failing || len(badParked) > 0 {
		t.Errorf("%s: %d chains have their failing step parked, want %d; %d other jobs parked:\n%s", replay, parked, failing, len(badParked), first(badParked, 20))
	}
	if len(failures) > 0 {
		t.Errorf("%s: %d worker processes ended otherwise than by a SIGKILL or a shutdown:\n%s", replay, len(failures), first(failures, 5))
	}
	if died == 0 {
		t.Errorf("%s: no worker killed itself between a step's commit and its ack: the die-after-commit steps did not run", replay)
	}
}

// readChainDeadLetters reads the queue's dead letters: how many, and those
// that are not the failing step of their chain, failed permanently.
func readChainDeadLetters(t *testing.T, url, queue string, plan []plannedChain, ids map[string]int) (n, twice int, bad []string) {
	t.Helper()
	c, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	dlq := topology.DeadLetterQueueName(queue)
	seen := map[int]bool{}
	for {
		d, ok, err := ch.Get(dlq, true)
		if err != nil {
			t.Fatalf("read %s: %v", dlq, err)
		}
		if !ok {
			sort.Strings(bad)
			return len(seen), twice, bad
		}
		env, err := rawmsg.Envelope(&d)
		if err != nil {
			bad = append(bad, fmt.Sprintf("not a job: %v", err))
			continue
		}
		slip, err := broker.ReadSlip(env.Headers[broker.HeaderChain])
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s (%s): %v", env.ID, env.Type, err))
			continue
		}
		i, ok := ids[slip.ChainID]
		class := ""
		if env.Failure != nil {
			class = env.Failure.Class + ": " + env.Failure.Error
		}
		if !ok || plan[i].Fails < 0 || env.Type != plan[i].Steps[plan[i].Fails] || !strings.HasPrefix(class, "permanent") {
			bad = append(bad, fmt.Sprintf("%s (%s) of chain %d, class %s", env.ID, env.Type, i, class))
			continue
		}
		if seen[i] {
			twice++ // parked twice: its worker died between the dead letter's confirm and the ack
		}
		seen[i] = true
	}
}
