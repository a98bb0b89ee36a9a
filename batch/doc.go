// Package batch runs batches of jobs — fan-out, fan-in — persisted in
// PostgreSQL: a producer publishes many jobs at once, and one callback job
// runs when the last of them has ended, with their counts and failures.
//
//	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
//		id, err := batch.Publish(ctx, tx, jobs, broker.Job{Type: "import.done"}, batch.Router(topo))
//		...
//	})
//
// and, in every pool that runs the batch's jobs:
//
//	fin, err := batch.NewFinisher(db)
//	pool, err := worker.NewPool(conn, topo, mux, worker.WithFinisher(fin))
//
// What batch owns: the tables warren_batch (one row per batch: its total,
// its counts, its callback) and warren_batch_jobs (one row per job that
// ended), their migrations (Migrate, warren batch migrate), the Finisher
// that counts, and reading (Get, List, warren batch ls and show) and
// retention (DeleteFinished). It sends nothing itself: the jobs and the
// callback go through the transactional outbox (package outbox), whose
// relay must run on the same database — in the worker daemons, or as
// warren outbox relay.
//
// # Guarantees
//
// The batch exists, and its jobs are published, if and only if the
// producer's transaction commits. Each job carries the batch's id in its
// warren-batch header (broker.HeaderBatch), through its retries and dead
// letters. When a job ends for good — succeeded, dead-lettered, or rejected
// for want of a dead-letter queue — the pool's Finisher, before acking it,
// records the job's outcome under its id and counts it in the batch, in one
// transaction; a job id already recorded counts nothing, so a duplicate
// delivery, a job run again after a crash, or a dead letter replayed later
// never counts twice. The transaction that counts the last job writes the
// callback into the outbox: the callback is written exactly once, and the
// relay publishes it (at least once: after a relay's crash, possibly twice
// with the same job id, which an idempotent consumer drops).
//
// A job that never ends holds its batch open: a job that keeps failing is
// retried by its policy and then dead-lettered, and is counted as failed
// then. So every batch finishes as long as its jobs' queues have retry
// limits and the pools that run them have the Finisher.
//
// # The callback
//
// The batch's id is its callback's job id. A callback without a payload
// gets the batch's Result (job.Decode(&res)): its counts and its failed
// jobs, with their class and error. A callback with a payload keeps it;
// its handler reads the batch with Get(ctx, db, job.ID).
package batch
