package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// MaxIDLen is the longest saga id.
const MaxIDLen = 200

// Coordinator runs sagas: it consumes the replies to their commands from
// its reply queue, advances or compensates each saga in its database, and
// times out the steps that get no reply. It is a daemon.Service. Any number
// of coordinators of the same sagas may run at once, on one database and one
// reply queue: a saga's row is locked while a reply or a timeout changes it.
type Coordinator struct {
	db    *pgxpool.Pool
	conn  *broker.Conn
	topo  *topology.Topology
	o     options
	log   zerolog.Logger
	pool  *worker.Pool
	relay *outbox.Relay

	mu   sync.RWMutex
	defs map[string]Def

	ran atomic.Bool
}

// NewCoordinator returns a coordinator of the sagas in db (its tables in the
// first schema of the search_path, created by Migrate), consuming the reply
// queue of WithReplyQueue on conn and routing commands by topo. Register
// the definitions before Run.
func NewCoordinator(db *pgxpool.Pool, conn *broker.Conn, topo *topology.Topology, opts ...Option) (*Coordinator, error) {
	if db == nil || conn == nil || topo == nil {
		return nil, errors.New("saga: NewCoordinator needs a database pool, a broker connection and a topology")
	}
	o := options{relay: true, timeoutInterval: DefaultTimeoutInterval, log: zerolog.Nop()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.replyQueue == "" {
		return nil, errors.New("saga: no reply queue: pass WithReplyQueue(name), naming a durable queue of the topology")
	}
	if _, ok := topo.Queue(o.replyQueue); !ok {
		return nil, fmt.Errorf("saga: reply queue %q is not in the topology: declare it under queues: (e.g. %s: {type: quorum}) and apply the topology", o.replyQueue, o.replyQueue)
	}
	c := &Coordinator{db: db, conn: conn, topo: topo, o: o, log: o.log, defs: map[string]Def{}}
	pool, err := worker.NewPool(conn, topo, worker.HandlerFunc(c.handleReply),
		worker.WithQueue(o.replyQueue, o.poolOpts...), worker.WithLogger(o.log))
	if err != nil {
		return nil, fmt.Errorf("saga: the reply queue's consumer: %w", err)
	}
	c.pool = pool
	if o.relay {
		r, err := outbox.NewRelay(db, conn, append([]outbox.Option{outbox.WithLogger(o.log)}, o.relayOpts...)...)
		if err != nil {
			return nil, fmt.Errorf("saga: the outbox relay: %w", err)
		}
		c.relay = r
	}
	return c, nil
}

// Register adds saga definitions; a name registered twice is an error.
func (c *Coordinator) Register(defs ...Def) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range defs {
		if d == nil {
			return errors.New("saga: Register: nil definition")
		}
		if prev, ok := c.defs[d.Name()]; ok && prev != d {
			return fmt.Errorf("saga: Register: a definition named %q is registered already", d.Name())
		}
		c.defs[d.Name()] = d
	}
	return nil
}

func (c *Coordinator) def(name string) Def {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.defs[name]
}

func (c *Coordinator) names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	names := make([]string, 0, len(c.defs))
	for n := range c.defs {
		names = append(names, n)
	}
	return names
}

// ReplyQueue returns the queue the coordinator's commands reply to.
func (c *Coordinator) ReplyQueue() string { return c.o.replyQueue }

// Start starts a saga of def with id and its initial state in tx, the
// caller's transaction: it inserts the saga and writes its first command
// into the outbox, so the saga starts if and only if tx commits. An id in
// use is an error wrapping ErrExists, and leaves tx usable.
func Start[S any](ctx context.Context, tx pgx.Tx, c *Coordinator, def *Definition[S], id string, state S) error {
	if def == nil {
		return errors.New("saga: Start: nil definition")
	}
	if c.def(def.name) != Def(def) {
		return fmt.Errorf("%w: %q", ErrNotRegistered, def.Name())
	}
	if id == "" || len(id) > MaxIDLen {
		return fmt.Errorf("saga: start %s: the id must be 1 to %d bytes", def.name, MaxIDLen)
	}
	b, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("saga: start %s %s: encode the state: %w", def.name, id, err)
	}
	job, err := def.command(ctx, b, 0, false)
	if err != nil {
		return fmt.Errorf("saga: start %s %s: step %q: build the command: %w", def.name, id, def.steps[0].Name, err)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO warren_saga (id, name, status, step, state) VALUES ($1, $2, $3, 0, $4)
		ON CONFLICT (id) DO NOTHING`, id, def.name, string(Running), b)
	if err != nil {
		return fmt.Errorf("saga: start %s %s: %w", def.name, id, noTable(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s", ErrExists, id)
	}
	in := &instance{id: id, name: def.name, status: Running, state: b, def: def}
	if err := c.send(ctx, tx, in, 0, false, job); err != nil {
		return fmt.Errorf("saga: start %s %s: %w", def.name, id, err)
	}
	return c.save(ctx, tx, in)
}

// StartTx is Start in a transaction of its own.
func StartTx[S any](ctx context.Context, c *Coordinator, def *Definition[S], id string, state S) error {
	return pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error { return Start(ctx, tx, c, def, id, state) })
}

// instance is a saga's row, locked in a transaction.
type instance struct {
	id, name  string
	status    Status
	step      int
	state     []byte
	lastError *string
	deadline  time.Duration // of the pending command; 0: none
	def       Def
}

// send writes step i's command (or compensation) into the outbox in tx and
// records it in the saga's steps; the saga's row is saved by the caller.
func (c *Coordinator) send(ctx context.Context, tx pgx.Tx, in *instance, i int, compensation bool, job broker.Job) error {
	id, err := broker.NewJobID()
	if err != nil {
		return err
	}
	job.ID, job.ReplyTo, job.CorrelationID = id, c.o.replyQueue, id
	if err := outbox.Publish(ctx, tx, job, outbox.Router(c.topo)); err != nil {
		return fmt.Errorf("step %q: %w", in.def.stepName(i), err)
	}
	kind := "command"
	if compensation {
		kind = "compensation"
	}
	if _, err := tx.Exec(ctx, `INSERT INTO warren_saga_steps (saga_id, seq, step, kind, job_id, job_type)
		SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4, $5 FROM warren_saga_steps WHERE saga_id = $1`,
		in.id, in.def.stepName(i), kind, id, job.Type); err != nil {
		return fmt.Errorf("step %q: record the command: %w", in.def.stepName(i), err)
	}
	in.step, in.deadline = i, in.def.timeout(i)
	c.log.Debug().Str(logfield.Saga, in.name).Str(logfield.SagaID, in.id).Str(logfield.Step, in.def.stepName(i)).
		Str(logfield.JobID, id).Str(logfield.JobType, job.Type).Msg("saga: " + kind + " written")
	return nil
}

// save writes the saga's row.
func (c *Coordinator) save(ctx context.Context, tx pgx.Tx, in *instance) error {
	_, err := tx.Exec(ctx, `UPDATE warren_saga SET status = $2, step = $3, state = $4,
		deadline = CASE WHEN $5::bigint > 0 AND $2 IN ('running', 'compensating') THEN now() + $5::bigint * interval '1 microsecond' END,
		last_error = coalesce($6, last_error), version = version + 1, updated_at = now()
		WHERE id = $1`, in.id, string(in.status), in.step, in.state, in.deadline.Microseconds(), in.lastError)
	if err != nil {
		return fmt.Errorf("saga %s %s: save: %w", in.name, in.id, err)
	}
	return nil
}

// lock reads and locks the saga's row.
func (c *Coordinator) lock(ctx context.Context, tx pgx.Tx, id string) (*instance, error) {
	in := &instance{id: id}
	var status string
	err := tx.QueryRow(ctx, `SELECT name, status, step, state, last_error FROM warren_saga WHERE id = $1 FOR UPDATE`, id).
		Scan(&in.name, &status, &in.step, &in.state, &in.lastError)
	if err != nil {
		return nil, err
	}
	in.status = Status(status)
	in.def = c.def(in.name)
	if in.def == nil {
		return nil, fmt.Errorf("saga %s %s: no definition named %q registered with this coordinator: Register it", in.name, id, in.name)
	}
	if in.step < 0 || in.step >= in.def.numSteps() {
		return nil, fmt.Errorf("saga %s %s: step %d is not in its definition (%d steps): was the definition changed?", in.name, id, in.step, in.def.numSteps())
	}
	return in, nil
}

// setStep settles the pending step row of job id.
func setStep(ctx context.Context, tx pgx.Tx, jobID, status, errText string) error {
	var e *string
	if errText != "" {
		e = &errText
	}
	_, err := tx.Exec(ctx, `UPDATE warren_saga_steps SET status = $2, error = $3, done_at = now() WHERE job_id = $1`, jobID, status, e)
	return err
}

// handleReply applies one reply from the reply queue, in one transaction.
func (c *Coordinator) handleReply(ctx context.Context, job *worker.Job) error {
	env := job.Envelope
	corr := env.CorrelationID
	if !strings.HasSuffix(job.Type, broker.ReplyTypeSuffix) || corr == "" {
		return worker.Permanent(fmt.Errorf("saga: job %s (type %q) in the reply queue %q is not a reply; send only replies there", job.ID, job.Type, job.Queue))
	}
	log := c.log.With().Str(logfield.CorrelationID, corr).Str(logfield.JobType, job.Type).Logger()
	err := pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error {
		if err := c.applyReply(ctx, tx, job, log); err != nil {
			return err
		}
		c.hook("applied")
		return nil
	})
	if err == nil {
		c.hook("committed")
	}
	return err
}

func (c *Coordinator) hook(stage string) {
	if c.o.hook != nil {
		c.o.hook(stage)
	}
}

// applyReply applies a reply in tx.
func (c *Coordinator) applyReply(ctx context.Context, tx pgx.Tx, job *worker.Job, log zerolog.Logger) error {
	env := job.Envelope
	corr := env.CorrelationID
	var sagaID string
	err := tx.QueryRow(ctx, `SELECT saga_id FROM warren_saga_steps WHERE job_id = $1`, corr).Scan(&sagaID)
	if errors.Is(err, pgx.ErrNoRows) {
		log.Info().Msg("saga: ignored a reply to no saga's command")
		return nil
	}
	if err != nil {
		return noTable(err)
	}
	in, err := c.lock(ctx, tx, sagaID)
	if err != nil {
		return err
	}
	// Read after the lock: what the transaction before ours committed.
	var kind, status string
	if err := tx.QueryRow(ctx, `SELECT kind, status FROM warren_saga_steps WHERE job_id = $1`, corr).Scan(&kind, &status); err != nil {
		return err
	}
	log = log.With().Str(logfield.Saga, in.name).Str(logfield.SagaID, in.id).Logger()
	if status != "pending" {
		log.Info().Str(logfield.Status, status).Msg("saga: ignored a reply to a settled command (a duplicate, or late)")
		return nil
	}
	rerr := env.RemoteErr()
	if kind == "compensation" {
		if rerr != nil {
			if err := setStep(ctx, tx, corr, "failed", rerr.Message); err != nil {
				return err
			}
			c.fail(in, fmt.Sprintf("compensation of step %q failed: %s", in.def.stepName(in.step), rerr.Message))
			return c.save(ctx, tx, in)
		}
		if err := setStep(ctx, tx, corr, "succeeded", ""); err != nil {
			return err
		}
		if err := c.compensate(ctx, tx, in, in.step); err != nil {
			return err
		}
		return c.save(ctx, tx, in)
	}
	if rerr != nil {
		msg := rerr.Message
		if err := setStep(ctx, tx, corr, "failed", msg); err != nil {
			return err
		}
		if err := c.startCompensation(ctx, tx, in, in.step, fmt.Sprintf("step %q failed: %s", in.def.stepName(in.step), msg)); err != nil {
			return err
		}
		return c.save(ctx, tx, in)
	}
	state, err := in.def.onReply(ctx, in.state, in.step, Reply{CorrelationID: corr, Step: in.def.stepName(in.step), job: job})
	if err != nil {
		msg := "OnReply: " + err.Error()
		if err := setStep(ctx, tx, corr, "failed", msg); err != nil {
			return err
		}
		if err := c.startCompensation(ctx, tx, in, in.step, fmt.Sprintf("step %q failed: %s", in.def.stepName(in.step), msg)); err != nil {
			return err
		}
		return c.save(ctx, tx, in)
	}
	in.state = state
	if err := setStep(ctx, tx, corr, "succeeded", ""); err != nil {
		return err
	}
	next := in.step + 1
	if next == in.def.numSteps() {
		in.status, in.deadline = Completed, 0
		log.Info().Msg("saga: completed")
		return c.save(ctx, tx, in)
	}
	cmd, err := in.def.command(ctx, in.state, next, false)
	if err != nil {
		// The step never ran: undo the ones before it.
		if err := c.startCompensation(ctx, tx, in, next, fmt.Sprintf("step %q: build the command: %v", in.def.stepName(next), err)); err != nil {
			return err
		}
		return c.save(ctx, tx, in)
	}
	if err := c.send(ctx, tx, in, next, false, cmd); err != nil {
		return err
	}
	return c.save(ctx, tx, in)
}

// startCompensation undoes the steps before step, which failed or timed
// out, for reason.
func (c *Coordinator) startCompensation(ctx context.Context, tx pgx.Tx, in *instance, step int, reason string) error {
	in.lastError = &reason
	c.log.Info().Str(logfield.Saga, in.name).Str(logfield.SagaID, in.id).Str(logfield.Reason, reason).Msg("saga: compensating")
	return c.compensate(ctx, tx, in, step)
}

// compensate sends the compensation of the newest succeeded step before
// step that has one, or ends the saga compensated.
func (c *Coordinator) compensate(ctx context.Context, tx pgx.Tx, in *instance, step int) error {
	for i := step - 1; i >= 0; i-- {
		if !in.def.hasCompensation(i) {
			continue
		}
		in.status = Compensating
		cctx := ctx
		if in.lastError != nil {
			cctx = context.WithValue(ctx, causeKey{}, *in.lastError)
		}
		job, err := in.def.command(cctx, in.state, i, true)
		if err != nil {
			in.step = i
			c.fail(in, fmt.Sprintf("step %q: build the compensation: %v", in.def.stepName(i), err))
			return nil
		}
		return c.send(ctx, tx, in, i, true, job)
	}
	in.status, in.deadline = Compensated, 0
	c.log.Info().Str(logfield.Saga, in.name).Str(logfield.SagaID, in.id).Msg("saga: compensated")
	return nil
}

// fail leaves the saga failed, for an operator.
func (c *Coordinator) fail(in *instance, reason string) {
	in.status, in.deadline, in.lastError = Failed, 0, &reason
	c.log.Error().Str(logfield.Saga, in.name).Str(logfield.SagaID, in.id).Str(logfield.Reason, reason).
		Msg("saga: failed: a compensation did not succeed; an operator must finish the saga (warren saga show)")
}

// timeouts claims sagas past their step's deadline, a batch in one
// transaction, and fails their pending step.
func (c *Coordinator) timeouts(ctx context.Context) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error {
		// Only the sagas this coordinator knows: services may share a
		// schema, each with its own sagas.
		rows, err := tx.Query(ctx, `SELECT id FROM warren_saga
			WHERE status IN ('running', 'compensating') AND deadline <= now() AND name = ANY($1)
			ORDER BY deadline LIMIT 100 FOR UPDATE SKIP LOCKED`, c.names())
		if err != nil {
			return noTable(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, id := range ids {
			in, err := c.lock(ctx, tx, id) // locked already: reads the row
			if err != nil {
				return err
			}
			var jobID string
			if err := tx.QueryRow(ctx, `SELECT job_id FROM warren_saga_steps WHERE saga_id = $1 AND status = 'pending'
				ORDER BY seq DESC LIMIT 1`, id).Scan(&jobID); err != nil {
				return fmt.Errorf("saga %s %s: its pending command: %w", in.name, id, err)
			}
			d := in.def.timeout(in.step)
			msg := fmt.Sprintf("no reply within %s", d)
			if err := setStep(ctx, tx, jobID, "timed_out", msg); err != nil {
				return err
			}
			if in.status == Compensating {
				c.fail(in, fmt.Sprintf("compensation of step %q timed out: %s", in.def.stepName(in.step), msg))
			} else if err := c.startCompensation(ctx, tx, in, in.step, fmt.Sprintf("step %q timed out: %s", in.def.stepName(in.step), msg)); err != nil {
				return err
			}
			if err := c.save(ctx, tx, in); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// Run consumes replies, times out steps and (unless WithoutRelay) relays
// the outbox until ctx ends, then returns nil; it returns an error early
// when one of them fails for good (the broker connection closed, the
// tables missing). Shutdown: when ctx ends, the replies being applied
// finish and the others are left in the queue, the timeout loop stops
// between batches, the relay finishes its batch; Run waits for all three.
// Run once.
func (c *Coordinator) Run(ctx context.Context) error {
	if !c.ran.CompareAndSwap(false, true) {
		return errors.New("saga: Run called twice")
	}
	var exists bool
	if err := c.db.QueryRow(ctx, `SELECT to_regclass('warren_saga') IS NOT NULL AND to_regclass('warren_saga_steps') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("saga: %w", err)
	}
	if !exists {
		return ErrNoTable
	}
	c.log.Info().Str(logfield.Queue, c.o.replyQueue).Msg("saga: coordinator started")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3) // one per goroutine: none blocks
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errs <- fmt.Errorf("saga: %s: %w", name, err)
				cancel()
			}
		}()
	}
	run("reply queue", c.pool.Run)
	run("timeouts", c.watchTimeouts)
	if c.relay != nil {
		run("relay", c.relay.Run)
	}
	wg.Wait()
	close(errs)
	c.log.Info().Msg("saga: coordinator stopped")
	return <-errs
}

func (c *Coordinator) watchTimeouts(ctx context.Context) error {
	t := time.NewTicker(c.o.timeoutInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for {
			n, err := c.timeouts(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				c.log.Warn().Err(err).Msg("saga: timeouts: will try again")
				break
			}
			if n > 0 {
				c.log.Info().Msgf("saga: %d steps timed out", n)
			}
			if n < 100 {
				break
			}
		}
	}
}

// Ready returns nil while the coordinator consumes its reply queue: what a
// readiness probe asks.
func (c *Coordinator) Ready() error { return c.pool.Ready() }

func noTable(err error) error {
	if err != nil && strings.Contains(err.Error(), "warren_saga") && strings.Contains(err.Error(), "does not exist") {
		return fmt.Errorf("%w (%v)", ErrNoTable, err)
	}
	return err
}
