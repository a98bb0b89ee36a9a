// Circuit breakers: a queue whose jobs keep failing stops being consumed
// for a while, and its jobs wait in the broker, not in retries.

package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
)

// A breaker watches the outcomes of its queue's jobs in this pool:
//
//   - closed: jobs run; when, over the last Window, at least MinJobs
//     ended and FailureRatio of them failed (a handler error that is
//     retried, a timeout, a panic), or a handler returned TripBreaker,
//     it opens;
//   - open: the queue is not consumed, as when it is paused (pause.go):
//     the consumer is cancelled, the jobs running finish, those received
//     and not started go back to the queue; after the cool-down it is
//     half-open;
//   - half-open: the queue is consumed again with a prefetch of
//     HalfOpenJobs, and that many jobs start as trials (others received
//     wait, unstarted); when they all succeed it closes, and the queue is
//     consumed again with its own prefetch; when one fails it opens again,
//     for twice the last cool-down (up to MaxCoolDown).
//
// Permanent failures (a bad payload, an unknown type) are not counted:
// they say nothing of the dependency a breaker protects. Outcomes of jobs
// admitted under an earlier state (a job still running when the breaker
// opened) are not counted either. docs/flow-control.md#circuit-breaker
// has the reasoning.

// Defaults of a BreakerPolicy.
const (
	DefaultBreakerWindow       = 30 * time.Second
	DefaultBreakerMinJobs      = 20
	DefaultBreakerFailureRatio = 0.5
	DefaultBreakerCoolDown     = 30 * time.Second
	DefaultBreakerHalfOpenJobs = 1
	// DefaultBreakerMaxCoolDown bounds the cool-down when it grows, as
	// trials keep failing: ten times CoolDown, and at least this.
	DefaultBreakerMaxCoolDown = 5 * time.Minute
)

// BreakerPolicy configures a queue's circuit breaker (Breaker). A zero
// field takes its default.
type BreakerPolicy struct {
	// Window is the span over which outcomes are counted (default
	// DefaultBreakerWindow). It is kept in ten slices, so it slides by a
	// tenth of itself.
	Window time.Duration
	// MinJobs is how many counted outcomes the window must hold before
	// the ratio can open the breaker (default DefaultBreakerMinJobs), so
	// that two failures of three jobs do not stop a quiet queue.
	MinJobs int
	// FailureRatio opens the breaker when that share of the counted
	// outcomes in the window failed, from 0 (excluded) to 1 (default
	// DefaultBreakerFailureRatio).
	FailureRatio float64
	// CoolDown is how long the breaker stays open before it lets trial
	// jobs through (default DefaultBreakerCoolDown). It doubles each time
	// a trial fails, up to MaxCoolDown, and is back to CoolDown once the
	// breaker closes.
	CoolDown time.Duration
	// MaxCoolDown bounds the cool-down as it grows (default ten times
	// CoolDown, at least DefaultBreakerMaxCoolDown; never below CoolDown).
	MaxCoolDown time.Duration
	// HalfOpenJobs is how many trial jobs run when the cool-down ends;
	// all must succeed to close the breaker (default
	// DefaultBreakerHalfOpenJobs).
	HalfOpenJobs int
}

// withDefaults returns p with its zero fields defaulted, or an error for
// every field out of range.
func (p BreakerPolicy) withDefaults() (BreakerPolicy, error) {
	var problems []error
	if p.Window < 0 {
		problems = append(problems, fmt.Errorf("Window %s is negative; give the span to count failures over, such as 30*time.Second (0: the default)", p.Window))
	}
	if p.MinJobs < 0 {
		problems = append(problems, fmt.Errorf("MinJobs %d is negative; give how many outcomes the window needs before it can open, such as 20 (0: the default)", p.MinJobs))
	}
	if p.FailureRatio < 0 || p.FailureRatio > 1 {
		problems = append(problems, fmt.Errorf("FailureRatio %g is not a share; give one above 0 and at most 1, such as 0.5 (0: the default)", p.FailureRatio))
	}
	if p.CoolDown < 0 {
		problems = append(problems, fmt.Errorf("CoolDown %s is negative; give how long to stop consuming, such as 30*time.Second (0: the default)", p.CoolDown))
	}
	if p.MaxCoolDown < 0 {
		problems = append(problems, fmt.Errorf("MaxCoolDown %s is negative (0: the default)", p.MaxCoolDown))
	}
	if p.HalfOpenJobs < 0 || p.HalfOpenJobs > 65535 {
		problems = append(problems, fmt.Errorf("HalfOpenJobs %d must be from 1 to 65535, the trial jobs let through after the cool-down (0: the default, 1)", p.HalfOpenJobs))
	}
	if err := errors.Join(problems...); err != nil {
		return p, err
	}
	if p.Window == 0 {
		p.Window = DefaultBreakerWindow
	}
	if p.MinJobs == 0 {
		p.MinJobs = DefaultBreakerMinJobs
	}
	if p.FailureRatio == 0 {
		p.FailureRatio = DefaultBreakerFailureRatio
	}
	if p.CoolDown == 0 {
		p.CoolDown = DefaultBreakerCoolDown
	}
	if p.HalfOpenJobs == 0 {
		p.HalfOpenJobs = DefaultBreakerHalfOpenJobs
	}
	switch {
	case p.MaxCoolDown == 0:
		p.MaxCoolDown = max(10*p.CoolDown, DefaultBreakerMaxCoolDown)
	case p.MaxCoolDown < p.CoolDown:
		return p, fmt.Errorf("MaxCoolDown %s is below CoolDown %s; give at least CoolDown", p.MaxCoolDown, p.CoolDown)
	}
	return p, nil
}

// Breaker gives the queue a circuit breaker: when its jobs keep failing
// (see BreakerPolicy), the pool stops consuming the queue for a cool-down,
// as a pause does, and the jobs wait in the queue, neither retried nor
// dead-lettered because of it; then it lets a few trial jobs through, and
// consumes as before once they succeed. A handler opens it at once by
// returning TripBreaker.
//
// The breaker is this pool's: other pools consuming the queue have their
// own, and go on until theirs opens. While open, the pool holds the
// queue's broker.BreakerMarker instead of consuming the queue, so that
// warren stats and callers (broker.ErrBreakerOpen) see it.
//
// A breaker is per queue: jobs of one type cannot be held back in a
// queue shared with others without holding the others too. Give a type
// whose dependency may fail a queue of its own (a route in the topology)
// to give it a breaker of its own. docs/flow-control.md#circuit-breaker
// has the details.
func Breaker(p BreakerPolicy) QueueOption {
	return func(q *queueOptions) error {
		pol, err := p.withDefaults()
		if err != nil {
			return fmt.Errorf("Breaker: %w", err)
		}
		q.breaker = &pol
		return nil
	}
}

// ErrBreakerTripped is wrapped by the errors TripBreaker returns.
var ErrBreakerTripped = errors.New("worker: circuit breaker tripped by the handler")

// TripBreaker wraps err, the reason, so that a handler returning it opens
// its queue's circuit breaker at once (a dependency is down): the pool
// stops consuming the queue for the cool-down, and the job goes back to
// its queue unchanged, without using an attempt, since it did not fail on
// its own account. On a queue without a Breaker, the error is an ordinary
// failure, retried. TripBreaker(nil) is an error too.
func TripBreaker(err error) error {
	if err == nil {
		err = errors.New("no reason given")
	}
	return &tripError{err}
}

type tripError struct{ err error }

func (e *tripError) Error() string   { return "circuit breaker tripped: " + e.err.Error() }
func (e *tripError) Unwrap() []error { return []error{e.err, ErrBreakerTripped} }

// BreakerState is the state of a queue's circuit breaker.
type BreakerState int

// The states of a breaker.
const (
	// BreakerClosed: jobs run.
	BreakerClosed BreakerState = iota
	// BreakerOpen: the queue is not consumed; its jobs wait in it.
	BreakerOpen
	// BreakerHalfOpen: a few trial jobs run.
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("BreakerState(%d)", int(s))
}

// BreakerObserver is told when the circuit breaker of a queue of the pool
// changes state. A pool calls it on each of its observers that implements
// it (metrics: warren_breaker_state, warren_breaker_transitions_total).
type BreakerObserver interface {
	BreakerChanged(queue string, state BreakerState)
}

// Breakers returns the state of every breaker of the pool that is not
// closed, by queue.
func (p *Pool) Breakers() map[string]BreakerState {
	out := map[string]BreakerState{}
	for _, q := range p.queues {
		if q.br != nil {
			if s := q.br.current(); s != BreakerClosed {
				out[q.queue.Name] = s
			}
		}
	}
	return out
}

// breakerSlices is how many slices a breaker's window is kept in.
const breakerSlices = 10

// breaker is the state of one queue's circuit breaker.
type breaker struct {
	pol BreakerPolicy

	mu    sync.Mutex
	state BreakerState
	// gen counts the state changes: an outcome counts only for the
	// state its job was admitted in.
	gen uint64
	// slices of the window, a ring by slice number (time / width).
	slices [breakerSlices]struct {
		n             int64
		total, failed int
	}
	cool            time.Duration // the current cool-down
	trials, passed  int           // half-open: trials started, and succeeded
	changed         chan struct{} // closed, and replaced, when trials may start or the state changed
	timer           *time.Timer   // open → half-open
	stopped         bool          // the pool stopped: no timer any more
	reason          error         // why it last opened
	failed, counted int           // the window's counts when it last opened
}

func newBreaker(pol BreakerPolicy) *breaker {
	return &breaker{pol: pol, cool: pol.CoolDown, changed: make(chan struct{})}
}

func (b *breaker) current() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// outcome is what a job's end tells a breaker.
type outcome int

const (
	outcomeNeutral outcome = iota // not counted: a permanent failure, a shutdown
	outcomeSuccess
	outcomeFailure
	outcomeTrip
)

// outcomeOf sorts a handler's result for the breaker.
func outcomeOf(f facts) outcome {
	switch {
	case !f.ran:
		return outcomeNeutral // settled without a handler: expired, a suspect, malformed
	case f.err == nil:
		return outcomeSuccess
	case f.shutdown:
		return outcomeNeutral
	case errors.Is(f.err, ErrBreakerTripped):
		return outcomeTrip
	}
	if class, final := classify(f.err, f.timedOut, f.panics); class == ClassPanic || !final {
		return outcomeFailure // a retried error, a timeout, a panic (even one dead-lettered)
	}
	return outcomeNeutral
}

// admit says whether a job received may start: at once when closed, never
// when open; when half-open, as one of the trials, else once the trials
// are decided (it waits). It returns the generation to record the job's
// outcome with. ok is false when the breaker is open, or, while it
// waited, stopCtx ended, lost (the consumer's channel lost) was closed, or
// held (a pause) became true: whatever stops the job waiting wakes it
// (wake).
func (b *breaker) admit(stopCtx context.Context, lost <-chan struct{}, held func() bool) (gen uint64, ok bool) {
	for {
		b.mu.Lock()
		switch {
		case held != nil && held():
			b.mu.Unlock()
			return 0, false
		case b.state == BreakerClosed:
			gen = b.gen
			b.mu.Unlock()
			return gen, true
		case b.state == BreakerOpen:
			b.mu.Unlock()
			return 0, false
		case b.trials < b.pol.HalfOpenJobs:
			b.trials++
			gen = b.gen
			b.mu.Unlock()
			return gen, true
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-stopCtx.Done():
			return 0, false
		case <-lost:
			return 0, false
		}
	}
}

// wake wakes the jobs waiting in admit, to look again.
func (b *breaker) wake() {
	b.mu.Lock()
	b.wakeLocked()
	b.mu.Unlock()
}

// newTrials starts the trials again when half-open: the queue is consumed
// anew (after a lost channel, or a pause), and trials admitted from the
// last consumer may never have run. Their outcomes, of the generation
// before, are not counted.
func (b *breaker) newTrials() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerHalfOpen {
		b.setLocked(BreakerHalfOpen)
	}
}

// wakeLocked wakes the jobs waiting in admit. b.mu must be held.
func (b *breaker) wakeLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// record counts a job's outcome, admitted in generation gen, and returns
// the state it moved to, and whether it moved.
func (b *breaker) record(now time.Time, gen uint64, o outcome, err error) (BreakerState, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o == outcomeTrip && b.state != BreakerOpen {
		b.reason = err
		b.failed, b.counted = 0, 0
		return b.openLocked(), true
	}
	if gen != b.gen || o == outcomeNeutral || o == outcomeTrip {
		if gen == b.gen && b.state == BreakerHalfOpen && o == outcomeNeutral {
			b.trials-- // it told nothing: another job tries
			b.wakeLocked()
		}
		return b.state, false
	}
	switch b.state {
	case BreakerClosed:
		width := b.pol.Window / breakerSlices
		n := now.UnixNano() / int64(max(width, 1))
		s := &b.slices[n%breakerSlices]
		if s.n != n {
			s.n, s.total, s.failed = n, 0, 0
		}
		s.total++
		if o == outcomeFailure {
			s.failed++
		}
		if o != outcomeFailure {
			return b.state, false
		}
		var total, failed int
		for _, s := range b.slices {
			if s.n > n-breakerSlices {
				total, failed = total+s.total, failed+s.failed
			}
		}
		if total >= b.pol.MinJobs && float64(failed) >= b.pol.FailureRatio*float64(total) {
			b.reason, b.failed, b.counted = nil, failed, total
			return b.openLocked(), true
		}
	case BreakerHalfOpen:
		if o == outcomeFailure {
			b.reason, b.failed, b.counted = nil, 1, 1
			return b.openLocked(), true
		}
		b.passed++
		if b.passed >= b.pol.HalfOpenJobs {
			b.setLocked(BreakerClosed)
			b.cool = b.pol.CoolDown
			return BreakerClosed, true
		}
	}
	return b.state, false
}

// openLocked opens the breaker: for the policy's cool-down from closed,
// for twice the last one from half-open. b.mu must be held.
func (b *breaker) openLocked() BreakerState {
	if b.state == BreakerHalfOpen {
		b.cool = min(2*b.cool, b.pol.MaxCoolDown)
	} else {
		b.cool = b.pol.CoolDown
	}
	b.setLocked(BreakerOpen)
	return BreakerOpen
}

// setLocked moves to state s: a new generation, an empty window, no
// trials. b.mu must be held.
func (b *breaker) setLocked(s BreakerState) {
	b.state = s
	b.gen++
	b.slices = [breakerSlices]struct {
		n             int64
		total, failed int
	}{}
	b.trials, b.passed = 0, 0
	b.wakeLocked()
}

// halfOpen moves an open breaker to half-open, when its cool-down ended;
// false when it was not open (or the pool stopped).
func (b *breaker) halfOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != BreakerOpen || b.stopped {
		return false
	}
	b.setLocked(BreakerHalfOpen)
	return true
}

// breakerAdmit admits d's job under q's breaker (see breaker.admit); a
// job not admitted goes back to the queue, unstarted. A queue without a
// breaker admits everything.
func (p *Pool) breakerAdmit(stopCtx context.Context, q *queueRun, cur *broker.Consumer, d *broker.Delivery) (gen uint64, ok bool) {
	if q.br == nil {
		return 0, true
	}
	gen, ok = q.br.admit(stopCtx, cur.Done(), q.paused.Load)
	if !ok {
		// The breaker may have opened a moment ago, its state not
		// applied yet: applied first, so the queue is marked held before
		// returnUnstarted cancels cur (serve would take a cancel of an
		// unheld queue for the broker's).
		p.applyBreaker(q)
		p.returnUnstarted(q, cur, d)
	}
	return gen, ok
}

// breakerRecord tells q's breaker the outcome of a job admitted in
// generation gen, and applies the state it moves to. A trip is applied
// even when another job's opened the breaker a moment before: its job
// goes back to the queue next (verdictReturn), which must wait until the
// consumer is cancelled, or the copy could come back to it.
func (p *Pool) breakerRecord(q *queueRun, gen uint64, f facts) {
	if q.br == nil {
		return
	}
	o := outcomeOf(f)
	if _, moved := q.br.record(time.Now(), gen, o, f.err); moved || o == outcomeTrip {
		p.applyBreaker(q)
	}
}

// applyBreaker carries out the state of q's breaker, whatever changes led
// to it (they may come from several goroutines at once: applying the
// current state, under q.brMu, keeps them in order):
//
//   - open: stop consuming (as a pause does), hold the marker, and start
//     the cool-down's timer;
//   - half-open: drop the marker, and consume again, with a prefetch of
//     HalfOpenJobs;
//   - closed: drop the marker, and consume again with the queue's own
//     prefetch (the half-open consumer is cancelled and replaced).
func (p *Pool) applyBreaker(q *queueRun) {
	q.brMu.Lock()
	defer q.brMu.Unlock()
	b := q.br
	b.mu.Lock()
	state, cool, reason, failed, counted, stopped := b.state, b.cool, b.reason, b.failed, b.counted, b.stopped
	b.mu.Unlock()
	if state == q.brApplied || stopped {
		return
	}
	prev := q.brApplied
	q.brApplied = state
	switch state {
	case BreakerOpen:
		e := q.log.Warn().Dur(logfield.CoolDown, cool)
		if reason != nil {
			e.Err(reason).Msg("worker: circuit breaker tripped by a handler: stopped consuming the queue; its jobs wait there")
		} else {
			e.Int(logfield.Failed, failed).Int(logfield.Jobs, counted).Str(logfield.From, prev.String()).
				Msg("worker: circuit breaker open: too many jobs failed; stopped consuming the queue, its jobs wait there")
		}
		q.tripped.Store(true)
		q.holdChanged()
		p.cancelCurrent(q, "circuit breaker")
		if q.brMarkerStop == nil && p.bgCtx != nil {
			ctx, cancel := context.WithCancel(p.bgCtx)
			q.brMarkerStop = cancel
			p.bg.Add(1)
			go func() {
				defer p.bg.Done()
				broker.HoldBreakerMarker(ctx, p.conn, q.queue.Name)
			}()
		}
		b.mu.Lock()
		if !b.stopped {
			if b.timer != nil {
				b.timer.Stop()
			}
			b.timer = time.AfterFunc(cool, func() {
				if b.halfOpen() {
					p.applyBreaker(q)
				}
			})
		}
		b.mu.Unlock()
	case BreakerHalfOpen:
		q.log.Info().Int(logfield.Jobs, b.pol.HalfOpenJobs).Msg("worker: circuit breaker half-open: consuming again for trial jobs")
		p.dropMarker(q) // it consumes the queue again: counted there
		q.tripped.Store(false)
		q.holdChanged()
		q.wake()
	case BreakerClosed:
		q.log.Info().Msg("worker: circuit breaker closed: the trial jobs succeeded; consuming as before")
		p.dropMarker(q)
		// The half-open consumer's prefetch is the trials': consume again
		// with the queue's.
		q.restart.Store(true)
		p.cancelCurrent(q, "circuit breaker closed")
	}
	for _, o := range p.observers {
		if bo, ok := o.(BreakerObserver); ok {
			bo.BreakerChanged(q.queue.Name, state)
		}
	}
}

// dropMarker stops holding q's breaker marker, if it does. q.brMu must be
// held.
func (p *Pool) dropMarker(q *queueRun) {
	if q.brMarkerStop != nil {
		q.brMarkerStop()
		q.brMarkerStop = nil
	}
}

// stopBreakers stops the breakers' timers and markers: the pool stops.
func (p *Pool) stopBreakers() {
	for _, q := range p.queues {
		if q.br == nil {
			continue
		}
		q.br.mu.Lock()
		q.br.stopped = true
		if q.br.timer != nil {
			q.br.timer.Stop()
		}
		q.br.wakeLocked()
		q.br.mu.Unlock()
		q.brMu.Lock()
		p.dropMarker(q)
		q.brMu.Unlock()
	}
}

// breakerStatus says which breakers are not closed, for Status.
func (p *Pool) breakerStatus() string {
	var open, half []string
	for q, s := range p.Breakers() {
		if s == BreakerOpen {
			open = append(open, q)
		} else {
			half = append(half, q)
		}
	}
	slices.Sort(open)
	slices.Sort(half)
	var parts []string
	if len(open) > 0 {
		parts = append(parts, "breaker open: "+strings.Join(open, ", "))
	}
	if len(half) > 0 {
		parts = append(parts, "breaker half-open: "+strings.Join(half, ", "))
	}
	return strings.Join(parts, "; ")
}
