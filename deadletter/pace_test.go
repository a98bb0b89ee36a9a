package deadletter

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// TestPacer: any rate works, from more jobs a second than a clock ticks
// to one a year, and a wait past the deadline ends at once.
func TestPacer(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		n    int // jobs paced within a second
	}{
		{0, 1000},
		{math.Inf(1), 1000},
		{2e9, 1000},
		{1e300, 1000},
	} {
		pace := pacer(ReplayOptions{Rate: tc.rate})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		for i := range tc.n {
			if err := pace(ctx); err != nil {
				t.Fatalf("rate %v: job %d: %v", tc.rate, i, err)
			}
		}
		cancel()
	}

	pace := pacer(ReplayOptions{Rate: 1.0 / (365 * 24 * 3600)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pace(ctx); err != nil { // the first is free
		t.Fatal(err)
	}
	start := time.Now()
	if err := pace(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Errorf("the second job a year later: %v after %v; want DeadlineExceeded at once", err, time.Since(start))
	}
	if !(pacer(ReplayOptions{Rate: 5, DryRun: true})(ctx) == nil) {
		t.Error("a dry run is paced")
	}
}

func TestReplayRejectsBadRates(t *testing.T) {
	for _, r := range []float64{-1, math.NaN(), math.Inf(-1)} {
		if _, err := Replay(context.Background(), nil, nil, "q", ReplayOptions{Rate: r}); err == nil {
			t.Errorf("rate %v: no error", r)
		}
	}
}
