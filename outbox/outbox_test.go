package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/outbox"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(brokertest.MainWithLeakCheck(m))
}

// fixture is an outbox in a schema of the test's own, a broker
// connection and a queue of the test's own.
type fixture struct {
	schema string
	pool   *pgxpool.Pool
	conn   *broker.Conn
	queue  string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{schema: pgtest.Schema(t)}
	f.pool = pgtest.Pool(t, f.schema)
	ctx := brokertest.Context(t, 30*time.Second)
	if _, err := outbox.Migrate(ctx, f.pool); err != nil {
		t.Fatal(err)
	}
	f.queue = brokertest.Queue(t, "jobs", nil)
	conn, err := broker.Dial(ctx, []string{brokertest.URL(t)}, broker.WithName(brokertest.ConnName(t, "relay")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	f.conn = conn
	return f
}

// publish writes one job per id, each in a transaction of its own, to the
// fixture's queue, with the ordering key of keys[i] when given.
func (f *fixture) publish(t testing.TB, ids []string, keys []string) {
	t.Helper()
	ctx := brokertest.Context(t, time.Minute)
	for i, id := range ids {
		opts := []outbox.PublishOption{outbox.To("", f.queue)}
		if keys != nil {
			opts = append(opts, outbox.OrderingKey(keys[i]))
		}
		err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
			return outbox.Publish(ctx, tx, broker.Job{ID: id, Type: "test.job", Payload: map[string]any{"n": i}}, opts...)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func newIDs(t testing.TB, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = brokertest.JobID(t)
	}
	return ids
}

// relay starts a relay on the fixture, stopped and waited for at cleanup
// (or by the returned func).
func (f *fixture) relay(t testing.TB, opts ...outbox.Option) (stop func()) {
	t.Helper()
	r, err := outbox.NewRelay(f.pool, f.conn, append([]outbox.Option{outbox.WithPollInterval(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitSent waits until the outbox has no unsent row.
func (f *fixture) waitSent(t testing.TB) {
	t.Helper()
	testkit.WaitFor(t, time.Minute, "every row sent", func() bool {
		s, err := outbox.ReadStats(context.Background(), f.pool)
		if err != nil {
			t.Fatal(err)
		}
		return s.Backlog == 0
	})
}

// drain reads the queue's messages until it has seen want of them and
// then the queue stays empty for quiet, or until a minute passes.
func drain(t *testing.T, queue string, want int, quiet time.Duration) []amqp.Delivery {
	t.Helper()
	ch := brokertest.Channel(t)
	if err := ch.Qos(500, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []amqp.Delivery
	deadline := time.After(time.Minute)
	for {
		wait := time.Minute
		if len(got) >= want {
			wait = quiet
		}
		select {
		case d := <-ds:
			got = append(got, d)
		case <-time.After(wait):
			return got
		case <-deadline:
			t.Fatalf("drain %s: %d messages in a minute, want %d", queue, len(got), want)
		}
	}
}

// counts counts the deliveries by message id.
func counts(ds []amqp.Delivery) map[string]int {
	c := map[string]int{}
	for _, d := range ds {
		c[d.MessageId]++
	}
	return c
}

func TestCommittedIsRelayedRolledBackIsNot(t *testing.T) {
	f := newFixture(t)
	ctx := brokertest.Context(t, time.Minute)
	kept, dropped := brokertest.JobID(t), brokertest.JobID(t)
	job := broker.Job{ID: kept, Type: "order.placed", Payload: map[string]any{"order": 42},
		Headers:  map[string]any{"tenant": "acme", "big": int64(1) << 40, "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		Priority: 3, CorrelationID: "corr-1"}
	if err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		return outbox.Publish(ctx, tx, job, outbox.To("", f.queue))
	}); err != nil {
		t.Fatal(err)
	}
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Publish(ctx, tx, broker.Job{ID: dropped, Type: "order.placed"}, outbox.To("", f.queue)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	f.relay(t)
	f.waitSent(t)

	ds := drain(t, f.queue, 1, 300*time.Millisecond)
	if len(ds) != 1 || ds[0].MessageId != kept {
		t.Fatalf("got %d messages %v, want only %s (the rolled-back %s must never be sent)", len(ds), counts(ds), kept, dropped)
	}
	d := ds[0]
	env, err := broker.Message{ContentType: d.ContentType, MessageID: d.MessageId, Type: d.Type, Priority: d.Priority,
		CorrelationID: d.CorrelationId, Timestamp: d.Timestamp, Headers: tableOf(d.Headers), Body: d.Body}.Envelope()
	if err != nil {
		t.Fatal(err)
	}
	var payload struct {
		Order int `msgpack:"order"`
	}
	if err := env.Decode(&payload); err != nil {
		t.Fatal(err)
	}
	if env.Type != "order.placed" || payload.Order != 42 || env.Priority != 3 || env.CorrelationID != "corr-1" ||
		env.Headers["tenant"] != "acme" || env.Headers["big"] != int64(1)<<40 || env.Traceparent != job.Headers["traceparent"] ||
		d.DeliveryMode != amqp.Persistent || d.AppId != "warren" {
		t.Errorf("the relayed job differs from the one written: %+v payload %+v delivery mode %d app %q", env, payload, d.DeliveryMode, d.AppId)
	}
	rows, err := outbox.List(ctx, f.pool, outbox.ListOptions{Sent: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].JobID != kept || rows[0].SentAt.IsZero() || rows[0].Attempts != 1 {
		t.Errorf("sent rows: %+v", rows)
	}
}

// tableOf converts amqp091-go's headers as the test reads them.
func tableOf(h amqp.Table) broker.Table {
	if h == nil {
		return nil
	}
	t := broker.Table{}
	for k, v := range h {
		t[k] = v
	}
	return t
}

func TestRelaysShareRowsWithoutDuplicates(t *testing.T) {
	f := newFixture(t)
	ids := newIDs(t, 1500)
	// Written while the relays run, in one transaction per 100 rows.
	for r := 0; r < 3; r++ {
		f.relay(t, outbox.WithBatchSize(50))
	}
	ctx := brokertest.Context(t, time.Minute)
	for start := 0; start < len(ids); start += 100 {
		if err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
			for _, id := range ids[start : start+100] {
				if err := outbox.Publish(ctx, tx, broker.Job{ID: id, Type: "test.job"}, outbox.To("", f.queue)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	f.waitSent(t)
	c := counts(drain(t, f.queue, len(ids), 500*time.Millisecond))
	for _, id := range ids {
		if c[id] != 1 {
			t.Errorf("job %s arrived %d times, want 1", id, c[id])
		}
		delete(c, id)
	}
	if len(c) > 0 {
		t.Errorf("unexpected jobs: %v", c)
	}
}

func TestOrderingKeyAcrossRelays(t *testing.T) {
	f := newFixture(t)
	const keys, perKey = 4, 40
	var ids, keyOf []string
	seq := map[string]int{}
	for i := 0; i < keys*perKey; i++ {
		k := fmt.Sprintf("order-%d", i%keys)
		ids = append(ids, fmt.Sprintf("%s-%03d-%s", k, seq[k], brokertest.JobID(t)))
		keyOf = append(keyOf, k)
		seq[k]++
	}
	f.publish(t, ids, keyOf)
	// One relay publishes slowly: without the order per key, the other
	// one would overtake it with later rows of the keys it holds.
	f.relay(t, outbox.WithBatchSize(10), outbox.WithHook(func(stage string, _ int) {
		if stage == "sent" {
			time.Sleep(2 * time.Millisecond)
		}
	}))
	f.relay(t, outbox.WithBatchSize(10))
	f.waitSent(t)
	ds := drain(t, f.queue, len(ids), 300*time.Millisecond)
	// Per key, the jobs arrive in the order of their rows: their ids sort
	// by sequence number.
	last := map[string]string{}
	for _, d := range ds {
		k := d.MessageId[:len("order-0")]
		if prev, ok := last[k]; ok && prev >= d.MessageId {
			t.Errorf("key %s: %s arrived after %s", k, d.MessageId, prev)
		}
		last[k] = d.MessageId
	}
	if c := counts(ds); len(c) != len(ids) || len(ds) != len(ids) {
		t.Errorf("%d deliveries of %d jobs, want %d of %d", len(ds), len(c), len(ids), len(ids))
	}
}

// A job the broker cannot route is retried with a backoff and holds back
// only the later jobs of its ordering key.
func TestUnroutableRetriedWithoutBlockingOthers(t *testing.T) {
	f := newFixture(t)
	ctx := brokertest.Context(t, time.Minute)
	missing := brokertest.Name(t, "missing")
	ids := newIDs(t, 4)
	write := func(id, queue, key string) {
		opts := []outbox.PublishOption{outbox.To("", queue)}
		if key != "" {
			opts = append(opts, outbox.OrderingKey(key))
		}
		if err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
			return outbox.Publish(ctx, tx, broker.Job{ID: id, Type: "test.job"}, opts...)
		}); err != nil {
			t.Fatal(err)
		}
	}
	write(ids[0], missing, "k") // unroutable: no queue of that name
	write(ids[1], f.queue, "k") // after it, same key: held back
	write(ids[2], f.queue, "")  // no key: sent
	write(ids[3], f.queue, "j") // another key: sent

	r, err := outbox.NewRelay(f.pool, f.conn, outbox.WithRetryBackoff(time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer r.CloseSender(context.Background())
	claimed, sent, failed, err := r.RelayBatch(ctx)
	if err != nil || claimed != 3 || sent != 2 || failed != 1 {
		t.Fatalf("batch: claimed %d, sent %d, failed %d, err %v; want 3, 2, 1, nil", claimed, sent, failed, err)
	}
	// The failed row waits for its retry; its key's next row waits for it.
	if claimed, _, _, err := r.RelayBatch(ctx); err != nil || claimed != 0 {
		t.Fatalf("second batch claimed %d (err %v), want 0", claimed, err)
	}
	rows, err := outbox.List(ctx, f.pool, outbox.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].JobID != ids[0] || rows[1].JobID != ids[1] {
		t.Fatalf("unsent rows: %+v, want %s and %s", rows, ids[0], ids[1])
	}
	if !strings.Contains(rows[0].LastError, "unroutable") ||
		rows[0].Attempts != 1 || time.Until(rows[0].RetryAt) < 30*time.Minute {
		t.Errorf("failed row: %+v, want its error, 1 attempt, and a retry in about an hour", rows[0])
	}
	s, err := outbox.ReadStats(ctx, f.pool)
	if err != nil {
		t.Fatal(err)
	}
	if s.Backlog != 2 || s.Failing != 1 || s.Oldest.IsZero() || s.Lag <= 0 {
		t.Errorf("stats: %+v", s)
	}
	c := counts(drain(t, f.queue, 2, 300*time.Millisecond))
	if len(c) != 2 || c[ids[2]] != 1 || c[ids[3]] != 1 {
		t.Errorf("delivered %v, want %s and %s once", c, ids[2], ids[3])
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	schema := pgtest.Schema(t)
	pool := pgtest.Pool(t, schema)
	ctx := brokertest.Context(t, time.Minute)
	// At once from several processes' worth of connections: one applies.
	var wg sync.WaitGroup
	applied := make([][]int, 4)
	errs := make([]error, 4)
	for i := range applied {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = outbox.Migrate(ctx, pool)
		}()
	}
	wg.Wait()
	total := 0
	for i := range applied {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		total += len(applied[i])
	}
	all, err := outbox.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if total != len(all) {
		t.Errorf("concurrent migrations applied %d versions in all, want %d", total, len(all))
	}
	again, err := outbox.Migrate(ctx, pool)
	if err != nil || len(again) != 0 {
		t.Errorf("Migrate again: applied %v, err %v; want nothing", again, err)
	}
}

func TestPublishErrors(t *testing.T) {
	schema := pgtest.Schema(t)
	pool := pgtest.Pool(t, schema)
	ctx := brokertest.Context(t, time.Minute)
	for _, tc := range []struct {
		name string
		opts []outbox.PublishOption
		want error
	}{
		{"no route", nil, outbox.ErrNoRoute},
		{"router without the type", []outbox.PublishOption{outbox.Router(routes{})}, outbox.ErrNoRoute},
		{"no table", []outbox.PublishOption{outbox.To("", "q")}, outbox.ErrNoTable},
		{"bad job", []outbox.PublishOption{outbox.To("", "q"), outbox.OrderingKey("k")}, broker.ErrInvalidJob},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := broker.Job{Type: "test.job"}
			if tc.want == broker.ErrInvalidJob {
				job.Type = ""
			}
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return outbox.Publish(ctx, tx, job, tc.opts...) })
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

type routes map[string][2]string

func (r routes) Route(jobType string) (string, string, bool) {
	x, ok := r[jobType]
	return x[0], x[1], ok
}

func TestRetentionDeletesOnlyOldSentRows(t *testing.T) {
	f := newFixture(t)
	ctx := brokertest.Context(t, time.Minute)
	ids := newIDs(t, 4)
	f.publish(t, ids, nil)
	// ids[0]: sent 8 days ago; ids[1]: sent now; ids[2]: unsent, written
	// 30 days ago; ids[3]: unsent.
	for _, q := range []struct {
		sql string
		id  string
	}{
		{`UPDATE warren_outbox SET sent_at = now() - interval '8 days' WHERE job_id = $1`, ids[0]},
		{`UPDATE warren_outbox SET sent_at = now() WHERE job_id = $1`, ids[1]},
		{`UPDATE warren_outbox SET created_at = now() - interval '30 days' WHERE job_id = $1`, ids[2]},
	} {
		if _, err := f.pool.Exec(ctx, q.sql, q.id); err != nil {
			t.Fatal(err)
		}
	}
	n, err := outbox.DeleteSent(ctx, f.pool, outbox.DefaultRetention)
	if err != nil || n != 1 {
		t.Fatalf("DeleteSent: %d, %v; want 1", n, err)
	}
	var left []string
	rows, err := f.pool.Query(ctx, `SELECT job_id FROM warren_outbox`)
	if err != nil {
		t.Fatal(err)
	}
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(left)
	want := append([]string(nil), ids[1:]...)
	sort.Strings(want)
	if fmt.Sprint(left) != fmt.Sprint(want) {
		t.Errorf("rows left %v, want %v", left, want)
	}
}

// observer records what a relay reports.
type observer struct {
	mu      sync.Mutex
	sent    int
	stats   []outbox.Stats
	deleted int64
}

func (o *observer) OutboxBatch(sent, failed int, delays []time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent += sent
}

func (o *observer) OutboxStats(s outbox.Stats) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stats = append(o.stats, s)
}

func (o *observer) OutboxDeleted(n int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.deleted += n
}

func TestRelayReportsAndDeletes(t *testing.T) {
	f := newFixture(t)
	ctx := brokertest.Context(t, time.Minute)
	ids := newIDs(t, 3)
	f.publish(t, ids[:1], nil)
	if _, err := f.pool.Exec(ctx, `UPDATE warren_outbox SET sent_at = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}
	f.publish(t, ids[1:], nil)
	obs := &observer{}
	stop := f.relay(t, outbox.WithObserver(obs), outbox.WithRetention(time.Hour), outbox.WithStatsInterval(10*time.Millisecond))
	f.waitSent(t)
	testkit.WaitFor(t, 30*time.Second, "the relay's reports", func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return obs.sent == 2 && obs.deleted == 1 && len(obs.stats) > 0 && obs.stats[len(obs.stats)-1].Backlog == 0
	})
	stop()
}
