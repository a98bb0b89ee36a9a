package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeSettler records the acks of a batchAcker, checking each against the
// tags the test says are finished.
type fakeSettler struct {
	t        *testing.T
	mu       sync.Mutex // the test marks tags finished while the acker acks
	finished map[uint64]bool
	acked    uint64 // every tag up to it is acked
	acks     []string
	fail     error
}

// finish marks tag finished: from now on it may be acked.
func (f *fakeSettler) finish(tag uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finished[tag] = true
}

func (f *fakeSettler) Ack(tag uint64, multiple bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acks = append(f.acks, fmt.Sprintf("%d,%v", tag, multiple))
	if f.fail != nil {
		return f.fail
	}
	if !multiple {
		f.t.Errorf("Ack(%d, false): the acker acks with multiple set", tag)
	}
	if tag <= f.acked {
		f.t.Errorf("Ack(%d, true) after every tag up to %d was acked", tag, f.acked)
	}
	for t := f.acked + 1; t <= tag; t++ {
		if !f.finished[t] {
			f.t.Errorf("Ack(%d, true) acks tag %d, still being handled", tag, t)
		}
	}
	f.acked = tag
	return nil
}

// TestBatchAckerOrder drives the acker tag by tag: completions out of
// order, the batch threshold, flushes.
func TestBatchAckerOrder(t *testing.T) {
	cases := []struct {
		name   string
		batch  int
		finish []uint64 // in order of completion
		flush  bool     // flush at the end
		want   []string // the acks
	}{
		{"in order, batch of 2", 2, []uint64{1, 2, 3, 4, 5}, false, []string{"2,true", "4,true"}},
		{"in order, flushed", 2, []uint64{1, 2, 3}, true, []string{"2,true", "3,true"}},
		{"gap holds the ack", 2, []uint64{2, 3, 4}, true, nil},
		{"gap filled", 3, []uint64{3, 2, 4, 1}, false, []string{"4,true"}},
		{"reversed", 1, []uint64{5, 4, 3, 2, 1}, false, []string{"5,true"}},
		{"gap after a batch", 2, []uint64{1, 2, 4, 5, 6}, true, []string{"2,true"}},
		{"late tag below the batch", 4, []uint64{2, 1, 3}, true, []string{"3,true"}},
		{"nothing finished", 4, nil, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeSettler{t: t, finished: map[uint64]bool{}}
			a := newBatchAcker(f, c.batch)
			for _, tag := range c.finish {
				f.finish(tag)
				a.finish(tag)
				if a.pending() >= a.batch {
					if err := a.flush(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if c.flush {
				if err := a.flush(); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(f.acks, c.want) {
				t.Errorf("acks %v, want %v", f.acks, c.want)
			}
		})
	}
}

// TestBatchAckerRun: through run, with completions shuffled within a
// window as concurrent handlers finish them, every tag is acked once in
// the end and none before it finished.
func TestBatchAckerRun(t *testing.T) {
	for _, c := range []struct{ n, window, batch, buffer int }{
		{1, 1, 1, 0},
		{1000, 1, 32, 0},
		{1000, 16, 32, 16},
		{5000, 128, 32, 16},
		{5000, 128, 1, 1},
		{777, 300, 100, 300},
	} {
		t.Run(fmt.Sprintf("n=%d,window=%d,batch=%d", c.n, c.window, c.batch), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(c.n), uint64(c.window)))
			order := make([]uint64, c.n)
			for i := range order {
				order[i] = uint64(i + 1)
			}
			// Shuffle within consecutive windows: a handler finishes a tag
			// at most a window after it was delivered.
			for lo := 0; lo < c.n; lo += c.window {
				w := order[lo:min(lo+c.window, c.n)]
				rng.Shuffle(len(w), func(i, j int) { w[i], w[j] = w[j], w[i] })
			}
			f := &fakeSettler{t: t, finished: map[uint64]bool{}}
			a := newBatchAcker(f, c.batch)
			tags := make(chan uint64, c.buffer)
			done := make(chan error, 1)
			go func() { done <- a.run(tags) }()
			for _, tag := range order {
				// Marked before it is handed over: the acker may ack it
				// at once.
				f.finish(tag)
				tags <- tag
			}
			close(tags)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if f.acked != uint64(c.n) {
				t.Errorf("acked up to %d of %d tags", f.acked, c.n)
			}
			if len(a.finished) != 0 {
				t.Errorf("%d tags left waiting", len(a.finished))
			}
		})
	}
}

// TestBatchAckerRunAfterFailure: a failed ack ends the acking, but the
// acker takes every tag still handed to it, so no handler waits forever.
func TestBatchAckerRunAfterFailure(t *testing.T) {
	f := &fakeSettler{t: t, finished: map[uint64]bool{}, fail: errors.New("channel closed")}
	a := newBatchAcker(f, 1)
	tags := make(chan uint64)
	done := make(chan error, 1)
	go func() { done <- a.run(tags) }()
	for tag := uint64(1); tag <= 10; tag++ {
		tags <- tag
	}
	close(tags)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "channel closed") {
		t.Errorf("run = %v, want the ack's error", err)
	}
	if len(f.acks) != 1 {
		t.Errorf("acks %v, want one: none after the failure", f.acks)
	}
}

func TestAckBatch(t *testing.T) {
	for prefetch, want := range map[int]int{1: 1, 3: 1, 4: 1, 8: 2, 128: 32, 1000: 250} {
		if got := ackBatch(prefetch); got != want {
			t.Errorf("ackBatch(%d) = %d, want %d", prefetch, got, want)
		}
	}
}
