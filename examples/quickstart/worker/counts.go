package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/worker"
)

// counts tallies the outcomes the pool reports, from its handler
// goroutines.
type counts struct {
	succeeded, retried, deadLettered atomic.Int64
	// rejected: failed for good in a queue without a dead-letter target
	// (none in the quickstart). requeued: back to the queue untouched.
	rejected, requeued atomic.Int64
	// first and last are when the first outcome and the latest final one
	// came, in Unix nanoseconds.
	first, last atomic.Int64
}

// add counts o and returns how many jobs are done: they succeeded, or
// failed for good. A retried job is not done: it comes back.
func (c *counts) add(o worker.Outcome) int64 {
	now := time.Now().UnixNano()
	c.first.CompareAndSwap(0, now)
	switch o.Status {
	case worker.Succeeded:
		c.succeeded.Add(1)
	case worker.DeadLettered:
		c.deadLettered.Add(1)
	case worker.Rejected:
		c.rejected.Add(1)
	case worker.Retried:
		c.retried.Add(1)
		return c.done()
	case worker.Requeued:
		c.requeued.Add(1)
		return c.done()
	}
	c.last.Store(now)
	return c.done()
}

func (c *counts) done() int64 {
	return c.succeeded.Load() + c.deadLettered.Load() + c.rejected.Load()
}

// showProgress redraws a status line on w, a terminal, every 200 ms until
// the function it returns is called, which clears the line.
func (c *counts) showProgress(w io.Writer, until int64) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		var rate float64 // jobs done per second, smoothed over about a second
		prev, prevAt := c.done(), time.Now()
		for {
			select {
			case <-quit:
				fmt.Fprint(w, "\r\033[K")
				return
			case now := <-tick.C:
				n := c.done()
				rate += 0.3 * (float64(n-prev)/now.Sub(prevAt).Seconds() - rate)
				prev, prevAt = n, now
				total := ""
				if until > 0 {
					total = fmt.Sprintf("/%d", until)
				}
				fmt.Fprintf(w, "\r\033[Kdone %d%s   succeeded %d   retried %d   dead-lettered %d   %.0f jobs/s",
					n, total, c.succeeded.Load(), c.retried.Load(), c.deadLettered.Load(), rate)
			}
		}
	}()
	return func() {
		close(quit)
		wg.Wait()
	}
}

// print writes the summary.
func (c *counts) print(w io.Writer) {
	var elapsed time.Duration
	if first := c.first.Load(); first != 0 {
		elapsed = time.Duration(c.last.Load() - first)
	}
	rate := 0.0
	if elapsed > 0 {
		rate = float64(c.done()) / elapsed.Seconds()
	}
	fmt.Fprintf(w, "%d jobs done in %s (first to last), %.0f jobs/s\n", c.done(), elapsed.Round(time.Millisecond), rate)
	fmt.Fprintf(w, "  succeeded      %6d\n", c.succeeded.Load())
	fmt.Fprintf(w, "  dead-lettered  %6d\n", c.deadLettered.Load())
	if n := c.rejected.Load(); n > 0 {
		fmt.Fprintf(w, "  rejected       %6d  (no dead-letter queue)\n", n)
	}
	fmt.Fprintf(w, "  retried        %6d  (failed attempts sent back through the delay cascade)\n", c.retried.Load())
	if n := c.requeued.Load(); n > 0 {
		fmt.Fprintf(w, "  requeued       %6d  (returned to their queue untouched)\n", n)
	}
}
