package worker

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/warrenmq/warren/topology"
)

func TestRetryDelay(t *testing.T) {
	p := topology.RetryPolicy{MaxAttempts: 10, InitialInterval: 2 * time.Second, MaxInterval: time.Minute, Multiplier: 3}
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{1, 2 * time.Second},
		{2, 6 * time.Second},
		{3, 18 * time.Second},
		{4, 54 * time.Second},
		{5, time.Minute},
		{1_000_000, time.Minute},
	} {
		if got := retryDelay(p, tc.attempt, errors.New("x"), rand.Float64()); got != tc.want {
			t.Errorf("attempt %d: delay %s, want %s", tc.attempt, got, tc.want)
		}
	}
}

func TestRetryDelayJitterStaysInRange(t *testing.T) {
	p := topology.RetryPolicy{MaxAttempts: 5, InitialInterval: 10 * time.Second, MaxInterval: time.Hour, Multiplier: 2, Jitter: 0.2}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := retryDelay(p, 2, errors.New("x"), rand.Float64()) // 20s ± 20%
		if d < 16*time.Second || d > 24*time.Second {
			t.Fatalf("delay %s outside 16s..24s", d)
		}
		seen[d.Round(time.Second)] = true
	}
	if len(seen) < 3 {
		t.Errorf("jitter gave only %d distinct delays", len(seen))
	}
}

func TestRetryDelayBounds(t *testing.T) {
	fast := topology.RetryPolicy{MaxAttempts: 3, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, Multiplier: 2}
	if got := retryDelay(fast, 1, errors.New("x"), rand.Float64()); got != time.Second {
		t.Errorf("sub-second delay: %s, want the cascade's 1s resolution", got)
	}
	if got := retryDelay(fast, 1, RetryAfter(90*time.Second, errors.New("x")), rand.Float64()); got != 90*time.Second {
		t.Errorf("RetryAfter: %s", got)
	}
	if got := retryDelay(fast, 1, RetryAfter(100*365*24*time.Hour, errors.New("x")), rand.Float64()); got != topology.MaxDelay {
		t.Errorf("RetryAfter beyond MaxDelay: %s", got)
	}
}
