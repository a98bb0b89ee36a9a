package worker

import (
	"context"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
)

// Crash loops: a job that kills the worker process running it (os.Exit, a
// panic in a goroutine it started, a fault in C code, the kernel's OOM
// killer) is never settled, and the broker delivers it again, to the next
// worker, which it kills too. The broker cannot tell it apart: when a
// worker dies, every job it held comes back the same way, marked
// redelivered, whether it was running, waiting in the prefetch window or
// merely handled a moment before its ack was sent. A count of returns (a
// quorum queue's delivery limit) blames them all, and classic queues count
// nothing.
//
// So a pool treats a redelivered job as a suspect and sorts suspects out
// one at a time:
//
//  1. A suspect from a work queue is not run among other jobs: it is moved,
//     unchanged, to the queue's quarantine ("<queue>.quarantine"; published
//     with a confirm, then acked).
//  2. A pool runs quarantined jobs alone: it stops starting jobs, waits for
//     those running to finish (for a bounded, growing time: see
//     runQuarantine), takes one quarantined job with basic.get (so nothing
//     more of the quarantine is held), runs it, and settles it at once (no
//     grouped ack), a few in a row, then goes back to its other work.
//  3. A quarantined job the broker gives back redelivered was therefore the
//     only job running in its worker when that worker died: the pool counts
//     a crash (warren-crashes, republished to the quarantine) and, at the
//     crash limit, dead-letters it with class crash.
//
// Innocent jobs that were in the dead worker's hands are moved to the
// quarantine too and run there alone, once each; no crash is counted
// against them, since they were not running alone. A crash is also
// counted when a quarantined job's worker lost its connection or was
// killed from outside while running it: the limit (WithCrashLimit, default
// 3) leaves room for that. docs/retries.md has the reasoning and numbers.

// quarantinePoll is how often a pool checks whether its quarantines hold
// jobs moved there by other workers (its own moves wake it at once).
const quarantinePoll = time.Second

// quarantineBatch bounds the quarantined jobs run in one spell of
// isolation, after which the pool's other jobs get their turn.
const quarantineBatch = 8

// isolated is the weight a pool takes from its gate to run a job alone:
// all of it, so no other job runs meanwhile.
const isolated = 1 << 62

// runQuarantine runs q's quarantined jobs alone until stopCtx ends. It is
// one of the pool's handlers: jobCtx bounds the jobs it runs.
func (p *Pool) runQuarantine(stopCtx, jobCtx context.Context, q *queueRun) {
	g := broker.NewGetter(p.conn, q.queue.QuarantineQueue)
	defer g.Close(context.WithoutCancel(stopCtx))
	var w watchdog // the handler timeout of the jobs run here
	defer w.stop()
	decl := broker.NewDeclarer(p.conn)
	defer decl.Close(context.WithoutCancel(stopCtx))
	tick := time.NewTicker(quarantinePoll)
	defer tick.Stop()
	// wait bounds how long the pool holds back its other jobs to let those
	// running finish; it doubles each time they do not, up to the handler
	// timeout, and the pool then works as long before trying again, so a
	// stuck handler never stops the pool's work for long, and quarantined
	// jobs still get their turn between long jobs.
	wait, maxWait := quarantinePoll, q.cfg.handlerTimeout+time.Second
	var notBefore time.Time
	for {
		select {
		case <-stopCtx.Done():
			return
		case <-tick.C:
		case <-q.kick:
		}
		if time.Now().Before(notBefore) || q.holding() {
			continue // paused or its breaker open: the quarantine waits too
		}
		// A cheap look first: isolating the pool costs its other jobs.
		info, err := decl.QueueInfo(stopCtx, q.queue.QuarantineQueue)
		if err != nil || info.Messages == 0 {
			continue
		}
		actx, cancel := context.WithTimeout(stopCtx, wait)
		err = p.gate.Acquire(actx, isolated)
		cancel()
		if err != nil {
			if stopCtx.Err() != nil {
				return
			}
			q.log.Debug().Dur(logfield.Waited, wait).Msg("worker: jobs still running; quarantined jobs wait for their turn")
			notBefore = time.Now().Add(wait)
			wait = min(2*wait, maxWait)
			continue
		}
		wait = quarantinePoll
		for range quarantineBatch {
			d, ok, err := g.Get(stopCtx)
			if err != nil {
				if stopCtx.Err() == nil {
					q.log.Warn().Err(err).Msg("worker: could not take a job from the quarantine")
				}
				break
			}
			if !ok {
				break
			}
			p.runSuspect(jobCtx, &w, q, d)
			if stopCtx.Err() != nil {
				break
			}
		}
		p.gate.Release(isolated)
	}
}

// runSuspect runs a quarantined job, alone, or counts a crash against it
// when it comes back redelivered (see decide).
func (p *Pool) runSuspect(ctx context.Context, w *watchdog, q *queueRun, d *broker.Delivery) {
	if d.Err == nil && d.Redelivered {
		p.observed(ctx, q, d, func(ctx context.Context, f facts, out *Outcome) {
			p.settle(ctx, q, d, d, decide(f), out)
		})
		return
	}
	p.process(ctx, w, q, d, d, 0, 0)
}
