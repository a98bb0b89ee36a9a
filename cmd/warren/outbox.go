package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/cmd/warren/internal/table"
	"github.com/warrenmq/warren/outbox"
)

// The database flag and its environment fallbacks.
const (
	flagDatabaseURL        = "database-url"
	envDatabaseURL         = "WARREN_DATABASE_URL"
	envDatabaseURLFallback = "DATABASE_URL"
)

func newOutboxCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "Migrate, relay and inspect a transactional outbox in PostgreSQL",
		Long: `A transactional outbox: producers write jobs into the table warren_outbox in
their own PostgreSQL transaction (package outbox, Publish), and relays
publish them to RabbitMQ after the commit. See docs/exactly-once.md.

The database is --database-url, else WARREN_DATABASE_URL, else DATABASE_URL.
The outbox lives in the first schema of the connection's search_path: add
search_path=SCHEMA to the URL to choose another.`,
	}
	cmd.AddCommand(newOutboxMigrateCmd(g), newOutboxRelayCmd(g), newOutboxStatsCmd(g), newOutboxLsCmd(g))
	return cmd
}

// databaseFlag adds --database-url.
func databaseFlag(cmd *cobra.Command, u *string) {
	// No default shown: the URL may hold a password.
	cmd.Flags().StringVar(u, flagDatabaseURL, "", "PostgreSQL URL (default: env "+envDatabaseURL+", else "+envDatabaseURLFallback+")")
}

// openDatabase connects to the database of --database-url or the
// environment.
func openDatabase(ctx context.Context, u string) (*pgxpool.Pool, error) {
	if u == "" {
		u = os.Getenv(envDatabaseURL)
	}
	if u == "" {
		u = os.Getenv(envDatabaseURLFallback)
	}
	if u == "" {
		return nil, usageError("no database: pass --%s URL or set %s", flagDatabaseURL, envDatabaseURL)
	}
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		// pgx's parse errors can quote the URL: say no more than that.
		return nil, usageError("--%s: not a PostgreSQL URL or connection string", flagDatabaseURL)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}

func newOutboxMigrateCmd(g *globals) *cobra.Command {
	return newMigrateCmd(g, "outbox", "Create or update the outbox's table", `Create or update warren_outbox (and warren_outbox_migrations, which records
the versions applied) in the first schema of the search_path. Idempotent:
run it at every deploy; concurrent runs take turns.`, `  warren outbox migrate --database-url postgres://app@db:5432/orders
  DATABASE_URL='postgres://app@db/orders?search_path=billing' warren outbox migrate`, outbox.Migrate)
}

func newOutboxRelayCmd(g *globals) *cobra.Command {
	var dbURL string
	var batch int
	var poll, retention time.Duration
	var noListen bool
	cmd := &cobra.Command{
		Use:   "relay --database-url URL",
		Short: "Publish the outbox's rows until SIGINT or SIGTERM",
		Long: `Publish the outbox's unsent rows to RabbitMQ, with publisher confirms, and
mark them sent; until SIGINT or SIGTERM, which lets the batch in progress
finish. Run as many as you like on one outbox: they share the rows (FOR
UPDATE SKIP LOCKED). Each row is sent where its Publish routed it, so the
relay needs no topology file. It reconnects to the broker and the database
after losses; sent rows older than --retention are deleted.`,
		Example: `  warren outbox relay --database-url postgres://app@db:5432/orders
  warren outbox relay --url amqp://app:secret@rabbit:5672/ --batch-size 500 --retention 72h`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{noDeadline: "a server"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			pool, err := openDatabase(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			log := g.logger()
			// Unlike the one-shot commands, the relay outlives a broker
			// restart: it reconnects.
			conn, err := broker.Dial(ctx, g.brokerURLs(), broker.WithName(g.name+"-outbox"), broker.WithLogger(log))
			if err != nil {
				return err
			}
			defer conn.Close()
			opts := []outbox.Option{outbox.WithLogger(log), outbox.WithBatchSize(batch), outbox.WithPollInterval(poll),
				outbox.WithRetention(retention)}
			if noListen {
				opts = append(opts, outbox.WithoutListen())
			}
			r, err := outbox.NewRelay(pool, conn, opts...)
			if err != nil {
				return usageError("%v", err)
			}
			return r.Run(ctx)
		},
	}
	databaseFlag(cmd, &dbURL)
	cmd.Flags().IntVar(&batch, "batch-size", outbox.DefaultBatchSize, "rows claimed and published per transaction")
	cmd.Flags().DurationVar(&poll, "poll-interval", outbox.DefaultPollInterval, "how often an idle relay looks for rows (commits wake it at once unless --no-listen)")
	cmd.Flags().DurationVar(&retention, "retention", outbox.DefaultRetention, "how long sent rows are kept, for audit; 0: for ever")
	cmd.Flags().BoolVar(&noListen, "no-listen", false, "poll only, without LISTEN (behind PgBouncer in transaction mode)")
	return cmd
}

// outboxStatsDoc is the --json document of outbox stats.
type outboxStatsDoc struct {
	Version    int     `json:"version"`
	Backlog    int64   `json:"backlog"`
	Failing    int64   `json:"failing"`
	Oldest     *string `json:"oldest"` // RFC 3339; nil: no unsent row
	LagSeconds float64 `json:"lag_seconds"`
	LastSent   *string `json:"last_sent"`
}

func newOutboxStatsCmd(g *globals) *cobra.Command {
	var dbURL string
	cmd := &cobra.Command{
		Use:   "stats --database-url URL",
		Short: "Show the outbox's backlog and lag",
		Long: `Show the unsent rows (the backlog), those that failed at least once, when
the oldest was written and how late it is (the lag), and when a relay last
sent a row.`,
		Example: `  warren outbox stats --database-url postgres://app@db:5432/orders --json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			pool, err := openDatabase(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			s, err := outbox.ReadStats(ctx, pool)
			if err != nil {
				return err
			}
			d := outboxStatsDoc{Version: 1, Backlog: s.Backlog, Failing: s.Failing, LagSeconds: s.Lag.Seconds()}
			if !s.Oldest.IsZero() {
				v := s.Oldest.Format(time.RFC3339Nano)
				d.Oldest = &v
			}
			if !s.LastSent.IsZero() {
				v := s.LastSent.Format(time.RFC3339Nano)
				d.LastSent = &v
			}
			if g.json {
				return writeJSON(g.stdout, d)
			}
			tb := table.New("BACKLOG", "FAILING", "OLDEST", "LAG", "LAST SENT").AlignRight(0, 1)
			oldest, last := "-", "-"
			if d.Oldest != nil {
				oldest = s.Oldest.Format(time.RFC3339)
			}
			if d.LastSent != nil {
				last = s.LastSent.Format(time.RFC3339)
			}
			tb.Row(strconv.FormatInt(s.Backlog, 10), strconv.FormatInt(s.Failing, 10), oldest, s.Lag.Round(time.Millisecond).String(), last)
			_, err = tb.WriteTo(g.stdout)
			return err
		},
	}
	databaseFlag(cmd, &dbURL)
	return cmd
}

// outboxRow is one line of outbox ls, and its --json entry.
type outboxRow struct {
	ID          int64   `json:"id"`
	JobID       string  `json:"job_id"`
	JobType     string  `json:"job_type"`
	Exchange    string  `json:"exchange"`
	RoutingKey  string  `json:"routing_key"`
	OrderingKey string  `json:"ordering_key,omitempty"`
	CreatedAt   string  `json:"created_at"`
	SentAt      *string `json:"sent_at"`
	Attempts    int     `json:"attempts"`
	RetryAt     *string `json:"retry_at"`
	LastError   string  `json:"last_error,omitempty"`
}

func newOutboxLsCmd(g *globals) *cobra.Command {
	var dbURL string
	var o outbox.ListOptions
	cmd := &cobra.Command{
		Use:     "ls --database-url URL",
		Aliases: []string{"list"},
		Short:   "List the outbox's unsent (or sent) rows",
		Long: `List the unsent rows, oldest first: where each goes, its attempts, its next
retry and last error. --failing lists only those that failed; --sent lists
the sent rows kept for audit, newest first.`,
		Example: `  warren outbox ls --database-url postgres://app@db:5432/orders --failing
  warren outbox ls --sent --limit 20 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Limit < 1 || o.Limit > 100_000 {
				return usageError("--limit %d: give 1 to 100000", o.Limit)
			}
			ctx := cmd.Context()
			pool, err := openDatabase(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			rows, err := outbox.List(ctx, pool, o)
			if err != nil {
				return err
			}
			out := make([]outboxRow, 0, len(rows))
			for _, r := range rows {
				row := outboxRow{ID: r.ID, JobID: r.JobID, JobType: r.JobType, Exchange: r.Exchange, RoutingKey: r.RoutingKey,
					OrderingKey: r.OrderingKey, CreatedAt: r.CreatedAt.Format(time.RFC3339Nano), Attempts: r.Attempts, LastError: r.LastError}
				if !r.SentAt.IsZero() {
					v := r.SentAt.Format(time.RFC3339Nano)
					row.SentAt = &v
				}
				if !r.RetryAt.IsZero() {
					v := r.RetryAt.Format(time.RFC3339Nano)
					row.RetryAt = &v
				}
				out = append(out, row)
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version int         `json:"version"`
					Rows    []outboxRow `json:"rows"`
				}{1, out})
			}
			tb := table.New("ID", "JOB ID", "TYPE", "EXCHANGE", "ROUTING KEY", "KEY", "CREATED", "SENT", "ATTEMPTS", "LAST ERROR").AlignRight(0, 8)
			for _, r := range rows {
				sent := "-"
				if !r.SentAt.IsZero() {
					sent = r.SentAt.Format(time.RFC3339)
				}
				ex := r.Exchange
				if ex == "" {
					ex = "(default)"
				}
				tb.Row(strconv.FormatInt(r.ID, 10), r.JobID, table.Clean(r.JobType), table.Clean(ex), table.Clean(r.RoutingKey),
					table.Clean(r.OrderingKey), r.CreatedAt.Format(time.RFC3339), sent, strconv.Itoa(r.Attempts),
					table.Truncate(table.Clean(r.LastError), 60))
			}
			if _, err := tb.WriteTo(g.stdout); err != nil {
				return err
			}
			if len(rows) == 0 {
				what := "unsent"
				if o.Sent {
					what = "sent"
				}
				fmt.Fprintf(g.stdout, "no %s rows\n", what)
			}
			return nil
		},
	}
	databaseFlag(cmd, &dbURL)
	cmd.Flags().BoolVar(&o.Sent, "sent", false, "list the sent rows (kept for the retention), newest first")
	cmd.Flags().BoolVar(&o.Failing, "failing", false, "list only rows that failed at least once")
	cmd.Flags().IntVar(&o.Limit, "limit", 100, "at most this many rows")
	return cmd
}
