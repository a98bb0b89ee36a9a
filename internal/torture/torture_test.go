//go:build torture

// Package torture_test is warren's lifecycle torture test: thousands of
// jobs with behaviours drawn from a seed (succeed, fail then succeed,
// always fail, fail permanently, panic, time out, kill the worker, run
// slowly) go through a generated topology while worker processes are
// killed from inside and outside and the broker closes their connections.
// A ledger of every confirmed job then proves that each ended exactly
// once in the terminal state its behaviour calls for. Run it with make
// torture; docs/reliability.md describes it.
package torture_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/brokertest/rawmsg"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) { os.Exit(brokertest.MainWithLeakCheck(m)) }

var seedFlag = flag.Uint64("torture.seed", 0, "the seed of the run (default: TORTURE_SEED, else the time)")

// config is a run's size, from the environment.
type config struct {
	seed    uint64
	jobs    int
	minutes int // the bound on the whole run
	workers int
}

func loadConfig(t *testing.T) config {
	t.Helper()
	c := config{seed: *seedFlag, jobs: 2000, minutes: 10, workers: 3}
	env := func(name string, dst *int) {
		if s := os.Getenv(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive integer", name, s)
			}
			*dst = n
		}
	}
	env("TORTURE_JOBS", &c.jobs)
	env("TORTURE_MINUTES", &c.minutes)
	env("TORTURE_WORKERS", &c.workers)
	if s := os.Getenv("TORTURE_SEED"); c.seed == 0 && s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TORTURE_SEED=%q: want an unsigned integer", s)
		}
		c.seed = n
	}
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	return c
}

// TestTorture: see the package doc.
func TestTorture(t *testing.T) {
	cfg := loadConfig(t)
	replay := fmt.Sprintf("seed=%d (replay: make torture TORTURE_SEED=%d TORTURE_JOBS=%d)", cfg.seed, cfg.seed, cfg.jobs)
	t.Logf("torture: %s, %d jobs, %d workers, at most %d minutes", replay, cfg.jobs, cfg.workers, cfg.minutes)
	deadline := time.Now().Add(time.Duration(cfg.minutes) * time.Minute)
	chaos := rand.New(rand.NewPCG(cfg.seed, 1))

	// A virtual host of its own: the delay cascade is per vhost and shared
	// by everything applied there; here the run can see its delay queues
	// empty, and choose their type.
	vhost := brokertest.Vhost(t)
	const password = "torture"
	user := brokertest.User(t, password, vhost, brokertest.Permissions{Configure: ".*", Write: ".*", Read: ".*"})
	url := brokertest.URLFor(t, user, password, vhost)
	version, _ := brokertest.Conn(t).Properties["version"].(string)

	p := newPlan(cfg.seed, cfg.jobs, func(what string) string { return brokertest.Name(t, what) })
	t.Logf("torture: delay cascade %s; work queues %s; job types:", p.DelayType, strings.Join(p.Queues, ", "))
	for _, ty := range p.Types {
		t.Logf("  %s -> %s: max_attempts %d, initial %s, multiplier %g, jitter %g", ty.Name, ty.Queue,
			ty.Policy.MaxAttempts, ty.Policy.Initial, ty.Policy.Multiplier, ty.Policy.Jitter)
	}
	t.Logf("torture: behaviours %v", p.counts())
	text := p.yaml()
	topo, err := topology.Parse("torture.yaml", []byte(text))
	if err != nil {
		t.Fatalf("%s: the generated topology: %v\n%s", replay, err, text)
	}
	ctx := brokertest.Context(t, time.Duration(cfg.minutes+2)*time.Minute)
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

	l := newLedger()
	fl := newFleet(t)
	for i := range cfg.workers {
		name := brokertest.ConnName(t, fmt.Sprintf("worker%d", i))
		fl.start(i, name, "worker", []string{childURLEnv + "=" + url, childTopologyEnv + "=" + text, childNameEnv + "=" + name}, l.line)
	}
	sups := fl.sups

	published := publish(ctx, t, conn, topo, p, l)

	// The chaos, until every job is settled: SIGKILLs and closed
	// connections at random moments.
	kills, closes := 0, 0
	nextKill := time.Now().Add(jitter(chaos, 10*time.Second, 25*time.Second))
	nextClose := time.Now().Add(jitter(chaos, 5*time.Second, 20*time.Second))
	quiet := 0
	published2 := false
	lastLog := time.Now()
	// A worker killed after it settled a job and before it reported the
	// settlement leaves the job parked or handled but unreported: once
	// nothing has settled for a while and every queue is empty, the dead
	// letters read at the end decide (a job neither handled nor parked is
	// then lost, and fails the run).
	const stall = 30 * time.Second
	lastSettled, lastProgress := -1, time.Now()
	for {
		time.Sleep(time.Second)
		select {
		case <-published:
			published2 = true
		default:
		}
		settled, confirmed := l.settled()
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			t.Logf("torture: %s settled %d of %d confirmed; kills %d, closed connections %d", time.Now().Format("15:04:05"), settled, confirmed, kills, closes)
		}
		if settled != lastSettled {
			lastSettled, lastProgress = settled, time.Now()
		}
		allSettled := published2 && settled == confirmed
		if !allSettled && time.Now().After(nextKill) {
			s := sups[chaos.IntN(len(sups))]
			if s.kill() {
				kills++
			}
			nextKill = time.Now().Add(jitter(chaos, 10*time.Second, 25*time.Second))
		}
		if !allSettled && time.Now().After(nextClose) {
			s := sups[chaos.IntN(len(sups))]
			if s.running() {
				closes += brokertest.CloseConnectionsIfAny(t, s.name)
			}
			nextClose = time.Now().Add(jitter(chaos, 5*time.Second, 20*time.Second))
		}
		if allSettled || published2 && time.Since(lastProgress) > stall {
			// Quiescence: nothing left in any queue, three seconds running.
			if n := pending(t, url, p.Queues); n == 0 {
				quiet++
			} else {
				quiet = 0
			}
			if quiet >= 3 {
				if !allSettled {
					t.Logf("torture: %d of %d confirmed jobs reported settled, none for %s, and every queue is empty: the dead letters decide the rest",
						settled, confirmed, stall)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: no quiescence within %d minutes (TORTURE_MINUTES): %d of %d confirmed jobs settled, %d messages left in the run's queues",
				replay, cfg.minutes, settled, confirmed, pending(t, url, p.Queues))
			break
		}
	}
	if stuck := fl.stop(); stuck > 0 {
		t.Errorf("%s: %d workers did not shut down within a minute of being asked to", replay, stuck)
	}

	rr := replayKilledMidway(t, url, p, l)
	parkedN := readDeadLetters(t, url, p, l, rr.Queue)
	v := l.check()
	starts, crashes, killed, failures := 0, 0, 0, []string(nil)
	for _, s := range sups {
		st, cr, ki, fa := s.stats()
		starts, crashes, killed, failures = starts+st, crashes+cr, killed+ki, append(failures, fa...)
	}
	restarts := starts - len(sups)
	t.Logf("torture: worker exits: %d from kill jobs, %d SIGKILLed from outside, %d other; %d dead letters read",
		crashes, killed, len(failures), parkedN)
	fmt.Printf("torture ledger: seed=%d jobs=%d handled=%d parked=%d lost=%d duplicates=%d unexpected=%d crash_innocent=%d unconfirmed=%d kills=%d restarts=%d closed_connections=%d replay_killed_at=%d/%d replay_lost=%d replay_twice=%d broker=%s\n",
		cfg.seed, l.confirmed, v.Handled, v.Parked, len(v.Lost), v.Duplicates, len(v.Unexpected), len(v.CrashInnocent), v.Unconfirmed,
		killed, restarts, closes, rr.KilledAfterMove, rr.Before, len(rr.Lost), rr.Both, version)
	if len(rr.Lost) > 0 {
		t.Errorf("%s: a replay of %s killed mid-way lost %d of %d jobs (in neither the dead-letter queue nor the replay's target):\n%s",
			replay, rr.Queue, len(rr.Lost), rr.Before, first(rr.Lost, 20))
	}

	if len(v.Lost) > 0 {
		t.Errorf("%s: %d confirmed jobs lost:\n%s", replay, len(v.Lost), first(v.Lost, 20))
	}
	if len(v.Unexpected) > 0 {
		t.Errorf("%s: %d jobs ended otherwise than expected:\n%s", replay, len(v.Unexpected), first(v.Unexpected, 20))
	}
	if len(v.CrashInnocent) > 0 {
		msg := fmt.Sprintf("%d jobs that do not kill their workers were parked with class crash (their worker died while they ran alone in quarantine):\n%s",
			len(v.CrashInnocent), first(v.CrashInnocent, 10))
		if killed == 0 && closes == 0 {
			t.Errorf("%s: %s, although nothing killed a worker or closed its connection from outside", replay, msg)
		} else {
			t.Logf("torture: allowed, since workers were killed or disconnected from outside: %s", msg)
		}
	}
	if len(failures) > 0 {
		t.Errorf("%s: %d worker processes ended otherwise than by a kill job, a SIGKILL or a shutdown:\n%s", replay, len(failures), first(failures, 5))
	}
	if wantCrashes := p.counts()[kill] * (worker.DefaultCrashLimit + 1); crashes < p.counts()[kill] {
		t.Errorf("%s: kill jobs ended workers %d times, want about %d: the kill jobs did not run", replay, crashes, wantCrashes)
	}
	if l.pubErrs > 0 {
		t.Logf("torture: %d publishes failed (reported to the producer, not in the ledger); the first: %v", l.pubErrs, l.firstErr)
	}
}

// publish publishes the plan's jobs, spread over about 20 seconds so that
// the chaos meets new jobs and retries alike, recording each in the
// ledger before its Publish (a worker may report it before Publish
// returns). The channel is closed when all are published.
func publish(ctx context.Context, t *testing.T, conn *broker.Conn, topo *topology.Topology, p *plan, l *ledger) <-chan struct{} {
	t.Helper()
	pub, err := broker.NewPublisher(conn, broker.WithRouter(topo))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	pace := 20 * time.Second / time.Duration(max(len(p.Jobs), 1))
	go func() {
		defer close(done)
		defer pub.Close(context.Background())
		start := time.Now()
		for i, j := range p.Jobs {
			if d := time.Until(start.Add(time.Duration(i) * pace)); d > 0 {
				time.Sleep(d)
			}
			id, err := broker.NewJobID()
			if err != nil {
				l.published("", err)
				continue
			}
			ty := p.Types[j.Type]
			l.add(&jobRecord{ID: id, Type: ty, Payload: j.Payload})
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = pub.Publish(pctx, broker.Job{ID: id, Type: ty.Name, Payload: j.Payload})
			cancel()
			l.published(id, err)
		}
	}()
	return done
}

// pending counts the messages ready in a run's queues: the work queues
// given, their quarantines, the delay cascade and its unroutable queue.
// (Dead-letter queues are read at the end.)
func pending(t *testing.T, url string, queues []string) int {
	t.Helper()
	c, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("pending: %v", err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("pending: %v", err)
	}
	names := []string{topology.DelayUnroutable}
	for _, q := range queues {
		names = append(names, q, topology.QuarantineQueueName(q))
	}
	for i := range topology.DelayLevels {
		names = append(names, topology.DelayExchangeName(i))
	}
	n := 0
	for _, name := range names {
		q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
		if err != nil {
			t.Fatalf("pending: %s: %v", name, err)
		}
		n += q.Messages
	}
	return n
}

// readDeadLetters reads every dead-letter queue of the run but skip into
// the ledger and returns how many messages it read.
func readDeadLetters(t *testing.T, url string, p *plan, l *ledger, skip string) int {
	t.Helper()
	c, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("read the dead-letter queues: %v", err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("read the dead-letter queues: %v", err)
	}
	n := 0
	for _, q := range p.Queues {
		dlq := topology.DeadLetterQueueName(q)
		if dlq == skip {
			continue
		}
		for {
			d, ok, err := ch.Get(dlq, true)
			if err != nil {
				t.Fatalf("read %s: %v", dlq, err)
			}
			if !ok {
				break
			}
			n++
			env, err := rawmsg.Envelope(&d)
			if err != nil {
				t.Errorf("%s holds a message that is not a job (%v): %q", dlq, err, d.MessageId)
				continue
			}
			pk := parked{Attempt: max(env.Attempt, 1), Crashes: env.Crashes}
			if env.Failure != nil {
				pk.Class = env.Failure.Class
			}
			l.park(env.ID, pk)
		}
	}
	return n
}

func jitter(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

func first(lines []string, n int) string {
	if len(lines) > n {
		return strings.Join(lines[:n], "\n") + fmt.Sprintf("\n… and %d more", len(lines)-n)
	}
	return strings.Join(lines, "\n")
}
