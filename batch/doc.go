// Package batch publishes jobs as a batch — fan-out — and runs a callback
// job once all of them have ended — fan-in — with how each ended.
//
//	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
//		id, err := batch.Publish(ctx, tx, topo, jobs, broker.Job{Type: "report.assemble", Payload: reportID})
//		...
//	})
//
//	fin, err := batch.NewFinisher(db)
//	pool, err := worker.NewPool(conn, topo, mux, worker.WithFinisher(fin))
//
// What batch owns: the tables warren_batch and warren_batch_jobs (Migrate,
// warren batch migrate), Publish, which writes a batch and its jobs in the
// caller's PostgreSQL transaction through the transactional outbox, and
// the Finisher, which the worker pools running the jobs call as each job
// ends, before its ack: it records the job's end once per job id, counts
// it, and, for the batch's last job, writes the callback into the outbox
// in the same transaction. So the callback runs once, whatever is
// delivered twice and whichever worker dies when; its payload is a Result.
//
// A job's first end counts: dead-lettered, it counts as failed, so a
// batch is never stuck on a job parked for good, only on one still
// retrying; replayed later and succeeding, it changes nothing. Get, List
// and warren batch ls/show say how far a batch is. See docs/workflows.md.
package batch
