package broker

import (
	"errors"
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// fakeFlusher records what a coalescer asks of a channel: messages are
// "buffered" until a flushed publish or a Flush sends them.
type fakeFlusher struct {
	mu       sync.Mutex
	buffered int   // messages written and not yet flushed
	sent     int   // messages flushed
	flushes  int   // Flush calls
	writes   int   // flushes of either kind: what write(2) would be
	fail     error // returned by the publishes when set
}

func (f *fakeFlusher) PublishUnflushed(_, _ string, _, _ bool, _ amqp.Publishing) (*amqp.DeferredConfirmation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	f.buffered++
	return nil, nil
}

func (f *fakeFlusher) PublishWithDeferredConfirm(_, _ string, _, _ bool, _ amqp.Publishing) (*amqp.DeferredConfirmation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	f.buffered++
	f.flushLocked()
	return nil, nil
}

func (f *fakeFlusher) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushes++
	f.flushLocked()
	return nil
}

func (f *fakeFlusher) flushLocked() {
	f.sent += f.buffered
	f.buffered = 0
	f.writes++
}

func (f *fakeFlusher) counts() (buffered, sent, flushes, writes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buffered, f.sent, f.flushes, f.writes
}

func TestCoalescerAloneFlushesAtOnce(t *testing.T) {
	var g coalescer
	var mu sync.Mutex
	ch := new(fakeFlusher)
	for range 3 {
		g.enter()
		mu.Lock()
		if err := g.publish(ch, "x", "k", false, amqp.Publishing{}); err != nil {
			t.Fatal(err)
		}
		if buffered, sent, _, _ := ch.counts(); buffered != 0 || sent == 0 {
			t.Fatalf("a writer alone left %d message(s) unflushed", buffered)
		}
		g.leave()
		mu.Unlock()
	}
	if buffered, sent, flushes, writes := ch.counts(); buffered != 0 || sent != 3 || flushes != 0 || writes != 3 {
		t.Fatalf("buffered %d, sent %d, Flush calls %d, writes %d; want 0, 3, 0, 3", buffered, sent, flushes, writes)
	}
}

// TestCoalescerLastInLineFlushes queues writers behind the first by hand:
// only the last one's leave writes, and it writes everything.
func TestCoalescerLastInLineFlushes(t *testing.T) {
	var g coalescer
	ch := new(fakeFlusher)
	const n = 5
	for range n {
		g.enter() // all queued before the first takes the lock
	}
	for i := range n {
		if err := g.publish(ch, "x", "k", false, amqp.Publishing{}); err != nil {
			t.Fatal(err)
		}
		if i < n-1 {
			if buffered, sent, _, _ := ch.counts(); buffered != i+1 || sent != 0 {
				t.Fatalf("writer %d of %d: %d buffered, %d sent; want %d, 0", i+1, n, buffered, sent, i+1)
			}
		}
		g.leave()
	}
	if buffered, sent, _, writes := ch.counts(); buffered != 0 || sent != n || writes != 1 {
		t.Fatalf("buffered %d, sent %d, writes %d; want 0, %d, 1", buffered, sent, writes, n)
	}
}

// TestCoalescerFailedWriterStillFlushes: a last writer that fails (or
// never publishes) still flushes what those before it left.
func TestCoalescerFailedWriterStillFlushes(t *testing.T) {
	var g coalescer
	ch := new(fakeFlusher)
	g.enter()
	g.enter()
	if err := g.publish(ch, "x", "k", false, amqp.Publishing{}); err != nil {
		t.Fatal(err)
	}
	g.leave()
	ch.mu.Lock()
	ch.fail = errors.New("channel closed")
	ch.mu.Unlock()
	if err := g.publish(ch, "x", "k", false, amqp.Publishing{}); err == nil {
		t.Fatal("the failing publish returned nil")
	}
	g.leave()
	if buffered, sent, flushes, _ := ch.counts(); buffered != 0 || sent != 1 || flushes != 1 {
		t.Fatalf("buffered %d, sent %d, Flush calls %d; want 0, 1, 1", buffered, sent, flushes)
	}
}

// TestCoalescerConcurrentWritersLeaveNothing: whatever the interleaving,
// once every writer has left, nothing is left in the buffer, and under
// contention fewer writes than messages happen.
func TestCoalescerConcurrentWritersLeaveNothing(t *testing.T) {
	var g coalescer
	var mu sync.Mutex
	ch := new(fakeFlusher)
	const writers, each = 16, 500
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				g.enter()
				mu.Lock()
				err := g.publish(ch, "x", "k", false, amqp.Publishing{})
				g.leave()
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	buffered, sent, _, writes := ch.counts()
	if buffered != 0 || sent != writers*each {
		t.Fatalf("after every writer left: %d buffered, %d sent; want 0, %d", buffered, sent, writers*each)
	}
	if g.unflushed != nil || g.queued.Load() != 0 {
		t.Fatalf("coalescer not at rest: unflushed %v, queued %d", g.unflushed, g.queued.Load())
	}
	t.Logf("%d messages in %d writes", sent, writes)
}
