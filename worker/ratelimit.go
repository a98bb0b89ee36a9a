package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/warrenmq/warren/broker"
)

// Rate limits hold jobs back before they start; they never settle a job
// because of a limit. A job held back waits unacked in the pool's
// prefetch window (and the jobs behind it in the broker), which the broker
// returns to the queue if the worker dies; when the pool stops, a job
// still waiting goes back to its queue as one that never ran (see
// Pool.returnUnstarted). docs/flow-control.md has the whole story.
//
// Each limit is a golang.org/x/time/rate token bucket (the standard one
// in Go, kept by the Go team) with a burst of 1: the bucket lets jobs
// start per/n apart, so no window of length per sees more than n of them
// start. A burst of n would let 2n start within one window (a full bucket
// spent at once, then refilled), which breaks the promise "n per per"
// that an external API's quota usually means; the price of burst 1 is
// that jobs arriving together after a quiet spell are spread out too.
//
// A job takes its tokens when it starts, all of them (its queue's, its
// type's) at once under Pool.limitMu, so a token is never spent on a job
// that then waits for another. A job that waited for its tokens takes
// them as of when they were due, up to lateCredit before (see admit): the
// bucket keeps its schedule, and a start may come that much early on it.

// RateLimit lets at most n jobs of the queue start in any interval of
// length per, in this pool: they start per/n apart (a token bucket of
// golang.org/x/time/rate with a burst of 1, as a burst of n would let up
// to 2n start within one interval; jobs that waited may come closer by
// the delay of their timers, 5ms at most). A job waits for its turn
// unacked, holding one of the queue's handler slots (every job of the
// queue waits for the same turn, so the slot is not missed), before the
// quarantine gate. Jobs settled without a handler (malformed, expired,
// moved to the quarantine) take a turn too; quarantined jobs, run alone,
// are not limited.
//
// The limit is per pool: N workers each with RateLimit(n, per) start up
// to N*n jobs per per; GlobalRateLimit shares one limit among them.
// docs/flow-control.md#rate-limits has the details.
func RateLimit(n int, per time.Duration) QueueOption {
	return func(q *queueOptions) error {
		l, err := newLimit(n, per)
		if err != nil {
			return fmt.Errorf("RateLimit: %w", err)
		}
		q.limit = l
		return nil
	}
}

// GlobalRateLimit shares a limit of n jobs per per among the consumers of
// the queue: each pool with it lets jobs of the queue start at n/c per per,
// c being the queue's consumer count (each pool consuming the queue is one
// consumer), which it reads from the broker (queue.declare, passive) when
// Run starts and every GlobalRefresh after. Give every pool consuming the
// queue the same GlobalRateLimit: a consumer without it counts in c but
// takes what it likes.
//
// It is a division, not a distributed token bucket. While the consumer
// count holds at c, the queue's starts stay within n per per: c shares of
// n/c, each a bucket of burst 1 as RateLimit's (each rounded up to whole
// jobs in a window of length per). While consumers join and leave, a
// pool's share lags behind for up to GlobalRefresh: when k consumers join
// c, those that have not read the new count go on at n/c each, so the sum
// may reach n + k*n/(c+k) per per, under 2n, for up to GlobalRefresh; when
// consumers leave, the sum falls below n for as long. In general the sum
// is at most n times the consumers now over the fewest any pool read at its
// last reading. A strict bound across workers needs a shared store (a
// token bucket in Redis, say), which warren does not have.
// docs/flow-control.md#rate-limits has the details.
//
// Give RateLimit or GlobalRateLimit to a queue, not both.
func GlobalRateLimit(n int, per time.Duration) QueueOption {
	return func(q *queueOptions) error {
		l, err := newLimit(n, per)
		if err != nil {
			return fmt.Errorf("GlobalRateLimit: %w", err)
		}
		q.global = l
		return nil
	}
}

// GlobalRefresh is how often a pool reads the consumer count of its queues
// with a GlobalRateLimit, to set its share.
const GlobalRefresh = 5 * time.Second

func (p *Pool) hasGlobal() bool {
	for _, q := range p.queues {
		if q.cfg.global.n > 0 {
			return true
		}
	}
	return false
}

// refreshGlobal sets the shares of p's global rate limits every
// GlobalRefresh until stopCtx ends.
func (p *Pool) refreshGlobal(stopCtx context.Context) {
	t := time.NewTicker(GlobalRefresh)
	defer t.Stop()
	for {
		select {
		case <-stopCtx.Done():
			return
		case <-t.C:
		}
		p.shareGlobal(stopCtx)
	}
}

// shareGlobal sets the share of each of p's global rate limits from its
// queue's consumer count; one it cannot read keeps its share.
func (p *Pool) shareGlobal(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := broker.NewDeclarer(p.conn)
	defer d.Close(context.WithoutCancel(ctx))
	for _, q := range p.queues {
		g := q.cfg.global
		if g.n == 0 {
			continue
		}
		info, err := d.QueueInfo(ctx, q.queue.Name)
		if err != nil {
			q.log.Warn().Err(err).Msg("worker: could not read the queue's consumer count for its global rate limit; keeping this pool's share")
			continue
		}
		p.limitMu.Lock()
		q.limit.setLimit(time.Now(), share(g, info.Consumers))
		p.limitMu.Unlock()
	}
}

// share is one consumer's part of g among consumers (at least one: this
// pool's own consumer may be between two channels).
func share(g limit, consumers int) rate.Limit {
	return rate.Limit(float64(g.n) / g.per.Seconds() / float64(max(consumers, 1)))
}

// TypeRateLimit lets at most n jobs of type jobType start in any interval
// of length per, in this pool, across its queues (a token bucket with a
// burst of 1, as RateLimit; jobs of other types are not counted). A job of that type waiting for its turn holds
// no handler slot: it waits in a goroutine of its own, unacked, while the
// queue's handlers go on with jobs of other types. That holds as long as
// the queue's prefetch window has room: once every delivery the broker
// lets the pool hold (Prefetch) is a job of a limited type waiting its
// turn, the queue's other jobs wait behind them in the broker. Raise
// Prefetch for queues that mix a limited type with others.
//
// It may be given once per job type. A job of the type in a queue with a
// RateLimit waits for both.
func TypeRateLimit(jobType string, n int, per time.Duration) Option {
	return func(o *options) error {
		if jobType == "" {
			return errors.New("worker: TypeRateLimit: empty job type; name the type the limit is for")
		}
		l, err := newLimit(n, per)
		if err != nil {
			return fmt.Errorf("worker: TypeRateLimit %q: %w", jobType, err)
		}
		if _, ok := o.typeLimits[jobType]; ok {
			return fmt.Errorf("worker: TypeRateLimit %q is given twice", jobType)
		}
		if o.typeLimits == nil {
			o.typeLimits = make(map[string]limit)
		}
		o.typeLimits[jobType] = l
		return nil
	}
}

// limit is a validated rate limit: n jobs per interval.
type limit struct {
	n   int
	per time.Duration
}

func newLimit(n int, per time.Duration) (limit, error) {
	if n <= 0 || per <= 0 {
		return limit{}, fmt.Errorf("%d per %s: give a positive number of jobs per a positive interval, such as (10, time.Second)", n, per)
	}
	return limit{n: n, per: per}, nil
}

// bucket is a rate limit's token bucket, with the time its last token was
// taken; both are guarded by the pool's limitMu (the rate.Limiter locks
// itself too, but a job's tokens are taken together).
type bucket struct {
	lim  *rate.Limiter
	last time.Time // when the last token was taken, as the bucket counts
}

// bucket returns the token bucket of l: n per per, burst 1.
func (l limit) bucket() *bucket {
	return &bucket{lim: rate.NewLimiter(rate.Limit(float64(l.n)/l.per.Seconds()), 1)}
}

// setLimit changes b's rate from now on. Call it with limitMu held.
func (b *bucket) setLimit(now time.Time, r rate.Limit) {
	b.lim.SetLimitAt(now, r)
	if now.After(b.last) {
		b.last = now // SetLimitAt counted the tokens up to now
	}
}

// limiters are the rate limits a delivery waits for: its queue's and its
// type's; nil for none.
type limiters struct {
	queue, typ *bucket
	// due is when the tokens of a job that waited for them were due (see
	// admit); zero before it waits.
	due time.Time
	// since is when the job began to wait in a goroutine of its own
	// (awaitType); zero for one that waits where it is taken.
	since time.Time
	// gen is the generation of the queue's circuit breaker the job was
	// admitted in (breaker.admit), to count its outcome with.
	gen uint64
}

func (l limiters) none() bool { return l.queue == nil && l.typ == nil }

// limitsOf returns the limits d waits for in q.
func (p *Pool) limitsOf(q *queueRun, d *broker.Delivery) limiters {
	l := limiters{queue: q.limit}
	if len(p.typeLimits) > 0 && d.Err == nil && d.Envelope != nil {
		l.typ = p.typeLimits[d.Envelope.Type]
	}
	return l
}

// untilTokens returns how long after at every bucket of bs has a token, 0
// if they have then. Call it with limitMu held.
func untilTokens(at time.Time, bs ...*bucket) time.Duration {
	var wait time.Duration
	for _, b := range bs {
		if b == nil {
			continue
		}
		t := b.lim.TokensAt(at)
		if t >= 1 {
			continue
		}
		// Rounded up, and a microsecond more: a wait cut short by the
		// float's rounding would find the token not quite there.
		d := time.Duration(math.Ceil((1-t)/float64(b.lim.Limit())*float64(time.Second))) + time.Microsecond
		wait = max(wait, d)
	}
	return wait
}

// admission is what admit did.
type admission int

const (
	admitted admission = iota // the tokens are taken: start the job
	stopped                   // stopCtx ended, cur's channel was lost or q was held first
	typeBusy                  // the type's token went to another job: wait for it without a slot
)

// admit waits until d may start under l, then takes its tokens, all at
// once, and reports whether it had to wait. It takes none when stopCtx
// ends, cur's channel is lost or q is held (paused, its breaker open)
// first, or when d's type has no token:
// the caller holds a handler slot, which it must not keep for a type's
// turn (another job of the type got there first).
//
// A job that waited takes its tokens as of when they were due, not as of
// when its timer woke it: waking is late by the timer's and the
// scheduler's delay (a millisecond or so), and a bucket of burst 1 that
// counted from the wake-up would lose that much at every turn (7% at 50
// jobs/s on the benchmark machine). So a queue kept busy by its limit
// keeps to its schedule, per/n a job; two jobs' starts may come closer
// than that by the difference of their delays, lateCredit at most. A job
// woken later than that (a slot it waited for, a loaded machine) counts
// from now: no backlog of late jobs starts at once.
func (p *Pool) admit(stopCtx context.Context, q *queueRun, cur *broker.Consumer, l limiters) (a admission, waited bool) {
	due := l.due
	for {
		p.limitMu.Lock()
		now := time.Now()
		at := now
		if late := now.Sub(due); !due.IsZero() && late > 0 && late <= lateCredit {
			at = due
		}
		// Never before a token taken already: the bucket would count
		// that time twice.
		for _, b := range []*bucket{l.queue, l.typ} {
			if b != nil && at.Before(b.last) {
				at = b.last
			}
		}
		wait := untilTokens(at, l.queue, l.typ)
		if wait == 0 {
			for _, b := range []*bucket{l.queue, l.typ} {
				if b != nil {
					b.lim.AllowN(at, 1)
					b.last = at
				}
			}
			p.limitMu.Unlock()
			return admitted, waited
		}
		if l.typ != nil && untilTokens(at, l.typ) > 0 {
			p.limitMu.Unlock()
			return typeBusy, waited
		}
		due = at.Add(wait)
		p.limitMu.Unlock()
		if !sleep(stopCtx, q, cur, due.Sub(now)) {
			return stopped, waited
		}
		waited = true
	}
}

// maxRateWait is the longest a prefetched job may wait for its rate limit
// before NewPool warns: DefaultHandlerTimeout's margin below RabbitMQ's
// consumer_timeout (30 minutes by default), past which the broker closes
// the channel of a consumer holding an unacked delivery.
const maxRateWait = DefaultHandlerTimeout

// lateCredit bounds the delay a waiting job's tokens are taken back
// over (see admit).
const lateCredit = 5 * time.Millisecond

// sleep waits d; false when stopCtx ended, cur's channel was lost or q
// was held (paused, its breaker open) first: a job waiting for its turn
// goes back to the queue then, as the jobs received and not started do,
// rather than keep the hold waiting for a turn that may be far off.
func sleep(stopCtx context.Context, q *queueRun, cur *broker.Consumer, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		// Watched before holding is read, so a hold that comes between
		// the two is not missed.
		changed := q.holdChanges()
		if q.holding() {
			return false
		}
		select {
		case <-t.C:
			return true
		case <-stopCtx.Done():
			return false
		case <-cur.Done():
			return false
		case <-changed:
		}
	}
}

// typeReady reports whether a job with limits l may start now as far as
// its type's limit goes.
func (p *Pool) typeReady(l limiters) bool {
	if l.typ == nil {
		return true
	}
	p.limitMu.Lock()
	defer p.limitMu.Unlock()
	return untilTokens(time.Now(), l.typ) == 0
}

// awaitType runs d, a job whose type's limit holds it back, once it may
// start, without holding a handler slot meanwhile: it sleeps until its
// type has a token, takes a slot of q, then waits there for the queue's
// limit, if any; when another job of the type took the token first, it
// gives the slot back and sleeps again. It is a goroutine of the pool's
// handlers and of cur's workers; its caller added it to both.
func (p *Pool) awaitType(stopCtx, jobCtx context.Context, q *queueRun, cur *broker.Consumer, d *broker.Delivery, l limiters) {
	var w watchdog // the handler timeout of d
	defer w.stop()
	for {
		if !p.typeTurn(stopCtx, q, cur, &l) || q.holding() {
			p.returnUnstarted(q, cur, d) // stopping, or held meanwhile: it waits in the queue
			return
		}
		if !q.takeSlot(stopCtx, cur) {
			p.returnUnstarted(q, cur, d)
			return
		}
		started := p.start(stopCtx, jobCtx, &w, q, cur, d, l)
		<-q.slots
		if started {
			return
		}
	}
}

// typeTurn sleeps until l's type has a token (which another job may take
// first); false when stopCtx ended, cur's channel was lost or q was held
// first.
func (p *Pool) typeTurn(stopCtx context.Context, q *queueRun, cur *broker.Consumer, l *limiters) bool {
	for {
		p.limitMu.Lock()
		now := time.Now()
		at := now
		if late := now.Sub(l.due); !l.due.IsZero() && late > 0 && late <= lateCredit {
			at = l.due // see admit
		}
		wait := untilTokens(at, l.typ)
		p.limitMu.Unlock()
		if wait == 0 {
			return true
		}
		l.due = at.Add(wait)
		if !sleep(stopCtx, q, cur, l.due.Sub(now)) {
			return false
		}
	}
}

// start waits, holding a slot of q, for d's rate limits, then for the
// quarantine gate, and runs d; a job that cannot start because the pool
// stops is returned to its queue. It reports false, d not started, when
// d's type's turn went to another job: its caller gives the slot back and
// waits for the type without it (awaitType).
func (p *Pool) start(stopCtx, jobCtx context.Context, w *watchdog, q *queueRun, cur *broker.Consumer, d *broker.Delivery, l limiters) bool {
	var waited time.Duration
	if !l.none() {
		begin := l.since
		if begin.IsZero() {
			begin = time.Now()
		}
		a, slept := p.admit(stopCtx, q, cur, l)
		switch a {
		case stopped:
			p.returnUnstarted(q, cur, d)
			return true
		case typeBusy:
			return false
		}
		if slept || !l.since.IsZero() {
			waited = time.Since(begin)
		}
		if q.holding() {
			// Paused, or its breaker opened, while it waited for its
			// turn: it goes back to wait in the queue, as the jobs
			// received and not started do.
			p.returnUnstarted(q, cur, d)
			return true
		}
	}
	// Waits while a quarantined job runs alone; jobCtx ends only at the
	// shutdown deadline, after which the job goes back untouched.
	if err := p.gate.Acquire(jobCtx, 1); err != nil {
		p.observed(jobCtx, q, d, func(ctx context.Context, _ facts, out *Outcome) {
			p.settle(ctx, q, d, d, verdict{kind: verdictRequeue}, out)
		})
		return true
	}
	p.process(jobCtx, w, q, d, d, waited, l.gen)
	p.gate.Release(1)
	return true
}

// returnUnstarted returns d, a delivery of cur that no handler took
// because the pool is stopping, the queue is held (paused, its breaker
// open) or cur's channel was lost, to its queue as Pool.requeueRest does
// with the prefetched ones; cur stops consuming first (see putBack).
func (p *Pool) returnUnstarted(q *queueRun, cur *broker.Consumer, d *broker.Delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.putBack(ctx, q, cur, []*broker.Delivery{d})
}
