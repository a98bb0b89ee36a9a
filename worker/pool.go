package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
	"github.com/warrenmq/warren/topology"
)

// Pool consumes work queues and runs handlers on their jobs. Build one with
// NewPool and call Run.
type Pool struct {
	conn    *broker.Conn
	topo    *topology.Topology
	handler Handler
	opts    options
	// observers are the connection's that observe jobs, then the pool's
	// own (WithObserver).
	observers []Observer
	queues    []*queueRun
	pub       *broker.Sender // retries, dead letters, quarantine, replies
	ownPub    bool
	send      sender        // what settling publishes through: pub's
	pause     time.Duration // settlePause, shorter in tests
	// pauseRecheck: PauseRecheck, shorter in tests.
	pauseRecheck time.Duration
	running      atomic.Bool

	consuming atomic.Int32 // queues with a live consumer
	stopping  atomic.Bool  // shutting down (draining) or stopped

	// gate lets jobs run side by side, each holding a weight of 1, or one
	// quarantined job alone, holding all of it (see quarantine.go). A
	// waiting isolation holds back the jobs that come after it.
	gate *semaphore.Weighted

	// typeLimits are the TypeRateLimit buckets, by job type; read-only
	// once built. limitMu is held to take a job's tokens, all at once
	// (see ratelimit.go).
	typeLimits map[string]*bucket
	limitMu    sync.Mutex

	valid *validation // WithValidator; nil without

	// queueGoneCheck, when set (by tests), replaces queueGone's question
	// to the broker.
	queueGoneCheck func() bool

	// bg owns the goroutines that hold breaker markers (breaker.go);
	// bgCtx, set by Run, ends when Run returns.
	bg    sync.WaitGroup
	bgCtx context.Context
}

// ErrNotReady is wrapped by Ready's errors.
var ErrNotReady = errors.New("worker: pool not ready")

// Ready returns nil while the pool consumes every one of its queues and is
// not shutting down: what a readiness probe asks. Otherwise the error says
// why (not started, a queue without its consumer, draining).
func (p *Pool) Ready() error {
	switch {
	case !p.running.Load():
		return fmt.Errorf("%w: not running", ErrNotReady)
	case p.stopping.Load():
		return fmt.Errorf("%w: shutting down", ErrNotReady)
	}
	if n, want := int(p.consuming.Load()), len(p.queues)-p.held(); n < want {
		return fmt.Errorf("%w: consuming %d of %d queues", ErrNotReady, n, want)
	}
	if err := p.conn.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	return nil
}

// Queues returns the names of the queues the pool consumes, in the order
// NewPool was given them (every work queue of the topology, without
// WithQueue); paused queues included (see Paused). The list is fixed
// when NewPool returns: what the broker shows changes as consumers come
// and go (a queue whose connection dropped has no consumer until the pool
// consumes it again), this does not.
func (p *Pool) Queues() []string {
	out := make([]string, len(p.queues))
	for i, q := range p.queues {
		out[i] = q.queue.Name
	}
	return out
}

// queueRun is one consumed queue.
type queueRun struct {
	cfg    queueOptions
	queue  topology.Queue
	log    zerolog.Logger
	policy sync.Map // job type -> topology.RetryPolicy
	topo   *topology.Topology

	// slots holds a token per handler running, of the current consumer
	// and of those it replaced: after a lost channel, the next consumer
	// starts at once while the last one's handlers finish, and the two
	// together never run more than the queue's concurrency.
	slots chan struct{}

	// limit is the queue's RateLimit bucket, nil for none.
	limit *bucket

	mu       sync.Mutex
	consumer *broker.Consumer // the current one, nil between two

	// kick wakes the queue's quarantine runner when a job was moved there
	// (buffer 1: one pending wake-up is enough, more are dropped).
	kick chan struct{}

	// The queue is consumed while nothing holds it: paused (warren queue
	// pause asked the pools to stop consuming it, pause.go), tripped (its
	// circuit breaker is open, breaker.go). resumed wakes serve when a
	// hold is released (buffer 1: one pending wake-up is enough).
	paused  atomic.Bool
	tripped atomic.Bool
	resumed chan struct{}
	// holdMu guards holdCh, closed (and replaced) when paused or tripped
	// changes, to wake the jobs waiting for their rate limit (sleep).
	holdMu sync.Mutex
	holdCh chan struct{}
	// restart: the consumer was cancelled to consume again at once, with
	// another prefetch (a breaker closed), not to stop consuming.
	restart atomic.Bool

	// br is the queue's circuit breaker, nil for none. brMu orders the
	// changes applied (applyBreaker): brApplied is the state last
	// applied, brMarkerStop stops holding the breaker's marker.
	br           *breaker
	brMu         sync.Mutex
	brApplied    BreakerState
	brMarkerStop context.CancelFunc
}

// holding reports whether something holds q from being consumed: a
// pause, or its circuit breaker.
func (q *queueRun) holding() bool { return q.paused.Load() || q.tripped.Load() }

// holdChanges returns a channel closed at the next change of q's holds.
func (q *queueRun) holdChanges() <-chan struct{} {
	q.holdMu.Lock()
	defer q.holdMu.Unlock()
	return q.holdCh
}

// holdChanged wakes those watching q's holds (holdChanges); call it after
// paused or tripped changed.
func (q *queueRun) holdChanged() {
	q.holdMu.Lock()
	close(q.holdCh)
	q.holdCh = make(chan struct{})
	q.holdMu.Unlock()
}

// wake wakes serve, waiting for a hold on q to be released.
func (q *queueRun) wake() {
	select {
	case q.resumed <- struct{}{}:
	default:
	}
}

// takeSlot waits for a free slot of q and takes it; false when stopCtx
// ends or cur's channel is lost first.
func (q *queueRun) takeSlot(stopCtx context.Context, cur *broker.Consumer) bool {
	// A free slot is taken without the select, which costs more.
	select {
	case q.slots <- struct{}{}:
		return true
	default:
	}
	select {
	case q.slots <- struct{}{}:
		return true
	case <-stopCtx.Done():
	case <-cur.Done():
	}
	return false
}

func (q *queueRun) current() *broker.Consumer {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.consumer
}

func (q *queueRun) setCurrent(c *broker.Consumer) {
	q.mu.Lock()
	q.consumer = c
	q.mu.Unlock()
}

func (q *queueRun) retryPolicy(jobType string) topology.RetryPolicy {
	if p, ok := q.policy.Load(jobType); ok {
		return p.(topology.RetryPolicy)
	}
	p := q.topo.RetryPolicy(q.queue.Name, jobType)
	q.policy.Store(jobType, p)
	return p
}

// NewPool returns a pool that consumes, on conn, the work queues of topo
// named by WithQueue (every work queue of topo without it), and hands
// their jobs to h, usually a *Mux. The topology must have been applied
// (warren topology apply) so the queues, their dead-letter queues and the
// delay cascade exist.
func NewPool(conn *broker.Conn, topo *topology.Topology, h Handler, opts ...Option) (*Pool, error) {
	if conn == nil || topo == nil || h == nil {
		return nil, errors.New("worker: NewPool needs a connection, a topology and a handler")
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if len(o.queues) == 0 {
		for _, q := range topo.WorkQueues() {
			o.queues = append(o.queues, queueOptions{name: q.Name})
		}
		if len(o.queues) == 0 {
			return nil, errors.New("worker: the topology has no work queue to consume")
		}
	}
	p := &Pool{conn: conn, topo: topo, handler: h, opts: o, gate: semaphore.NewWeighted(isolated)}
	if o.validator != nil {
		p.valid = &validation{v: o.validator, log: o.log}
	}
	if len(o.typeLimits) > 0 {
		p.typeLimits = make(map[string]*bucket, len(o.typeLimits))
		for jt, l := range o.typeLimits {
			p.typeLimits[jt] = l.bucket()
		}
	}
	var problems []error
	for _, qo := range o.queues {
		q, ok := topo.Queue(qo.name)
		switch {
		case !ok:
			problems = append(problems, fmt.Errorf("worker: queue %q is not in the topology; add it to the file or consume one of %v", qo.name, queueNames(topo.WorkQueues())))
			continue
		case q.Derived:
			problems = append(problems, fmt.Errorf("worker: queue %q is derived by warren (dead letters, quarantine or delays); workers consume work queues only", qo.name))
			continue
		case q.QuarantineQueue == "":
			problems = append(problems, fmt.Errorf("worker: queue %q has no quarantine queue in the topology", qo.name))
			continue
		}
		if qo.concurrency == 0 {
			qo.concurrency = DefaultConcurrency
		}
		if qo.prefetch == 0 {
			qo.prefetch = min(2*qo.concurrency, 65535)
		}
		if qo.prefetch < qo.concurrency {
			problems = append(problems, fmt.Errorf("worker: queue %q: prefetch %d is below the concurrency %d, so %d handlers would always wait; raise the prefetch", qo.name, qo.prefetch, qo.concurrency, qo.concurrency-qo.prefetch))
		}
		if qo.handlerTimeout == 0 {
			qo.handlerTimeout = o.handlerTimeout
		}
		run := &queueRun{
			cfg:     qo,
			queue:   q,
			topo:    topo,
			log:     o.log.With().Str(logfield.Queue, q.Name).Logger(),
			slots:   make(chan struct{}, qo.concurrency),
			kick:    make(chan struct{}, 1),
			resumed: make(chan struct{}, 1),
			holdCh:  make(chan struct{}),
		}
		if qo.breaker != nil {
			run.br = newBreaker(*qo.breaker)
		}
		switch {
		case qo.limit.n > 0 && qo.global.n > 0:
			problems = append(problems, fmt.Errorf("worker: queue %q: give RateLimit (this pool's) or GlobalRateLimit (shared by the queue's consumers), not both", qo.name))
		case qo.limit.n > 0:
			run.limit = qo.limit.bucket()
		case qo.global.n > 0:
			// This pool's share until it reads the queue's consumers.
			run.limit = qo.global.bucket()
		}
		if l := cmp.Or(qo.limit, qo.global); l.n > 0 {
			// The last job of a full prefetch waits this long for its
			// turn, unacked: past RabbitMQ's consumer_timeout, the broker
			// closes the channel.
			if wait := time.Duration(qo.prefetch-1) * l.per / time.Duration(l.n); wait > maxRateWait {
				run.log.Warn().Int(logfield.Prefetch, qo.prefetch).Dur(logfield.Wait, wait).
					Msg("worker: with this rate limit, prefetched jobs wait unacked longer than RabbitMQ's consumer_timeout may allow; lower Prefetch or raise consumer_timeout")
			}
		}
		p.queues = append(p.queues, run)
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	p.observers = observersOf(conn, o.observers)
	p.pub = o.sender
	if p.pub == nil {
		pub, err := broker.NewSender(conn, broker.WithPublisherLogger(o.log))
		if err != nil {
			return nil, err
		}
		p.pub, p.ownPub = pub, true
	}
	p.send, p.pause, p.pauseRecheck = brokerSender{p.pub}, settlePause, PauseRecheck
	return p, nil
}

func queueNames(qs []topology.Queue) []string {
	names := make([]string, len(qs))
	for i, q := range qs {
		names[i] = q.Name
	}
	return names
}

// Run consumes until ctx ends, then shuts down and returns nil. It returns
// an error when a consumer cannot start (its queue is missing: apply the
// topology), when the broker cancels one (its queue was deleted), or when
// the connection is closed for good. A pool runs once.
//
// A consumer whose channel or connection is lost is started again, on the
// connection the Conn re-establishes: the jobs it had delivered and not
// settled are requeued by the broker and delivered again (their handlers,
// if still running, finish, but their acks fail: a delivery is never
// settled on another channel than its own). Ready reports false meanwhile.
//
// Shutdown, in order:
//  1. the consumers are cancelled: the broker sends nothing more;
//  2. the handlers in flight finish, for up to the shutdown timeout; then
//     their ctx is cancelled, and a job whose handler returns an error
//     goes back to its queue untouched;
//  3. the deliveries prefetched but not started go back to their queue,
//     published again unchanged as new messages (so that none comes back
//     marked redelivered, a suspect: see quarantine.go), else with
//     basic.nack and requeue; those waiting for a rate limit go back as
//     the shutdown begins, once their consumer is cancelled (so the copy
//     is not delivered to this pool again);
//  4. the grouped acks are sent and the channels closed gracefully, so no
//     ack is lost; a publisher the pool made is closed.
//
// Every delivery is settled exactly once. A handler that ignores its ctx
// keeps Run waiting up to a further shutdown timeout; then Run closes the
// channels anyway (the broker requeues the job) and returns an error,
// leaving that handler's goroutine behind.
func (p *Pool) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("worker: Run called twice; build a new pool")
	}
	defer p.stopping.Store(true)
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	p.bgCtx = bgCtx
	defer func() {
		p.stopBreakers()
		stopBG()
		p.bg.Wait()
	}()
	if err := p.checkQuarantines(ctx); err != nil {
		return errors.Join(err, p.closePublisher())
	}
	// A queue paused (warren queue pause) is not consumed until resumed.
	if err := p.readPaused(ctx); err != nil {
		p.opts.log.Warn().Err(err).Msg("worker: could not read which queues are paused; consuming them all until told otherwise")
	}
	// The first consumers start here, so a missing queue fails Run at once.
	first := make([]*broker.Consumer, len(p.queues))
	for i, q := range p.queues {
		var c *broker.Consumer
		var err error
		if q.holding() {
			err = p.checkExists(ctx, q) // a missing queue fails Run here too
		} else {
			c, err = p.consume(ctx, q)
		}
		if err != nil {
			for _, c := range first[:i] {
				if c != nil {
					p.closeConsumer(c)
				}
			}
			return errors.Join(fmt.Errorf("worker: %w", err), p.closePublisher())
		}
		first[i] = c
	}
	// A global rate limit is shared from the start: this pool's consumers
	// count, and the others'.
	if p.hasGlobal() {
		p.shareGlobal(ctx)
	}
	p.opts.log.Info().Int(logfield.Queues, len(p.queues)).Msg("worker: pool running")

	// stopCtx ends when the pool starts shutting down (ctx ended or a
	// consumer failed for good); jobCtx ends at the shutdown deadline, to
	// make the handlers still running give up.
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	jobCtx, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()

	var handlers, loops sync.WaitGroup
	failed := make(chan error, len(p.queues)) // one per queue at most
	for _, q := range p.queues {
		// A handler: it runs quarantined jobs, which shutdown waits for.
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			p.runQuarantine(stopCtx, jobCtx, q)
		}()
	}
	loops.Add(1)
	go func() {
		defer loops.Done()
		p.watchControl(stopCtx)
	}()
	if p.hasGlobal() {
		loops.Add(1)
		go func() {
			defer loops.Done()
			p.refreshGlobal(stopCtx)
		}()
	}
	for i, q := range p.queues {
		loops.Add(1)
		// serve holds a count of handlers for as long as it runs, so the
		// handlers it starts again after a lost channel are never added
		// to a count of zero that shutdown may be waiting on.
		handlers.Add(1)
		go func() {
			defer loops.Done()
			defer handlers.Done()
			if err := p.serve(stopCtx, jobCtx, q, first[i], &handlers); err != nil {
				failed <- err
				stop()
			}
		}()
	}

	<-stopCtx.Done()
	p.stopping.Store(true)
	var runErr error
	select {
	case runErr = <-failed:
		p.opts.log.Error().Err(runErr).Msg("worker: a consumer stopped; shutting the pool down")
	default:
		p.opts.log.Info().Msg("worker: shutting down: cancelling consumers, finishing jobs in flight")
	}

	// 1. Stop the deliveries.
	p.cancelConsumers()

	// 2. Let the handlers finish within the deadline.
	var shutdownErr error
	if !waitTimeout(&handlers, p.opts.shutdownTimeout) {
		p.opts.log.Warn().Dur(logfield.Timeout, p.opts.shutdownTimeout).Msg("worker: jobs still running at the shutdown deadline; cancelling them")
		abandon()
		if !waitTimeout(&handlers, max(p.opts.shutdownTimeout, time.Second)) {
			shutdownErr = errors.New("worker: handlers still running after their ctx was cancelled; their jobs return to the queue when the channels close, and may run twice")
		}
	}
	loops.Wait()
	// A consumer started again just as the pool stopped is cancelled too.
	p.cancelConsumers()

	// 3. Return what was prefetched and not started.
	for _, q := range p.queues {
		if c := q.current(); c != nil {
			if n := p.requeueRest(q, c); n > 0 {
				q.log.Debug().Int(logfield.Jobs, n).Msg("worker: returned prefetched jobs to the queue")
			}
		}
	}

	// 4. Last acks, graceful close.
	var errs []error
	for _, q := range p.queues {
		if c := q.current(); c != nil {
			if err := p.closeConsumer(c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, p.closePublisher())
	p.opts.log.Info().Msg("worker: pool stopped")
	return errors.Join(runErr, shutdownErr, errors.Join(errs...))
}

// serve runs q's handlers on c's deliveries, and on those of the
// consumers that replace it when its channel or connection is lost, until
// stopCtx ends (nil) or the queue cannot be consumed any more (the error).
func (p *Pool) serve(stopCtx, jobCtx context.Context, q *queueRun, c *broker.Consumer, handlers *sync.WaitGroup) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, 10*time.Second, 0
	for {
		if c == nil { // held (paused, breaker open) before it was consumed
			next, err := p.reconsume(stopCtx, q, b, nil)
			if err != nil || next == nil {
				return err
			}
			c = next
			q.log.Info().Msg("worker: consuming")
		}
		q.setCurrent(c)
		if q.holding() {
			// Paused, or its breaker opened, while c was being made:
			// setPaused or applyBreaker found no consumer to cancel.
			ctx, cancel := context.WithTimeout(stopCtx, 10*time.Second)
			_ = c.Cancel(ctx)
			cancel()
		}
		p.consuming.Add(1)
		var workers sync.WaitGroup
		ended := make(chan struct{}) // closed once c delivers no more
		var endOnce sync.Once
		cur := c // c changes when this one is replaced; its workers keep it
		for range q.cfg.concurrency {
			workers.Add(1)
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				defer workers.Done()
				defer endOnce.Do(func() { close(ended) })
				var w watchdog // the handler timeout of this goroutine's jobs
				defer w.stop()
				for stopCtx.Err() == nil && !q.holding() {
					// After a lost channel, cur is done: its deliveries
					// are back in the queue.
					select {
					case <-cur.Done():
						return
					default:
					}
					d, ok := cur.Next(stopCtx)
					if !ok {
						return
					}
					gen, ok := p.breakerAdmit(stopCtx, q, cur, d)
					if !ok {
						continue // its breaker opened: it waits in the queue
					}
					l := p.limitsOf(q, d)
					l.gen = gen
					if p.typeReady(l) {
						if !q.takeSlot(stopCtx, cur) {
							p.returnUnstarted(q, cur, d)
							return
						}
						started := p.start(stopCtx, jobCtx, &w, q, cur, d, l)
						<-q.slots
						if started {
							continue
						}
					}
					// Its type's turn may be far off: it waits in a
					// goroutine of its own, without a slot, and the
					// queue's other jobs go on.
					l.since = time.Now()
					workers.Add(1)
					handlers.Add(1)
					go func() {
						defer handlers.Done()
						defer workers.Done()
						p.awaitType(stopCtx, jobCtx, q, cur, d, l)
					}()
				}
			}()
		}
		workersDone := make(chan struct{})
		go func() {
			workers.Wait()
			close(workersDone)
		}()
		<-ended
		if stopCtx.Err() == nil {
			// A consumer the broker cancelled keeps its channel, and its
			// handlers' acks count: wait for them. A lost channel took its
			// deliveries back to the queue (their acks fail): consume again
			// at once, while its handlers finish in the slots they hold.
			select {
			case <-workersDone:
			case <-c.Done():
			}
		}
		p.consuming.Add(-1)
		if stopCtx.Err() != nil {
			return nil // Run's shutdown settles and closes c
		}
		err := c.Err()
		if err == nil && (q.holding() || q.restart.Swap(false)) {
			// Paused, or its breaker open: the jobs running are done;
			// those received and not started go back to the queue, and
			// serve waits for the hold to be released (reconsume). Or
			// restarted: it consumes again at once.
			if n := p.requeueRest(q, c); n > 0 {
				q.log.Debug().Int(logfield.Jobs, n).Msg("worker: not consuming: returned prefetched jobs to the queue")
			}
			p.closeConsumer(c)
			q.setCurrent(nil)
			c = nil
			continue
		}
		switch {
		case err == nil || errors.Is(err, broker.ErrConsumerCancelled):
			// Cancelled by the broker: the queue was deleted, or (in a
			// cluster) moved; only the first stops the pool.
			err = cmp.Or(err, broker.ErrConsumerCancelled)
			if p.queueGone(stopCtx, q) {
				return fmt.Errorf("worker: queue %q stopped: %w", q.queue.Name, err)
			}
		case p.conn.State() == broker.Closed:
			return fmt.Errorf("worker: queue %q stopped: %w", q.queue.Name, p.conn.Err())
		}
		// The channel or the connection was lost, or the broker cancelled
		// the consumer of a queue that still answered: its deliveries are
		// back in the queue. Consume again, once the Conn is back.
		q.log.Warn().Err(err).Msg("worker: consumer lost; consuming again")
		p.closeConsumer(c)
		q.setCurrent(nil)
		next, err := p.reconsume(stopCtx, q, b, err)
		if err != nil || next == nil {
			return err
		}
		c = next
		q.log.Info().Msg("worker: consuming again")
		b.Reset()
	}
}

// checkQuarantines checks that the quarantine queue of every queue of the
// pool exists: without it, a job that kills its workers could not be
// isolated.
func (p *Pool) checkQuarantines(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d := broker.NewDeclarer(p.conn)
	defer d.Close(context.WithoutCancel(ctx))
	for _, q := range p.queues {
		if _, err := d.QueueInfo(ctx, q.queue.QuarantineQueue); err != nil {
			if errors.Is(err, broker.ErrNoQueue) {
				return fmt.Errorf("worker: queue %q has no quarantine queue %q on the broker (it holds jobs that may crash workers, to run them alone): apply the topology again: %w", q.queue.Name, q.queue.QuarantineQueue, err)
			}
			return fmt.Errorf("worker: %w", err)
		}
	}
	return nil
}

// queueGone reports whether q no longer exists (a failed check says it
// does: consuming again will tell).
func (p *Pool) queueGone(ctx context.Context, q *queueRun) bool {
	if p.queueGoneCheck != nil {
		return p.queueGoneCheck()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := broker.NewDeclarer(p.conn)
	defer d.Close(context.WithoutCancel(ctx))
	_, err := d.QueueInfo(ctx, q.queue.Name)
	return errors.Is(err, broker.ErrNoQueue)
}

// consume starts a consumer of q: with the queue's prefetch, or, while
// its breaker is half-open, with as many as the trial jobs.
func (p *Pool) consume(ctx context.Context, q *queueRun) (*broker.Consumer, error) {
	prefetch := q.cfg.prefetch
	if q.br != nil && q.br.current() == BreakerHalfOpen {
		prefetch = min(prefetch, q.br.pol.HalfOpenJobs)
		q.br.newTrials()
	}
	return broker.Consume(ctx, p.conn, q.queue.Name,
		broker.WithPrefetch(prefetch),
		broker.WithConsumerLogger(p.opts.log)) // the consumer names the queue itself
}

// cancelConsumers stops the deliveries of the current consumers.
func (p *Pool) cancelConsumers() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, q := range p.queues {
		if c := q.current(); c != nil {
			if err := c.Cancel(ctx); err != nil {
				q.log.Warn().Err(err).Msg("worker: cancel consumer")
			}
		}
	}
}

func (p *Pool) closeConsumer(c *broker.Consumer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Close(ctx)
}

func (p *Pool) closePublisher() error {
	if !p.ownPub {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.pub.Close(ctx)
}

// requeueRest returns to the queue the deliveries c received and no
// handler took. c must be cancelled: Next then returns false once they are
// drained.
//
// None of them ran, so none should come back as a suspect (see
// quarantine.go): a plain requeue would mark it redelivered. Each is
// published to its queue again, unchanged, as a new message (through the
// default exchange), and acked once the broker confirms the copy; one the
// broker delivered again before (a suspect already), or whose copy fails,
// is requeued as it is.
func (p *Pool) requeueRest(q *queueRun, c *broker.Consumer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var rest []*broker.Delivery
	for {
		d, ok := c.Next(ctx)
		if !ok {
			break
		}
		rest = append(rest, d)
	}
	p.putBack(ctx, q, c, rest)
	return len(rest)
}

// putBack returns ds, deliveries of c that no handler took, to q as
// requeueRest says; a delivery whose channel is lost is back in the queue
// already, and is not copied.
//
// c is cancelled first, if it is not yet (Cancel waits for the broker's
// answer; a second call does nothing). A job that stops waiting for its
// rate limit or its breaker, as the pool stops or the queue is held,
// comes here from its own goroutine, before whatever stops c has
// cancelled it; a copy published to q, or a delivery requeued, while c
// still consumes q could be delivered to c itself, then returned, and
// reported Requeued, a second time.
func (p *Pool) putBack(ctx context.Context, q *queueRun, c *broker.Consumer, ds []*broker.Delivery) {
	if len(ds) == 0 {
		return
	}
	if err := c.Cancel(ctx); err != nil {
		// Returned all the same: at worst a copy comes back to c, and
		// goes back again.
		q.log.Warn().Err(err).Msg("worker: cancel consumer before returning jobs not started")
	}
	type copied struct {
		d    *broker.Delivery
		conf confirmation
	}
	var copies []copied
	requeue := func(d *broker.Delivery) {
		p.observed(ctx, q, d, func(ctx context.Context, _ facts, out *Outcome) {
			p.settle(ctx, q, d, d, verdict{kind: verdictRequeue}, out)
		})
	}
	lost := func() bool {
		select {
		case <-c.Done():
			return true
		default:
			return false
		}
	}
	for _, d := range ds {
		if d.Err == nil && !d.Redelivered && !lost() {
			e := *d.Envelope
			if conf, err := p.send.send(ctx, &e, "", q.queue.Name); err == nil {
				copies = append(copies, copied{d, conf})
				continue
			}
		}
		requeue(d)
	}
	for _, cp := range copies {
		if err := cp.conf.Wait(ctx); err != nil {
			requeue(cp.d)
			continue
		}
		p.observed(ctx, q, cp.d, func(_ context.Context, _ facts, out *Outcome) {
			p.ackCopied(q, cp.d, cp.d, out)
		})
	}
}

// waitTimeout waits for wg up to d; it reports whether wg finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
