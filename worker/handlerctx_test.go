package worker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// waitDone waits for ctx to end, failing the test after a minute (a ctx
// that never ends, not a slow one).
func waitDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatalf("%s: ctx never ended", what)
	}
}

func TestHandlerCtxTimeout(t *testing.T) {
	var w watchdog
	defer w.stop()
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newHandlerCtx(parent, time.Now().Add(20*time.Millisecond))
	w.start(c)
	if dl, ok := c.Deadline(); !ok || !dl.Equal(c.deadline) {
		t.Errorf("Deadline() = %v, %v; want %v, true", dl, ok, c.deadline)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err() before the deadline = %v", err)
	}
	waitDone(t, c, "the timeout")
	if now := time.Now(); now.Before(c.deadline) {
		t.Errorf("ended %v before its deadline", c.deadline.Sub(now))
	}
	if err := c.Err(); err != context.DeadlineExceeded {
		t.Errorf("Err() = %v, want context.DeadlineExceeded", err)
	}
	if err := context.Cause(c); err != context.DeadlineExceeded {
		t.Errorf("context.Cause = %v, want context.DeadlineExceeded", err)
	}
	w.end(c)
	if err := c.Err(); err != context.DeadlineExceeded {
		t.Errorf("Err() after end = %v, want context.DeadlineExceeded still", err)
	}
}

// TestWatchdogNextJob: the watchdog's timer, armed for a job that
// finished, ends the next job's ctx at that job's deadline, not before.
func TestWatchdogNextJob(t *testing.T) {
	var w watchdog
	defer w.stop()
	first := newHandlerCtx(context.Background(), time.Now().Add(20*time.Millisecond))
	w.start(first)
	w.end(first)
	if err := first.Err(); err != context.Canceled {
		t.Errorf("Err() of a finished job = %v, want context.Canceled", err)
	}
	time.Sleep(5 * time.Millisecond) // so the second deadline is later
	second := newHandlerCtx(context.Background(), time.Now().Add(20*time.Millisecond))
	w.start(second)
	waitDone(t, second, "the second job's timeout")
	if now := time.Now(); now.Before(second.deadline) {
		t.Errorf("ended %v before its deadline (at the first job's?)", second.deadline.Sub(now))
	}
	if err := second.Err(); err != context.DeadlineExceeded {
		t.Errorf("Err() = %v, want context.DeadlineExceeded", err)
	}
	w.end(second)
}

func TestHandlerCtxParent(t *testing.T) {
	errShutdown := errors.New("shutdown deadline")
	t.Run("asked Err", func(t *testing.T) {
		parent, cancel := context.WithCancelCause(context.Background())
		c := newHandlerCtx(parent, time.Now().Add(time.Hour))
		cancel(errShutdown)
		if err := c.Err(); err != context.Canceled {
			t.Errorf("Err() = %v, want context.Canceled", err)
		}
		select {
		case <-c.Done():
		default:
			t.Error("Err() is set and Done is not closed")
		}
		if err := context.Cause(c); !errors.Is(err, errShutdown) {
			t.Errorf("context.Cause = %v, want the parent's cause", err)
		}
	})
	t.Run("waiting on Done", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		c := newHandlerCtx(parent, time.Now().Add(time.Hour))
		done := c.Done()
		cancel()
		waitDone(t, c, "the parent's end")
		<-done
		if err := c.Err(); err != context.Canceled {
			t.Errorf("Err() = %v, want context.Canceled", err)
		}
	})
	t.Run("earlier deadline", func(t *testing.T) {
		dl := time.Now().Add(time.Minute)
		parent, cancel := context.WithDeadline(context.Background(), dl)
		defer cancel()
		c := newHandlerCtx(parent, time.Now().Add(time.Hour))
		if got, ok := c.Deadline(); !ok || !got.Equal(dl) {
			t.Errorf("Deadline() = %v, %v; want the parent's %v", got, ok, dl)
		}
	})
	t.Run("values", func(t *testing.T) {
		type key struct{}
		c := newHandlerCtx(context.WithValue(context.Background(), key{}, "v"), time.Now().Add(time.Hour))
		if got := c.Value(key{}); got != "v" {
			t.Errorf("Value = %v, want the parent's", got)
		}
	})
}

// TestHandlerCtxEnd: what a handler derived from its ctx, or left running
// with it, ends when the handler returns, as with context.WithTimeout.
func TestHandlerCtxEnd(t *testing.T) {
	var w watchdog
	defer w.stop()
	c := newHandlerCtx(context.Background(), time.Now().Add(time.Hour))
	w.start(c)
	child, cancelChild := context.WithTimeout(c, time.Hour)
	defer cancelChild()
	ran := make(chan struct{})
	context.AfterFunc(c, func() { close(ran) })
	stopped := context.AfterFunc(c, func() { t.Error("a stopped AfterFunc ran") })
	if !stopped() {
		t.Error("stop of an AfterFunc not run yet returned false")
	}
	w.end(c)
	waitDone(t, child, "the child")
	if err := child.Err(); err != context.Canceled {
		t.Errorf("the child's Err() = %v, want context.Canceled", err)
	}
	select {
	case <-ran:
	case <-time.After(time.Minute):
		t.Fatal("the AfterFunc never ran")
	}
	late := make(chan struct{})
	context.AfterFunc(c, func() { close(late) })
	select {
	case <-late:
	case <-time.After(time.Minute):
		t.Fatal("an AfterFunc given after the end never ran")
	}
}

// TestProcessHandlerTimeout: a handler that waits for its ctx is stopped
// at the handler timeout, and its job retried as a timeout.
func TestProcessHandlerTimeout(t *testing.T) {
	var outs []Outcome
	h := HandlerFunc(func(ctx context.Context, _ *Job) error {
		<-ctx.Done()
		return ctx.Err()
	})
	p, q := benchPool(t, h, OutcomeFunc(func(o Outcome) { outs = append(outs, o) }))
	q.cfg.handlerTimeout = 20 * time.Millisecond
	var w watchdog
	defer w.stop()
	p.process(context.Background(), &w, q, benchDelivery(t), nopAck{}, 0, 0)
	if len(outs) != 1 {
		t.Fatalf("%d outcomes, want 1", len(outs))
	}
	if o := outs[0]; o.Status != Retried || o.Class != ClassTimeout {
		t.Errorf("outcome %v class %q, want %v class %q", o.Status, o.Class, Retried, ClassTimeout)
	}
}
