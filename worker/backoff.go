package worker

import (
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/warrenmq/warren/topology"
)

// maxBackoffSteps bounds the steps taken to reach an attempt's interval;
// by then any policy is at its MaxInterval.
const maxBackoffSteps = 1000

// retryDelay returns how long the broker holds a job before the attempt
// after failed attempt n (1 for the first): the policy's exponential
// backoff, computed by cenkalti/backoff, capped at the policy's
// MaxInterval, then spread by its jitter (random, in [0, 1), picks the
// point in the spread, as cenkalti/backoff does with its own draw), capped
// at topology.MaxDelay, and at least one second, the cascade's
// resolution. A handler's RetryAfter overrides it.
func retryDelay(p topology.RetryPolicy, attempt int, err error, random float64) time.Duration {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return clampDelay(ra.d)
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval: p.InitialInterval,
		Multiplier:      p.Multiplier,
		MaxInterval:     p.MaxInterval,
		Stop:            backoff.Stop,
		Clock:           backoff.SystemClock,
	}
	b.Reset()
	d := b.NextBackOff()
	for i := 1; i < min(attempt, maxBackoffSteps); i++ {
		d = b.NextBackOff()
	}
	return clampDelay(jitter(d, p.Jitter, random))
}

// jitter spreads d by ± factor of it; random, in [0, 1), picks the point:
// cenkalti/backoff's formula, with the draw given.
func jitter(d time.Duration, factor, random float64) time.Duration {
	if factor == 0 {
		return d
	}
	delta := factor * float64(d)
	lo, hi := float64(d)-delta, float64(d)+delta
	return time.Duration(lo + random*(hi-lo+1))
}

func clampDelay(d time.Duration) time.Duration {
	return min(max(d, time.Second), topology.MaxDelay)
}
