package worker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The breaker's state machine needs no broker: it is driven by outcomes
// and the clock given.

func testBreaker(t *testing.T, p BreakerPolicy) *breaker {
	t.Helper()
	pol, err := p.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newBreaker(pol)
}

func TestBreakerStateMachine(t *testing.T) {
	at := time.Unix(1_000_000, 0)
	fail, ok := outcomeFailure, outcomeSuccess
	for _, tc := range []struct {
		name string
		pol  BreakerPolicy
		// outcomes in the closed state, one per 100ms
		outcomes []outcome
		want     BreakerState
	}{
		{"below MinJobs stays closed", BreakerPolicy{MinJobs: 5}, []outcome{fail, fail, fail, fail}, BreakerClosed},
		{"MinJobs failures open", BreakerPolicy{MinJobs: 5}, []outcome{fail, fail, fail, fail, fail}, BreakerOpen},
		{"below the ratio stays closed", BreakerPolicy{MinJobs: 4, FailureRatio: 0.5}, []outcome{ok, ok, ok, fail, ok, fail}, BreakerClosed},
		{"at the ratio opens", BreakerPolicy{MinJobs: 4, FailureRatio: 0.5}, []outcome{ok, fail, ok, fail}, BreakerOpen},
		{"neutral outcomes are not counted", BreakerPolicy{MinJobs: 3}, []outcome{outcomeNeutral, outcomeNeutral, fail, fail}, BreakerClosed},
		{"a trip opens at once", BreakerPolicy{MinJobs: 100}, []outcome{ok, outcomeTrip}, BreakerOpen},
		{"failures older than the window do not count", BreakerPolicy{MinJobs: 3, Window: 250 * time.Millisecond}, []outcome{fail, fail, ok, ok, ok, ok, fail}, BreakerClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBreaker(t, tc.pol)
			now := at
			for _, o := range tc.outcomes {
				b.record(now, b.gen, o, errors.New("x"))
				now = now.Add(100 * time.Millisecond)
			}
			if got := b.current(); got != tc.want {
				t.Errorf("state %s, want %s", got, tc.want)
			}
		})
	}
}

// TestBreakerHalfOpen: after the cool-down, HalfOpenJobs trials are
// admitted and the others wait; all succeeding closes it; a failure
// reopens it for twice the cool-down, up to MaxCoolDown; a neutral
// outcome gives its trial back; an outcome of an earlier state is not
// counted.
func TestBreakerHalfOpen(t *testing.T) {
	ctx := context.Background()
	b := testBreaker(t, BreakerPolicy{MinJobs: 1, CoolDown: time.Second, MaxCoolDown: 3 * time.Second, HalfOpenJobs: 2})
	now := time.Unix(1_000_000, 0)
	closedGen := b.gen
	b.record(now, closedGen, outcomeFailure, nil)
	if b.current() != BreakerOpen || b.cool != time.Second {
		t.Fatalf("after a failure: %s for %s, want open for 1s", b.current(), b.cool)
	}
	if _, ok := b.admit(ctx, nil, nil); ok {
		t.Fatal("admitted while open")
	}
	for i, wantCool := range []time.Duration{2 * time.Second, 3 * time.Second, 3 * time.Second} {
		if !b.halfOpen() {
			t.Fatal("halfOpen refused")
		}
		gen, ok := b.admit(ctx, nil, nil)
		if !ok {
			t.Fatal("first trial not admitted")
		}
		b.record(now, closedGen, outcomeFailure, nil) // of an earlier state: not counted
		if b.current() != BreakerHalfOpen {
			t.Fatalf("round %d: an outcome of an earlier state counted", i)
		}
		b.record(now, gen, outcomeFailure, nil)
		if b.current() != BreakerOpen || b.cool != wantCool {
			t.Fatalf("round %d: after a failed trial %s for %s, want open for %s", i, b.current(), b.cool, wantCool)
		}
	}
	b.halfOpen()
	g1, _ := b.admit(ctx, nil, nil)
	g2, _ := b.admit(ctx, nil, nil)
	third := make(chan bool, 1)
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	go func() {
		_, ok := b.admit(tctx, nil, nil)
		third <- ok
	}()
	b.record(now, g1, outcomeNeutral, nil) // gives its trial back: the third is admitted
	if !<-third {
		t.Fatal("a trial given back did not admit the job waiting")
	}
	b.record(now, g2, outcomeSuccess, nil)
	if b.current() != BreakerHalfOpen {
		t.Fatalf("closed after one of two trials: %s", b.current())
	}
	b.record(now, g1, outcomeSuccess, nil)
	if b.current() != BreakerClosed || b.cool != time.Second {
		t.Fatalf("after the trials succeeded: %s, cool-down %s; want closed, 1s", b.current(), b.cool)
	}
	if _, ok := b.admit(ctx, nil, nil); !ok {
		t.Fatal("closed, and not admitted")
	}
}

// TestOutcomeOf: failures that retrying may fix count, and panics; bad
// input and the shutdown do not.
func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    facts
		want outcome
	}{
		{"success", facts{ran: true}, outcomeSuccess},
		{"no handler ran (expired, suspect)", facts{}, outcomeNeutral},
		{"error", facts{ran: true, err: errors.New("503")}, outcomeFailure},
		{"timeout", facts{ran: true, err: context.DeadlineExceeded, timedOut: true}, outcomeFailure},
		{"panic dead-lettered", facts{ran: true, err: &PanicError{Value: 1}, panics: DeadLetterPanics}, outcomeFailure},
		{"permanent", facts{ran: true, err: Permanent(errors.New("bad payload"))}, outcomeNeutral},
		{"unknown type", facts{ran: true, err: ErrUnknownType}, outcomeNeutral},
		{"shutdown", facts{ran: true, err: errors.New("x"), shutdown: true}, outcomeNeutral},
		{"trip", facts{ran: true, err: TripBreaker(errors.New("db down"))}, outcomeTrip},
	} {
		if got := outcomeOf(tc.f); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestDecideTrip: TripBreaker returns the job unchanged to the queue it
// came from on a queue with a breaker; without one it is a failure like
// another, retried.
func TestDecideTrip(t *testing.T) {
	err := TripBreaker(errors.New("db down"))
	v := decide(testFacts(func(f *facts) { f.ran, f.err, f.breaker = true, err, true }))
	if v.kind != verdictReturn || v.key != "jobs" || v.env.Attempt != 1 || v.env.Failure != nil {
		t.Errorf("with a breaker: %s to %q (attempt %d, failure %v), want return to jobs, unchanged", v.kind, v.key, v.env.Attempt, v.env.Failure)
	}
	v = decide(testFacts(func(f *facts) { f.ran, f.err = true, err }))
	if v.kind != verdictRetry {
		t.Errorf("without a breaker: %s, want retry", v.kind)
	}
}
