// Package worker consumes jobs from the work queues of a topology and hands
// them to handlers, with manual acknowledgements, bounded concurrency,
// retries held by the broker and dead-letter queues.
//
// What worker owns: the Pool and its goroutines, dispatch to handlers
// (Mux, Handler, Typed, middleware), a delivery's verdict and its
// settlement, retries, dead letters and the quarantine. It never imports
// amqp091-go: it consumes through broker.Consume, settles through
// broker.Delivery (Ack, Requeue, Reject) and publishes retries, dead
// letters, quarantine moves and replies through a broker.Sender. It
// declares no topology (it checks that its queues exist; applying the
// topology is topology.Declare's job, or the CLI's) and opens no
// connection of its own.
//
// A Pool consumes one or more queues. Each delivery is decoded into a Job
// and dispatched to a Handler, usually a Mux that picks the handler
// registered for the job's type. What the handler returns decides the
// job's fate, and the Pool settles every delivery exactly once:
//
//   - nil: the job is acked.
//   - an error: the job is retried. A copy with the same id, the attempt
//     count incremented and the error in its headers is published, with a
//     publisher confirm, into the broker's delay cascade, which brings it
//     back to the queue after the backoff delay; then the original is
//     acked. A crash in between gives a duplicate, never a loss.
//   - after the last attempt, or an error wrapping ErrPermanent, an
//     undecodable or oversized body, an unknown job type or a message that
//     is not a job: the job is published (confirmed) to the queue's
//     dead-letter queue with headers saying why, then acked.
//
// A panic in a handler is recovered and counts as a failure. A job that
// kills its worker process cannot be recovered: the broker delivers it
// again, marked redelivered, together with every other job the dead
// worker held. The Pool moves such suspects to the queue's quarantine and
// runs them there one at a time, alone, so a crash is counted only against
// the job that was running; at the crash limit (WithCrashLimit) the job is
// dead-lettered with class crash, and the innocent jobs run once each
// (quarantine.go, and docs/retries.md). On shutdown
// (the ctx given to Run ends) the Pool stops its consumers, lets the jobs
// in flight finish within a deadline, returns the jobs it had prefetched
// to their queue, sends the last acks and closes its channels.
//
// Inside the Pool, a delivery's verdict is computed by one pure function
// (verdict.go) and carried out in one place, in a fixed order: publish,
// reply, ack, requeue or reject (settle.go); then the observers are told
// the outcome.
//
// # Observers
//
// An Observer sees every delivery a pool takes: Job is called as it is
// taken, and the func it returns once it is settled, with its Outcome.
// Metrics and tracing are observers. A pool uses, without being told, the
// observers of its connection that are also Observers: those given to
// broker.Dial with broker.WithObserver, such as *metrics.Metrics and
// *tracing.Tracing, which observe the connection's publishes too. So one
// line wires either in:
//
//	conn, err := broker.Dial(ctx, urls, broker.WithObserver(m))
//	pool, err := worker.NewPool(conn, topo, mux) // its jobs are observed by m
//
// WithObserver adds observers of the pool's own, after the connection's;
// OutcomeFunc makes one of a func(Outcome).
//
// # Rate limits
//
// RateLimit (a queue's jobs), TypeRateLimit (a job type's, across queues)
// and GlobalRateLimit (a queue's, divided among its consumers) hold jobs
// back before they start, in token buckets of golang.org/x/time/rate. A
// job held back waits unacked in the pool's prefetch window, and the
// rest in the broker; a limit never acks, retries or dead-letters a job,
// and a job still waiting when the pool stops goes back to its queue as a
// prefetched one does. docs/flow-control.md says what each bounds.
//
// # Circuit breakers
//
// Breaker gives a queue a circuit breaker: when, over a window, enough of
// its jobs failed (retried errors, timeouts, panics; not permanent
// failures), or a handler returned TripBreaker, the pool stops consuming
// the queue for a cool-down, as a pause does, and its jobs wait in the
// broker; then a few trial jobs run, and their success closes it. Open
// breakers are logged, observed (BreakerObserver), named by Pool.Status,
// and marked in the broker (broker.BreakerMarker) for warren stats and for
// callers that fail fast (broker.WithConsumerCheck).
//
// docs/retries.md describes retries, dead letters and scheduled jobs in
// full.
package worker
