package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/broker"
)

// handlerCtx is the ctx a handler runs with: its parent's values and end,
// and an end of its own at the handler timeout, when its Err becomes
// context.DeadlineExceeded, as context.WithTimeout's would. It ends with
// context.Canceled when its handler returns (watchdog.end).
//
// It is what WithTimeout gives, at a fraction of the cost per job:
// WithTimeout starts a timer for every job and, under the pool's job
// context, registers with it (a lock all the pool's handlers share, and a
// map). Here the timeout is kept by one watchdog per handler goroutine,
// whose timer is armed once per timeout rather than per job, and the
// parent is watched only once a handler asks for Done or derives a ctx
// that needs it (AfterFunc): a handler that only passes its ctx on, or
// checks Err, pays for neither.
type handlerCtx struct {
	parent   context.Context
	deadline time.Time
	// corr is the job's correlation id, answered for broker.CorrelationKey
	// without a context.WithValue per job.
	corr string

	ended atomic.Bool  // set by cancel, once err is
	err   error        // why c ended; written once, before ended
	done  atomic.Value // chan struct{}; made by the first Done, closed by cancel

	mu     sync.Mutex   // orders cancel with Done and AfterFunc
	stop   func() bool  // ends the watch of the parent, once Done made it
	afters []*afterFunc // AfterFunc's, run by cancel
}

// closedDone is the Done of a handlerCtx that ended before anyone asked
// for it.
var closedDone = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newHandlerCtx(parent context.Context, deadline time.Time) *handlerCtx {
	c := new(handlerCtx)
	c.init(parent, deadline)
	return c
}

// init makes c, a zero handlerCtx, end at deadline or with parent.
func (c *handlerCtx) init(parent context.Context, deadline time.Time) {
	c.parent, c.deadline = parent, deadline
}

// Deadline is the handler's deadline, or its parent's when earlier.
func (c *handlerCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

// correlationKey is broker.CorrelationKey().
var correlationKey = broker.CorrelationKey()

func (c *handlerCtx) Value(key any) any {
	if key == correlationKey && c.corr != "" {
		return c.corr
	}
	return c.parent.Value(key)
}

// Err reads the parent's too: until Done is asked for, the parent's end
// is learnt here.
func (c *handlerCtx) Err() error {
	if c.ended.Load() {
		return c.err
	}
	if err := c.parent.Err(); err != nil {
		c.cancel(err)
		return c.err // ended now, by this cancel or another
	}
	return nil
}

func (c *handlerCtx) Done() <-chan struct{} {
	if d := c.done.Load(); d != nil {
		return d.(chan struct{})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.doneLocked()
}

// doneLocked makes the done channel, and starts watching the parent so
// that its end closes it.
func (c *handlerCtx) doneLocked() chan struct{} {
	if d := c.done.Load(); d != nil {
		return d.(chan struct{})
	}
	if c.ended.Load() {
		return closedDone
	}
	d := make(chan struct{})
	c.done.Store(d)
	if c.parent.Done() != nil {
		c.stop = context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
	}
	return d
}

// AfterFunc arranges for f to run in a goroutine of its own once c ends,
// as context.AfterFunc does. It is what a ctx derived from c
// (context.WithCancel, WithTimeout) registers with, instead of starting a
// goroutine to wait for c.
func (c *handlerCtx) AfterFunc(f func()) func() bool {
	a := &afterFunc{f: f}
	c.mu.Lock()
	if c.ended.Load() {
		c.mu.Unlock()
		a.run()
		return a.stop
	}
	c.doneLocked()
	c.afters = append(c.afters, a)
	c.mu.Unlock()
	return a.stop
}

// cancel ends c with err, once: closes its done channel, stops watching
// the parent and runs the AfterFunc's.
func (c *handlerCtx) cancel(err error) {
	c.mu.Lock()
	if c.ended.Load() {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.ended.Store(true)
	if d := c.done.Load(); d != nil {
		close(d.(chan struct{}))
	}
	stop, afters := c.stop, c.afters
	c.stop, c.afters = nil, nil
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	for _, a := range afters {
		a.run()
	}
}

func (c *handlerCtx) String() string { return "worker.handlerCtx" }

// afterFunc is one func given to handlerCtx.AfterFunc: it runs once, or is
// stopped before.
type afterFunc struct {
	once sync.Once
	f    func()
}

func (a *afterFunc) run() { a.once.Do(func() { go a.f() }) }

func (a *afterFunc) stop() bool {
	stopped := false
	a.once.Do(func() { stopped = true })
	return stopped
}

// watchdog ends a handler's ctx at its deadline, for the jobs of one
// handler goroutine, one at a time. One timer serves them all: armed for
// the first job's deadline, and, when it fires for a job that has
// finished since, armed again for the current one's. Jobs that finish
// within the timeout, all but the stuck ones, never touch it. stop it
// when the goroutine is done.
type watchdog struct {
	mu    sync.Mutex
	timer *time.Timer
	at    time.Time   // when timer fires; zero when it is not armed
	cur   *handlerCtx // the ctx of the handler running, nil between two
}

// start watches c, the ctx of the handler the goroutine runs next.
func (w *watchdog) start(c *handlerCtx) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur = c
	if !w.at.IsZero() && !c.deadline.Before(w.at) {
		return // fires first; fire arms it again for c
	}
	w.at = c.deadline
	if w.timer == nil {
		w.timer = time.AfterFunc(time.Until(c.deadline), w.fire)
		return
	}
	w.timer.Reset(time.Until(c.deadline))
}

// end cancels c, whose handler returned.
func (w *watchdog) end(c *handlerCtx) {
	w.mu.Lock()
	if w.cur == c {
		w.cur = nil
	}
	w.mu.Unlock()
	c.cancel(context.Canceled)
}

// fire ends the current handler's ctx if its deadline passed, or waits
// for it.
func (w *watchdog) fire() {
	w.mu.Lock()
	c := w.cur
	w.at = time.Time{}
	if c != nil {
		if wait := time.Until(c.deadline); wait > 0 {
			w.at = c.deadline
			w.timer.Reset(wait)
			c = nil
		}
	}
	w.mu.Unlock()
	if c != nil {
		c.cancel(context.DeadlineExceeded)
	}
}

// stop disarms the timer: the goroutine runs no more handlers.
func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur, w.at = nil, time.Time{}
	if w.timer != nil {
		w.timer.Stop()
	}
}
