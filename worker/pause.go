// Pausing and resuming queues across every pool (warren queue pause).

package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
)

// PauseRecheck is how often a pool reads the paused state of its queues
// from the broker (broker.PausedMarker), besides hearing each change at
// once on broker.ControlExchange: it catches a change whose message was
// lost while the pool reconnected.
const PauseRecheck = 30 * time.Second

// PauseObserver is told when a queue of the pool is paused or resumed. A
// pool calls it on each of its observers that implements it (metrics:
// warren_queue_paused).
type PauseObserver interface {
	QueuePaused(queue string, paused bool)
}

// Paused returns the queues of the pool that are paused, sorted.
func (p *Pool) Paused() []string {
	var out []string
	for _, q := range p.queues {
		if q.paused.Load() {
			out = append(out, q.queue.Name)
		}
	}
	slices.Sort(out)
	return out
}

// Status says what a readiness probe should show beside "ok": the paused
// queues, and the queues whose circuit breaker is open or half-open, if
// any. Neither makes the pool unready: a pause is what the operator asked
// for, a breaker protects a dependency that is down, and a deployment
// must not stall on either (nor a load balancer take away every worker).
func (p *Pool) Status() string {
	var parts []string
	if ps := p.Paused(); len(ps) > 0 {
		parts = append(parts, "paused: "+strings.Join(ps, ", "))
	}
	if bs := p.breakerStatus(); bs != "" {
		parts = append(parts, bs)
	}
	return strings.Join(parts, "; ")
}

// held counts the queues that something holds from being consumed.
func (p *Pool) held() int {
	n := 0
	for _, q := range p.queues {
		if q.holding() {
			n++
		}
	}
	return n
}

// readPaused reads the paused state of every queue from the broker and
// applies it.
func (p *Pool) readPaused(ctx context.Context) error {
	var errs []error
	for _, q := range p.queues {
		paused, err := broker.IsPaused(ctx, p.conn, q.queue.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.setPaused(q, paused)
	}
	return errors.Join(errs...)
}

// setPaused records q's state; pausing cancels its consumer (serve then
// lets the jobs running finish, returns those received and not started,
// and waits for the resume), resuming wakes serve.
func (p *Pool) setPaused(q *queueRun, paused bool) {
	if q.paused.Swap(paused) == paused {
		return
	}
	q.holdChanged()
	if paused {
		q.log.Info().Msg("worker: queue paused: finishing the jobs running; the others wait in the queue")
		p.cancelCurrent(q, "pause")
		if q.br != nil {
			q.br.wake() // jobs waiting for a half-open breaker's trials go back
		}
	} else {
		q.log.Info().Msg("worker: queue resumed")
		q.wake()
	}
	for _, o := range p.observers {
		if po, ok := o.(PauseObserver); ok {
			po.QueuePaused(q.queue.Name, paused)
		}
	}
}

// cancelCurrent cancels q's current consumer, if any, so that serve stops
// taking jobs from it (a hold, or a restart: why says which, for the log).
func (p *Pool) cancelCurrent(q *queueRun, why string) {
	if c := q.current(); c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.Cancel(ctx); err != nil {
			q.log.Warn().Err(err).Str(logfield.Reason, why).Msg("worker: cancel consumer")
		}
		cancel()
	}
}

// watchControl applies the pauses and resumes heard on
// broker.ControlExchange, and reads the broker's state after every
// (re)subscription and every PauseRecheck, until ctx ends.
func (p *Pool) watchControl(ctx context.Context) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 200*time.Millisecond, 10*time.Second, 0
	tick := time.NewTicker(p.pauseRecheck)
	defer tick.Stop()
	byName := make(map[string]*queueRun, len(p.queues))
	for _, q := range p.queues {
		byName[q.queue.Name] = q
	}
	for ctx.Err() == nil {
		msgs, err := broker.WatchControl(ctx, p.conn)
		if err == nil {
			err = p.readPaused(ctx) // what changed while nobody listened
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := b.NextBackOff()
			p.opts.log.Warn().Err(err).Dur(logfield.RetryIn, wait).Msg("worker: watch pause and resume")
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		b.Reset()
	listen:
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					break listen // the channel was lost: subscribe again
				}
				if q := byName[m.Queue]; q != nil {
					p.setPaused(q, m.Paused)
				}
			case <-tick.C:
				if err := p.readPaused(ctx); err != nil && ctx.Err() == nil {
					p.opts.log.Warn().Err(err).Msg("worker: read the paused queues")
				}
			}
		}
	}
}

// checkExists fails with broker.ErrNoQueue when q's queue does not exist.
func (p *Pool) checkExists(ctx context.Context, q *queueRun) error {
	d := broker.NewDeclarer(p.conn)
	defer d.Close(context.WithoutCancel(ctx))
	ok, err := d.QueueExists(ctx, q.queue.Name)
	if err == nil && !ok {
		err = fmt.Errorf("queue %q: %w", q.queue.Name, broker.ErrNoQueue)
	}
	return err
}

// reconsume consumes q again, after lost (nil: q was held, or not
// consumed yet): while q is held (paused, its breaker open) it waits for
// the hold to be released, then it tries
// with backoff until it consumes, ctx ends (nil, nil), or the queue cannot
// be consumed any more (the error).
func (p *Pool) reconsume(ctx context.Context, q *queueRun, b backoff.BackOff, lost error) (*broker.Consumer, error) {
	for {
		for q.holding() {
			select {
			case <-ctx.Done():
				return nil, nil
			case <-q.resumed:
			}
		}
		if lost != nil {
			wait := b.NextBackOff()
			select {
			case <-ctx.Done():
				return nil, nil
			case <-time.After(wait):
			}
		}
		next, err := p.consume(ctx, q)
		if err == nil {
			return next, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if errors.Is(err, broker.ErrNoQueue) && errors.Is(lost, broker.ErrConsumerCancelled) {
			// The cancel came while the queue was being deleted
			// (RabbitMQ 4 cancels a quorum queue's consumers before
			// it removes the queue): it is gone now.
			return nil, fmt.Errorf("worker: queue %q stopped: %w; consuming again: %w", q.queue.Name, lost, err)
		}
		if errors.Is(err, broker.ErrNoQueue) || p.conn.State() == broker.Closed {
			return nil, fmt.Errorf("worker: queue %q: %w", q.queue.Name, err)
		}
		if lost == nil {
			lost = err // wait before the next attempt
		}
		q.log.Warn().Err(err).Msg("worker: could not consume; retrying")
	}
}
