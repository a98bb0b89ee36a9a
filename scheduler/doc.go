// Package scheduler publishes periodic jobs: each Schedule's job at every
// tick of a cron expression or an interval, from exactly one of any
// number of replicas.
//
// What scheduler owns: the ticks (when they are, which are due, which are
// too late), the election of the one replica that fires them, and the
// state that lets the next leader carry on where the last one stopped.
// It publishes through package broker like any producer, confirmed.
//
// # Election
//
// Every Scheduler consumes the lease queue (DefaultLeaseQueue, a durable
// quorum queue with a single active consumer) with manual
// acknowledgements. The queue holds a token: a message carrying, for
// each schedule, its watermark (every tick up to it is settled). Only the
// active consumer receives the token; the scheduler that holds it
// unacknowledged leads. To fire a tick, the leader publishes the job
// (confirmed), then a new token with the watermark moved on (confirmed),
// then acks the old token. When the leader's process dies or its
// connection is lost, the broker returns the token to the queue and
// gives it to the next consumer, which catches up from the watermark.
// Extra tokens (every replica seeds one when it finds the queue empty)
// reach the leader, which merges them and keeps one.
//
// Each tick's job id is JobID(schedule, tick), the same on every replica,
// so a tick fired twice (a leader that dies between publishing the job
// and its token, or a partitioned leader that fires once more before it
// notices) is the same job twice, which consumers drop by id.
//
// # Missed ticks
//
// A tick is fired if it is no later than its schedule's window: CatchUp,
// or Tolerance when CatchUp is shorter. Older ticks are skipped, logged
// and counted (Missed). A paused schedule's ticks are skipped too
// (SetPaused), and are not fired when it resumes.
//
// docs/flow-control.md ("Periodic jobs") has the full account, with what
// it guarantees and what it does not.
package scheduler
