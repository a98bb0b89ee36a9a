package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
)

// Relay publishes the outbox's rows to RabbitMQ and marks them sent. Run
// several, in as many processes, on one outbox: they share the work
// without sending a row twice in the normal case.
//
// A batch is one transaction: claim up to the batch size of due rows,
// oldest first, with SELECT … FOR UPDATE SKIP LOCKED (rows another relay
// holds are skipped, not waited for); publish them all, mandatory, with
// their confirms outstanding at once; wait for every confirm; mark the
// confirmed rows sent and the failed ones with their error, attempt count
// and next retry time; commit. A relay that dies anywhere in a batch
// loses nothing: its transaction rolls back, its rows become unsent and
// unlocked again, and another relay (or itself, restarted) sends them —
// the ones the broker already had for the second time, with the same job
// id, which an idempotent consumer (an inbox keyed by job id) drops.
//
// Rows with an ordering key (OrderingKey) are claimed only while they are
// the oldest unsent row of their key, so a key's rows are published one
// at a time, each after the previous one is confirmed and marked, and two
// relays never hold two rows of one key. A failed row holds back its
// key's later rows until it is sent.
//
// Rows the broker refuses (no route: the mandatory publish came back;
// nack; missing exchange) or that could not be published (lost
// connection, batch timeout) are tried again after a backoff that doubles
// with each failure (WithRetryBackoff), without holding back the others.
type Relay struct {
	pool   *pgxpool.Pool
	conn   *broker.Conn
	sender *broker.Sender
	o      options
}

// NewRelay returns a relay of the outbox in pool's database (the first
// schema of its search_path holding warren_outbox), publishing on conn.
// It uses up to two of the pool's connections: one for its batches, one
// to LISTEN (see WithoutListen).
func NewRelay(pool *pgxpool.Pool, conn *broker.Conn, opts ...Option) (*Relay, error) {
	if pool == nil || conn == nil {
		return nil, errors.New("outbox: NewRelay needs a database pool and a broker connection")
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	sender, err := broker.NewSender(conn, broker.WithAppID(o.appID), broker.WithPublisherLogger(o.log))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return &Relay{pool: pool, conn: conn, sender: sender, o: o}, nil
}

// Run relays until ctx ends, then returns nil; it returns an error early
// only when the broker connection is closed for good. Database and broker
// errors in a batch are logged and the batch tried again after the poll
// interval.
//
// Shutdown order: when ctx ends, the batch in progress finishes (within
// the batch timeout), the listener stops and is waited for, and the
// relay's channel is closed. Run once.
func (r *Relay) Run(ctx context.Context) error {
	log := r.o.log.With().Str(logfield.Component, "outbox").Logger()
	log.Info().Int("batch", r.o.batch).Dur("poll", r.o.poll).Bool("listen", r.o.listen).Msg("outbox: relay running")

	// One pending wake-up is enough: the next batch reads every due row.
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	listenCtx, stopListen := context.WithCancel(ctx)
	if r.o.listen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.listen(listenCtx, wake)
		}()
	}
	defer func() {
		stopListen()
		wg.Wait()
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.sender.Close(closeCtx)
		log.Info().Msg("outbox: relay stopped")
	}()

	poll := time.NewTimer(0)
	defer poll.Stop()
	var nextStats, nextCleanup time.Time
	for {
		if r.conn.State() == broker.Closed {
			return fmt.Errorf("outbox: relay: the broker connection is closed: %w", r.conn.Err())
		}
		full := false
		res, err := r.relayBatch(ctx)
		if err != nil {
			log.Warn().Err(err).Dur(logfield.RetryIn, r.o.poll).Msg("outbox: batch failed; trying again")
		} else {
			full = res.claimed == r.o.batch
		}
		now := time.Now()
		if r.o.observer != nil && !now.Before(nextStats) {
			nextStats = now.Add(r.o.statsEvery)
			r.readStats(ctx, log)
		}
		if r.o.retention > 0 && !now.Before(nextCleanup) {
			nextCleanup = now.Add(r.o.cleanup)
			r.cleanup(ctx, log)
		}
		if ctx.Err() != nil {
			return nil
		}
		if full {
			continue // more rows are due: no wait
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
		poll.Reset(r.o.poll)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		}
	}
}

func (r *Relay) readStats(ctx context.Context, log zerolog.Logger) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.batchTimeout)
	defer cancel()
	s, err := ReadStats(sctx, r.pool)
	if err != nil {
		log.Warn().Err(err).Msg("outbox: read the backlog")
		return
	}
	r.o.observer.OutboxStats(s)
}

func (r *Relay) cleanup(ctx context.Context, log zerolog.Logger) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.batchTimeout)
	defer cancel()
	n, err := DeleteSent(cctx, r.pool, r.o.retention)
	if err != nil {
		log.Warn().Err(err).Msg("outbox: delete sent rows past the retention")
	}
	if n > 0 {
		log.Info().Int64("deleted", n).Dur("retention", r.o.retention).Msg("outbox: deleted sent rows past the retention")
		if r.o.observer != nil {
			r.o.observer.OutboxDeleted(n)
		}
	}
}

// listen wakes the relay on every notification of a commit that wrote
// rows, until ctx ends; it listens again after losing its connection.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	for {
		err := r.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		r.o.log.Warn().Err(err).Dur(logfield.RetryIn, r.o.poll).Msg("outbox: LISTEN failed; polling meanwhile")
		t := time.NewTimer(r.o.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	pc, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection that listens is not given back to the pool: closed
	// here, it stops listening.
	c := pc.Hijack()
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, "LISTEN warren_outbox"); err != nil {
		return err
	}
	notify(wake) // rows committed while nobody listened
	for {
		if _, err := c.WaitForNotification(ctx); err != nil {
			return err
		}
		notify(wake)
	}
}

func notify(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// claimed is a row a batch holds.
type claimed struct {
	id            int64
	exchange, key string
	msg           broker.Message
}

// batchResult is what one batch did.
type batchResult struct {
	claimed, sent, failed int
}

// claimSQL claims due rows: unsent, past their retry time, and for a row
// with an ordering key, the oldest unsent row of its key. SKIP LOCKED
// leaves the rows other relays hold; a key's oldest row held by another
// relay is skipped, and its later rows are not the oldest, so no relay
// takes them.
const claimSQL = `SELECT o.id, o.job_id, o.job_type, o.exchange, o.routing_key, o.priority, o.correlation_id, o.reply_to,
		o.job_timestamp, o.headers::text, o.body
	FROM warren_outbox o
	WHERE o.sent_at IS NULL
		AND (o.retry_at IS NULL OR o.retry_at <= clock_timestamp())
		AND (o.ordering_key IS NULL OR o.id = (
			SELECT min(p.id) FROM warren_outbox p WHERE p.ordering_key = o.ordering_key AND p.sent_at IS NULL))
	ORDER BY o.id
	LIMIT $1
	FOR UPDATE OF o SKIP LOCKED`

// relayBatch runs one batch in its own context: ctx ending does not cut
// it short, the batch timeout does.
func (r *Relay) relayBatch(ctx context.Context) (res batchResult, err error) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.batchTimeout)
	defer cancel()
	tx, err := r.pool.Begin(bctx)
	if err != nil {
		return res, fmt.Errorf("outbox: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(bctx))
		}
	}()
	rows, err := r.claim(bctx, tx)
	if err != nil {
		return res, err
	}
	res.claimed = len(rows)
	if len(rows) == 0 {
		return res, tx.Commit(bctx)
	}
	r.hook("claimed", len(rows))
	errs := r.publish(bctx, rows)
	r.hook("confirmed", len(rows))

	var sentIDs, failedIDs []int64
	var failedErrs []string
	for i, row := range rows {
		if errs[i] == nil {
			sentIDs = append(sentIDs, row.id)
			r.o.log.Debug().Str(logfield.JobID, row.msg.MessageID).Str(logfield.JobType, row.msg.Type).
				Str(logfield.Exchange, row.exchange).Str(logfield.RoutingKey, row.key).Msg("outbox: sent")
			continue
		}
		failedIDs = append(failedIDs, row.id)
		failedErrs = append(failedErrs, errs[i].Error())
		r.o.log.Warn().Err(errs[i]).Str(logfield.JobID, row.msg.MessageID).Str(logfield.JobType, row.msg.Type).
			Str(logfield.Exchange, row.exchange).Str(logfield.RoutingKey, row.key).Msg("outbox: publish failed; will retry")
	}
	var delays []time.Duration
	if len(sentIDs) > 0 {
		dr, err := tx.Query(bctx, `UPDATE warren_outbox o
			SET sent_at = clock_timestamp(), attempts = o.attempts + 1, retry_at = NULL
			WHERE o.id = ANY($1)
			RETURNING extract(epoch FROM o.sent_at - o.created_at)::float8`, sentIDs)
		if err != nil {
			return res, fmt.Errorf("outbox: mark sent: %w", err)
		}
		secs, err := pgx.CollectRows(dr, pgx.RowTo[float64])
		if err != nil {
			return res, fmt.Errorf("outbox: mark sent: %w", err)
		}
		delays = make([]time.Duration, len(secs))
		for i, s := range secs {
			delays[i] = time.Duration(s * float64(time.Second))
		}
	}
	if len(failedIDs) > 0 {
		_, err := tx.Exec(bctx, `UPDATE warren_outbox o
			SET attempts = o.attempts + 1, last_error = f.err,
				retry_at = clock_timestamp() + make_interval(secs =>
					least($3::float8, $4::float8 * power(2, least(o.attempts, 40))) * (0.8 + 0.4 * random()))
			FROM unnest($1::bigint[], $2::text[]) AS f(id, err)
			WHERE o.id = f.id`, failedIDs, failedErrs, r.o.retryMax.Seconds(), r.o.retryMin.Seconds())
		if err != nil {
			return res, fmt.Errorf("outbox: mark failed: %w", err)
		}
	}
	r.hook("marked", len(rows))
	if err := tx.Commit(bctx); err != nil {
		return res, fmt.Errorf("outbox: commit: %w", err)
	}
	res.sent, res.failed = len(sentIDs), len(failedIDs)
	if r.o.observer != nil {
		r.o.observer.OutboxBatch(res.sent, res.failed, delays)
	}
	return res, nil
}

// claim locks a batch of due rows in tx and reads their messages.
func (r *Relay) claim(ctx context.Context, tx pgx.Tx) ([]claimed, error) {
	q, err := tx.Query(ctx, claimSQL, r.o.batch)
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", tableErr(err))
	}
	rows, err := pgx.CollectRows(q, func(row pgx.CollectableRow) (claimed, error) {
		var c claimed
		var prio int16
		var headers *string
		m := &c.msg
		if err := row.Scan(&c.id, &m.MessageID, &m.Type, &c.exchange, &c.key, &prio, &m.CorrelationID, &m.ReplyTo,
			&m.Timestamp, &headers, &m.Body); err != nil {
			return c, err
		}
		m.Priority = uint8(prio)
		m.Timestamp = m.Timestamp.UTC()
		m.ContentType = broker.ContentType
		m.DeliveryMode = 2 // persistent
		if headers != nil {
			if err := m.Headers.UnmarshalJSON([]byte(*headers)); err != nil {
				return c, fmt.Errorf("row %d: headers: %w", c.id, err)
			}
		}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", tableErr(err))
	}
	return rows, nil
}

// publish sends rows, all with their confirms outstanding, and returns
// each row's outcome (nil: confirmed).
func (r *Relay) publish(ctx context.Context, rows []claimed) []error {
	errs := make([]error, len(rows))
	confs := make([]*broker.Confirmation, len(rows))
	for i := range rows {
		env, err := rows[i].msg.Envelope()
		if err != nil {
			errs[i] = fmt.Errorf("outbox: row %d: %w", rows[i].id, err)
			continue
		}
		confs[i], errs[i] = r.sender.Send(ctx, broker.KindJob, env, rows[i].exchange, rows[i].key)
		r.hook("sent", i+1)
	}
	for i, c := range confs {
		if c != nil {
			errs[i] = c.Wait(ctx)
		}
	}
	return errs
}

func (r *Relay) hook(stage string, n int) {
	if r.o.hook != nil {
		r.o.hook(stage, n)
	}
}
