//go:build torture

package torture_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/inbox/redisinbox"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// The effects run's children: the test binary run again with
// childRoleEnv set to roleRelay or roleBilling, with the worker child's
// variables and these.
const (
	childRoleEnv   = "WARREN_TORTURE_CHILD_ROLE"
	childDBEnv     = "WARREN_TORTURE_CHILD_DATABASE_URL" // with search_path and application_name
	childQueueEnv  = "WARREN_TORTURE_CHILD_QUEUE"        // the queue a consumer consumes
	childRedisEnv  = "WARREN_TORTURE_CHILD_REDIS_URL"
	childPrefixEnv = "WARREN_TORTURE_CHILD_REDIS_PREFIX"

	roleRelay   = "relay"
	roleBilling = "billing" // charges each trip through a PostgreSQL inbox
	roleNotify  = "notify"  // notifies each trip's passenger through a Redis inbox
)

// notifyLease is the notify consumers' Redis inbox lease: above their
// handler timeout, short enough for a job whose worker was killed to run
// again within the run.
const (
	notifyLease   = 5 * time.Second
	notifyTimeout = 3 * time.Second
)

// The behaviours of an effects job (effectPayload.B). Each ends with one
// effect, a row in charges.
const (
	effectOK      = "ok"               // writes the effect
	effectSlow    = "slow"             // sleeps Ms, then writes the effect
	effectFailTx  = "fail-after-write" // fails its first attempt: billing after writing the effect (which must roll back), notify before
	effectDieLate = "die-after-commit" // writes the effect; once the inbox committed it, the worker SIGKILLs itself before the ack
)

// effectPayload is an effects job's body.
type effectPayload struct {
	Trip int64  `msgpack:"trip"`
	B    string `msgpack:"b"`
	Ms   int    `msgpack:"ms,omitempty"`
}

// The consumers' inbox names.
const (
	inboxConsumer  = "torture.billing"
	notifyConsumer = "torture.notify"
)

// childMain runs the child the environment asks for.
func childMain() int {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop() // the parent closed the pipe, or is gone
	}()
	var err error
	switch role := os.Getenv(childRoleEnv); role {
	case "":
		return workerChild(ctx)
	case roleRelay:
		err = relayChild(ctx)
	case roleBilling, roleNotify:
		err = consumerChild(ctx, role)
	case roleChain:
		err = chainChild(ctx)
	case roleSagaStep:
		err = sagaStepChild(ctx)
	case roleCoordinator:
		err = coordinatorChild(ctx)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "torture %s: %v\n", os.Getenv(childRoleEnv), err)
		return 1
	}
	return 0
}

// child is what a worker child of the effects runs connects to, from its
// environment: the topology, the database, the broker.
type child struct {
	log  zerolog.Logger
	name string // the child's connection name, written with its effects
	topo *topology.Topology
	db   *pgxpool.Pool
	conn *broker.Conn
}

// openChild connects a child; close releases what it opened.
func openChild(ctx context.Context) (c *child, close func(), err error) {
	c = &child{log: childLogger(), name: os.Getenv(childNameEnv)}
	if c.topo, err = topology.Parse("torture.yaml", []byte(os.Getenv(childTopologyEnv))); err != nil {
		return nil, nil, err
	}
	if c.db, err = pgxpool.New(ctx, os.Getenv(childDBEnv)); err != nil {
		return nil, nil, err
	}
	if c.conn, err = dialChild(ctx, c.log); err != nil {
		c.db.Close()
		return nil, nil, err
	}
	return c, func() { c.conn.Close(); c.db.Close() }, nil
}

// pgInbox returns the inbox of consumer in the child's database.
func (c *child) pgInbox(consumer string) (*inbox.Inbox, error) {
	store, err := pginbox.New(c.db)
	if err != nil {
		return nil, err
	}
	return inbox.New(store, consumer)
}

// run runs h on the child's queue until ctx ends.
func (c *child) run(ctx context.Context, h worker.Handler, handlerTimeout time.Duration) error {
	p, err := worker.NewPool(c.conn, c.topo, h,
		worker.WithLogger(c.log),
		worker.WithHandlerTimeout(handlerTimeout),
		worker.WithShutdownTimeout(10*time.Second),
		worker.WithQueue(os.Getenv(childQueueEnv), worker.Concurrency(4), worker.Prefetch(8)))
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// reporter writes the child's lines to stdout, each one write(2), so
// that a SIGKILL loses none that was written.
type reporter struct{ mu sync.Mutex }

func (r *reporter) report(format string, args ...any) {
	line := fmt.Sprintf(format+"\n", args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := os.Stdout.WriteString(line); err != nil {
		os.Exit(1) // the parent is gone
	}
}

// die reports what and SIGKILLs the process: no deferred call, no
// rollback, no channel close, as in a crash.
func (r *reporter) die(format string, args ...any) {
	r.report(format, args...)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func childLogger() zerolog.Logger {
	return zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}

// dialChild connects to the broker as the parent's supervisor named the
// child, reconnecting quickly after a closed connection.
func dialChild(ctx context.Context, log zerolog.Logger) (*broker.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return broker.Dial(dctx, []string{os.Getenv(childURLEnv)}, broker.WithName(os.Getenv(childNameEnv)),
		broker.WithHeartbeat(5*time.Second), broker.WithReconnectBackoff(100*time.Millisecond, 2*time.Second), broker.WithLogger(log))
}

// dieBeforeMark is the share of a relay's batches at which it SIGKILLs
// itself after every confirm came in and before it marks the rows sent:
// the worst moment, whose whole batch the next relay sends again.
const dieBeforeMark = 0.02

// relayChild runs an outbox relay until its stdin ends. It reports
//
//	batch SENT FAILED    a batch committed
//	die-before-mark      it is about to kill itself, its batch confirmed and not marked
func relayChild(ctx context.Context) error {
	var rep reporter
	log := childLogger()
	cfg, err := pgxpool.ParseConfig(os.Getenv(childDBEnv))
	if err != nil {
		return err
	}
	cfg.ConnConfig.Tracer = markTracer{rep: &rep}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := dialChild(ctx, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	r, err := outbox.NewRelay(pool, conn, outbox.WithLogger(log), outbox.WithBatchSize(1+rand.IntN(50)),
		outbox.WithPollInterval(500*time.Millisecond), outbox.WithRetryBackoff(100*time.Millisecond, time.Second),
		outbox.WithObserver(relayReport{&rep}))
	if err != nil {
		return err
	}
	if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// markTracer kills the relay at the statement that marks a batch sent,
// in dieBeforeMark of the batches.
type markTracer struct{ rep *reporter }

func (m markTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if strings.Contains(data.SQL, "SET sent_at") && rand.Float64() < dieBeforeMark {
		m.rep.die("die-before-mark")
	}
	return ctx
}

func (markTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

type relayReport struct{ rep *reporter }

func (r relayReport) OutboxBatch(sent, failed int, _ []time.Duration) {
	r.rep.report("batch %d %d", sent, failed)
}
func (relayReport) OutboxStats(outbox.Stats) {}
func (relayReport) OutboxDeleted(int64)      {}

type effectRanKey struct{}

// effects is the middleware, outside an inbox's, that reports what became
// of each job: "eff ID ATTEMPT" when its handler ran (markRan) and the
// inbox committed its effect, "skip ID" when the inbox skipped it; and
// that kills the process, once the effect committed and before the ack,
// for the jobs dies picks ("die ID").
func (r *reporter) effects(dies func(*worker.Job) bool) worker.Middleware {
	return func(next worker.Handler) worker.Handler {
		return worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
			ran := new(bool)
			if err := next.HandleJob(context.WithValue(ctx, effectRanKey{}, ran), job); err != nil {
				return err
			}
			if !*ran {
				r.report("skip %s", job.ID)
				return nil
			}
			r.report("eff %s %d", job.ID, job.Attempt)
			if dies(job) {
				r.die("die %s", job.ID)
			}
			return nil
		})
	}
}

// markRan tells the effects middleware that the handler wrote its effect.
func markRan(ctx context.Context) { *ctx.Value(effectRanKey{}).(*bool) = true }

// consumerChild consumes its queue through an inbox. A billing child's
// inbox is in PostgreSQL, and each job's effect is a row in charges
// written in the inbox's transaction; a notify child's inbox is in Redis,
// and each job's effect is a row in notices written on its own (as a
// service whose effect is not in its inbox's store). It reports
//
//	eff ID ATTEMPT   the job's effect and inbox record committed
//	skip ID          the inbox skipped a job processed before
//	die ID           it is about to kill itself, ID committed and not acked
func consumerChild(ctx context.Context, role string) error {
	var rep reporter
	c, closeChild, err := openChild(ctx)
	if err != nil {
		return err
	}
	defer closeChild()
	var ib *inbox.Inbox
	handlerTimeout := 10 * time.Second
	// write writes a job's effect.
	var write func(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	table := "charges"
	if role == roleBilling {
		if ib, err = c.pgInbox(inboxConsumer); err != nil {
			return err
		}
		write = func(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
			tx := pginbox.Tx(ctx)
			if tx == nil {
				return pgconn.CommandTag{}, worker.Permanent(errors.New("no inbox transaction in the handler's ctx"))
			}
			return tx.Exec(ctx, sql, args...)
		}
	} else {
		opt, err := redis.ParseURL(os.Getenv(childRedisEnv))
		if err != nil {
			return err
		}
		rc := redis.NewClient(opt)
		defer rc.Close()
		store, err := redisinbox.New(rc, redisinbox.WithPrefix(os.Getenv(childPrefixEnv)), redisinbox.WithLease(notifyLease))
		if err != nil {
			return err
		}
		if ib, err = inbox.New(store, notifyConsumer); err != nil {
			return err
		}
		write, table, handlerTimeout = c.db.Exec, "notices", notifyTimeout
	}
	// report runs outside the inbox: when the inbox returns nil, its
	// transaction has committed and the pool has not acked.
	report := rep.effects(func(job *worker.Job) bool {
		var p effectPayload
		return job.Decode(&p) == nil && p.B == effectDieLate
	})
	mux := worker.NewMux()
	mux.Use(report, ib.Middleware)
	mux.HandleFunc(effectJobType, func(ctx context.Context, job *worker.Job) error {
		var p effectPayload
		if err := job.Decode(&p); err != nil {
			return worker.Permanent(err)
		}
		if p.B == effectSlow {
			select {
			case <-time.After(time.Duration(p.Ms) * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		failFirst := p.B == effectFailTx && job.Attempt == 1
		if failFirst && role == roleNotify {
			// An effect outside the inbox's store is not rolled back.
			return errors.New("torture: failing before writing the effect, on purpose")
		}
		if _, err := write(ctx, "INSERT INTO "+table+" (job_id, trip_id, attempt, worker) VALUES ($1, $2, $3, $4)",
			job.ID, p.Trip, job.Attempt, c.name); err != nil {
			return err
		}
		if failFirst {
			return errors.New("torture: failing after writing the effect, on purpose (the inbox's rollback undoes it)")
		}
		markRan(ctx)
		return nil
	})
	return c.run(ctx, mux, handlerTimeout)
}
