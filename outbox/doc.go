// Package outbox is a transactional outbox: a producer writes a job into
// its own PostgreSQL transaction, next to the change the job announces,
// and a relay publishes it to RabbitMQ after the transaction commits. A
// job is published if and only if its transaction commits, whatever
// crashes in between; the price is a short delay and, after a relay's
// crash, a duplicate with the same job id.
//
//	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//		if _, err := tx.Exec(ctx, `INSERT INTO orders ...`); err != nil {
//			return err
//		}
//		return outbox.Publish(ctx, tx, broker.Job{Type: "order.placed", Payload: order}, outbox.Router(topo))
//	})
//
// # The table
//
// Migrate (or warren outbox migrate) creates warren_outbox in the first
// schema of the search_path. A row keeps the job as it will be sent — id,
// type, exchange and routing key, properties, headers in broker.Table's
// JSON form, the MessagePack body — so every send of it is the same
// message with the same id; and when it was written, when it was sent,
// its attempts and last error. Sent rows are kept for the retention
// period (7 days by default) for audit, then deleted by the relays.
//
// # Relays
//
// A Relay claims batches of unsent rows with FOR UPDATE SKIP LOCKED,
// publishes them with publisher confirms (pipelined: the whole batch
// outstanding at once), marks the confirmed ones sent and commits. Any
// number of relays can run on one outbox, in the worker daemons (a Relay
// is a daemon.Service) or as warren outbox relay; they never wait for one
// another and, in the normal case, never send a row twice. A relay that
// dies mid-batch leaves its transaction to roll back: its rows are sent
// again, the ones the broker already had as duplicates of the same id,
// which an idempotent consumer drops. See docs/exactly-once.md.
//
// A commit wakes the relays through LISTEN/NOTIFY (the table's trigger);
// they also poll, every second by default.
//
// # Order
//
// Jobs are sent roughly in the order they were written, but in parallel:
// a consumer must not rely on it. Jobs that must stay in order — the
// events of one aggregate — share an OrderingKey: a key's jobs are
// published one at a time, in the order of their rows, each once the
// previous one is confirmed, across all relays.
//
// # Observing
//
// A relay reports its batches, the backlog and the lag (the age of the
// oldest unsent row) to an Observer; *metrics.Metrics is one
// (warren_outbox_* metrics). ReadStats and List read the same from any
// process (warren outbox stats, warren outbox ls).
package outbox
