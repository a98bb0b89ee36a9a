package worker

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

// The verdict tests need no broker: decide is a function of its facts.

var (
	verdictNow  = time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	verdictWork = topology.Queue{
		Name:                 "jobs",
		QuarantineQueue:      "jobs.quarantine",
		DeadLetterExchange:   "jobs.dlx",
		DeadLetterRoutingKey: "jobs.dead",
	}
	// No jitter, so delays are exact: 2s, 4s, 8s, … capped at 10s.
	verdictPolicy = topology.RetryPolicy{MaxAttempts: 3, InitialInterval: 2 * time.Second, MaxInterval: 10 * time.Second, Multiplier: 2}
)

// testDelivery is a well-formed first delivery from the work queue.
func testDelivery() *broker.Delivery {
	return &broker.Delivery{
		Envelope: &broker.Envelope{
			ID:         "job-1",
			Type:       "email.send",
			Attempt:    1,
			Body:       []byte{0x81, 0xa1, 'a', 0x01},
			Expiration: "60000",
		},
		Queue:      "jobs",
		Exchange:   "work",
		RoutingKey: "email.send",
	}
}

// testFacts returns the facts of testDelivery before its handler ran,
// changed by each of mod.
func testFacts(mod ...func(*facts)) facts {
	f := facts{
		d:          testDelivery(),
		work:       verdictWork,
		policy:     verdictPolicy,
		maxBytes:   16,
		panics:     RetryPanics,
		crashLimit: 3,
		host:       "worker-7",
		now:        verdictNow,
	}
	for _, m := range mod {
		m(&f)
	}
	return f
}

// handled marks the facts as those after the handler returned err.
func handled(err error) func(*facts) {
	return func(f *facts) { f.ran, f.err = true, err }
}

func attempt(n int) func(*facts) {
	return func(f *facts) { f.d.Envelope.Attempt = n }
}

func request(f *facts) { f.d.Envelope.ReplyTo = "amq.rabbitmq.reply-to.abc" }

func fromQuarantine(f *facts) { f.d.Queue = verdictWork.QuarantineQueue }

func redelivered(f *facts) { f.d.Redelivered = true }

func shutdown(f *facts) { f.shutdown = true }

func TestDecide(t *testing.T) {
	panicked := &PanicError{Value: "boom", Stack: []byte("goroutine 7 [running]:\nmain.handler()")}
	type want struct {
		kind          verdictKind
		class         string
		cause         error // matched with errors.Is
		exchange, key string
		delay         time.Duration
		attempt       int // of the envelope published, when there is one
		crashes       int
		pause         bool
	}
	retryTo := func(d time.Duration, attempt int, class string, cause error) want {
		ex, key, err := topology.DelayRoute(verdictWork.Name, d)
		if err != nil {
			t.Fatal(err)
		}
		return want{kind: verdictRetry, class: class, cause: cause, exchange: ex, key: key, delay: d, attempt: attempt}
	}
	deadLetter := func(class string, cause error, attempt int) want {
		return want{kind: verdictDeadLetter, class: class, cause: cause, exchange: "jobs.dlx", key: "jobs.dead", attempt: attempt}
	}
	errFailed := errors.New("smtp: 421 try later")

	for _, tc := range []struct {
		name string
		f    facts
		want want
	}{
		// Before the handler.
		{"first delivery runs", testFacts(), want{kind: verdictRun}},
		{"malformed is dead-lettered as it came", testFacts(func(f *facts) { f.d.Err = broker.ErrMissingType }),
			deadLetter(ClassMalformed, broker.ErrMissingType, 1)},
		{"malformed from the quarantine, redelivered, is dead-lettered, no crash counted",
			testFacts(fromQuarantine, redelivered, func(f *facts) { f.d.Err = broker.ErrMalformedEnvelope }),
			deadLetter(ClassMalformed, broker.ErrMalformedEnvelope, 1)},
		{"malformed without a dead-letter target is rejected",
			testFacts(func(f *facts) { f.d.Err = broker.ErrMissingType; f.work.DeadLetterExchange = "" }),
			want{kind: verdictReject, class: ClassMalformed, cause: broker.ErrMissingType, attempt: 1}},
		{"body one byte over the limit", testFacts(func(f *facts) { f.maxBytes = len(f.d.Envelope.Body) - 1 }),
			deadLetter(ClassTooLarge, broker.ErrBodyTooLarge, 1)},
		{"body at the limit runs", testFacts(func(f *facts) { f.maxBytes = len(f.d.Envelope.Body) }), want{kind: verdictRun}},
		{"deadline passed", testFacts(request, func(f *facts) { f.d.Envelope.Deadline = verdictNow.Add(-time.Millisecond) }),
			want{kind: verdictExpired}},
		{"deadline now is not passed", testFacts(request, func(f *facts) { f.d.Envelope.Deadline = verdictNow }),
			want{kind: verdictRun}},
		{"expired before suspect", testFacts(redelivered, func(f *facts) { f.d.Envelope.Deadline = verdictNow.Add(-time.Second) }),
			want{kind: verdictExpired}},
		{"redelivered on the work queue is a suspect", testFacts(redelivered),
			want{kind: verdictQuarantine, key: "jobs.quarantine", attempt: 1}},
		{"from the quarantine, not redelivered, runs", testFacts(fromQuarantine), want{kind: verdictRun}},
		{"from the quarantine, redelivered: first crash", testFacts(fromQuarantine, redelivered),
			want{kind: verdictCrash, key: "jobs.quarantine", attempt: 1, crashes: 1}},
		{"second crash below the limit", testFacts(fromQuarantine, redelivered, func(f *facts) { f.d.Envelope.Crashes = 1 }),
			want{kind: verdictCrash, key: "jobs.quarantine", attempt: 1, crashes: 2}},
		{"crash at the limit is dead-lettered", testFacts(fromQuarantine, redelivered, func(f *facts) { f.d.Envelope.Crashes = 2 }),
			want{kind: verdictDeadLetter, class: ClassCrash, cause: errCrashLimit, exchange: "jobs.dlx", key: "jobs.dead", attempt: 1, crashes: 3}},
		{"crash count stops at MaxAttempt", testFacts(fromQuarantine, redelivered, func(f *facts) {
			f.d.Envelope.Crashes, f.crashLimit = broker.MaxAttempt, broker.MaxAttempt+5
		}), want{kind: verdictCrash, key: "jobs.quarantine", attempt: 1, crashes: broker.MaxAttempt}},
		{"crash count decided even after a handler ran", testFacts(fromQuarantine, redelivered, handled(nil)),
			want{kind: verdictCrash, key: "jobs.quarantine", attempt: 1, crashes: 1}},

		// After the handler: success.
		{"done", testFacts(handled(nil)), want{kind: verdictAck}},
		{"done at shutdown is still done", testFacts(handled(nil), shutdown), want{kind: verdictAck}},
		{"request done: reply, then ack", testFacts(request, handled(nil)), want{kind: verdictReply}},
		{"reply queue missing", testFacts(request, handled(nil), func(f *facts) { f.replyErr = fmt.Errorf("x: %w", broker.ErrUnroutable) }),
			deadLetter(ClassReply, broker.ErrUnroutable, 1)},
		{"reply queue missing at shutdown", testFacts(request, handled(nil), shutdown, func(f *facts) { f.replyErr = broker.ErrUnroutable }),
			deadLetter(ClassReply, broker.ErrUnroutable, 1)},
		{"result cannot be encoded", testFacts(request, handled(nil), attempt(1), func(f *facts) { f.replyErr = fmt.Errorf("%w: chan", broker.ErrInvalidJob) }),
			deadLetter(ClassPermanent, broker.ErrInvalidJob, 1)},
		{"result cannot be encoded, at shutdown", testFacts(request, handled(nil), shutdown, func(f *facts) { f.replyErr = broker.ErrInvalidJob }),
			want{kind: verdictRequeue, cause: broker.ErrInvalidJob}},
		{"reply publish failed", testFacts(request, handled(nil), func(f *facts) { f.replyErr = broker.ErrNacked }),
			want{kind: verdictRequeue, cause: broker.ErrNacked, pause: true}},
		{"reply publish failed at shutdown", testFacts(request, handled(nil), shutdown, func(f *facts) { f.replyErr = broker.ErrNacked }),
			want{kind: verdictRequeue, cause: broker.ErrNacked, pause: true}},

		// After the handler: failures, attempts and backoff.
		{"first failure", testFacts(handled(errFailed)), retryTo(2*time.Second, 2, ClassError, errFailed)},
		{"no attempt header counts as the first", testFacts(handled(errFailed), attempt(0)), retryTo(2*time.Second, 2, ClassError, errFailed)},
		{"second failure backs off", testFacts(handled(errFailed), attempt(2)), retryTo(4*time.Second, 3, ClassError, errFailed)},
		{"last attempt", testFacts(handled(errFailed), attempt(3)), deadLetter(ClassError, errFailed, 3)},
		{"past the last attempt (policy lowered)", testFacts(handled(errFailed), attempt(9)), deadLetter(ClassError, errFailed, 9)},
		{"at MaxAttempt", testFacts(handled(errFailed), attempt(broker.MaxAttempt)), deadLetter(ClassError, errFailed, broker.MaxAttempt)},
		{"backoff capped at MaxInterval", testFacts(handled(errFailed), attempt(5), func(f *facts) { f.policy.MaxAttempts = 10 }),
			retryTo(10*time.Second, 6, ClassError, errFailed)},
		{"one attempt only", testFacts(handled(errFailed), func(f *facts) { f.policy.MaxAttempts = 1 }), deadLetter(ClassError, errFailed, 1)},
		{"timeout", testFacts(handled(errFailed), func(f *facts) { f.timedOut = true }), retryTo(2*time.Second, 2, ClassTimeout, errFailed)},
		{"timeout on the last attempt", testFacts(handled(errFailed), attempt(3), func(f *facts) { f.timedOut = true }),
			deadLetter(ClassTimeout, errFailed, 3)},
		{"handler asks for a delay", testFacts(handled(RetryAfter(90*time.Second, errFailed))), retryTo(90*time.Second, 2, ClassError, errFailed)},
		{"handler's delay rounds up to 1s", testFacts(handled(RetryAfter(200*time.Millisecond, errFailed))), retryTo(time.Second, 2, ClassError, errFailed)},
		{"handler's delay capped at MaxDelay", testFacts(handled(RetryAfter(100*365*24*time.Hour, errFailed))),
			retryTo(topology.MaxDelay, 2, ClassError, errFailed)},
		{"handler's delay on the last attempt", testFacts(handled(RetryAfter(time.Minute, errFailed)), attempt(3)),
			deadLetter(ClassError, errFailed, 3)},
		{"permanent", testFacts(handled(Permanent(errFailed))), deadLetter(ClassPermanent, ErrPermanent, 1)},
		{"permanent by %w", testFacts(handled(fmt.Errorf("no such user: %w", ErrPermanent))), deadLetter(ClassPermanent, ErrPermanent, 1)},
		{"unknown type", testFacts(handled(fmt.Errorf("%w %q", ErrUnknownType, "x"))), deadLetter(ClassUnknownType, ErrUnknownType, 1)},
		{"undecodable body", testFacts(handled(fmt.Errorf("%w: short", broker.ErrBadBody))), deadLetter(ClassDecode, broker.ErrBadBody, 1)},
		{"body too large for the decoder", testFacts(handled(broker.ErrBodyTooLarge)), deadLetter(ClassTooLarge, broker.ErrBodyTooLarge, 1)},
		{"payload refused by the validator", testFacts(handled(&schemaError{err: errFailed})), deadLetter(ClassSchema, broker.ErrInvalidPayload, 1)},
		{"handler's publish refused by a validator is retried", testFacts(handled(fmt.Errorf("publish: %w", broker.ErrInvalidPayload))),
			retryTo(2*time.Second, 2, ClassError, broker.ErrInvalidPayload)},
		{"panic is retried", testFacts(handled(panicked)), retryTo(2*time.Second, 2, ClassPanic, panicked)},
		{"panic on the last attempt", testFacts(handled(panicked), attempt(3)), deadLetter(ClassPanic, panicked, 3)},
		{"panic dead-lettered by policy", testFacts(handled(panicked), func(f *facts) { f.panics = DeadLetterPanics }),
			deadLetter(ClassPanic, panicked, 1)},
		{"failure at shutdown goes back untouched", testFacts(handled(errFailed), shutdown), want{kind: verdictRequeue, cause: errFailed}},
		{"permanent failure at shutdown goes back untouched", testFacts(handled(Permanent(errFailed)), shutdown),
			want{kind: verdictRequeue, cause: errFailed}},
		{"last attempt at shutdown goes back untouched", testFacts(handled(errFailed), attempt(3), shutdown),
			want{kind: verdictRequeue, cause: errFailed}},
		{"failure of a request is retried without a reply", testFacts(request, handled(errFailed)), retryTo(2*time.Second, 2, ClassError, errFailed)},
		{"dead letter keyed by the delivery's routing key without x-dead-letter-routing-key",
			testFacts(handled(errFailed), attempt(3), func(f *facts) { f.work.DeadLetterRoutingKey = "" }),
			want{kind: verdictDeadLetter, class: ClassError, cause: errFailed, exchange: "jobs.dlx", key: "email.send", attempt: 3}},
		{"final failure without a dead-letter target is rejected",
			testFacts(handled(Permanent(errFailed)), func(f *facts) { f.work.DeadLetterExchange = "" }),
			want{kind: verdictReject, class: ClassPermanent, cause: errFailed, attempt: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := *tc.f.d.Envelope
			v := decide(tc.f)
			got := want{kind: v.kind, class: v.class, cause: tc.want.cause, exchange: v.exchange, key: v.key,
				delay: v.delay, crashes: v.crashes, pause: v.pause}
			if v.env != nil {
				got.attempt = v.env.Attempt
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{}), cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
			if tc.want.cause == nil && v.cause != nil {
				t.Errorf("cause %v, want none", v.cause)
			}
			if tc.want.cause != nil && !errors.Is(v.cause, tc.want.cause) {
				t.Errorf("cause %v, want one matching %v", v.cause, tc.want.cause)
			}
			if v.routeErr != nil {
				t.Errorf("route error %v", v.routeErr)
			}
			// decide changes nothing of the delivery.
			if diff := cmp.Diff(before, *tc.f.d.Envelope); diff != "" {
				t.Errorf("decide changed the envelope (-before +after):\n%s", diff)
			}
			if v.env == tc.f.d.Envelope {
				t.Error("the envelope to publish is the delivery's own, not a copy")
			}
			switch v.kind {
			case verdictRetry, verdictDeadLetter, verdictReject:
				checkFailure(t, tc.f, v)
			case verdictQuarantine, verdictCrash:
				// The job moves unchanged, a crash counted.
				e := before
				e.Crashes = v.crashes
				if v.kind == verdictQuarantine {
					e.Crashes = before.Crashes
				}
				if diff := cmp.Diff(e, *v.env); diff != "" {
					t.Errorf("quarantine copy (-want +got):\n%s", diff)
				}
			default:
				if v.env != nil {
					t.Errorf("%s verdict publishes %+v", v.kind, v.env)
				}
			}
		})
	}
}

// checkFailure checks the failure recorded in a retry or dead letter.
func checkFailure(t *testing.T, f facts, v verdict) {
	t.Helper()
	fl := v.env.Failure
	if fl == nil {
		t.Fatal("no failure recorded")
	}
	if fl.Class != v.class || fl.WorkerHost != "worker-7" {
		t.Errorf("failure class %q host %q, want %q worker-7", fl.Class, fl.WorkerHost, v.class)
	}
	if !fl.FailedAt.Equal(verdictNow) || fl.FailedAt.Location() != time.UTC || !fl.FirstFailedAt.Equal(verdictNow) {
		t.Errorf("failed at %v, first %v; want %v in UTC", fl.FailedAt, fl.FirstFailedAt, verdictNow)
	}
	if !strings.HasPrefix(fl.Error, v.cause.Error()) {
		t.Errorf("failure text %q, want the cause %q", fl.Error, v.cause)
	}
	var pe *PanicError
	if errors.As(v.cause, &pe) && !strings.Contains(fl.Error, string(pe.Stack)) {
		t.Errorf("a panic's failure text has no stack: %q", fl.Error)
	}
	wantOrigin := broker.Origin{Exchange: f.d.Exchange, RoutingKey: f.d.RoutingKey, Queue: f.d.Queue}
	if f.d.Queue == f.work.QuarantineQueue {
		wantOrigin = broker.Origin{RoutingKey: "jobs", Queue: "jobs"}
	}
	if fl.Origin != wantOrigin {
		t.Errorf("origin %+v, want %+v", fl.Origin, wantOrigin)
	}
	if v.env.Expiration != "" {
		t.Errorf("expiration %q kept: it would cut the delay short", v.env.Expiration)
	}
	if v.env.ID != f.d.Envelope.ID || string(v.env.Body) != string(f.d.Envelope.Body) {
		t.Errorf("published %s %q, want the job itself", v.env.ID, v.env.Body)
	}
}

func TestDecideKeepsTheFirstFailure(t *testing.T) {
	first := verdictNow.Add(-time.Hour)
	prevOrigin := broker.Origin{Exchange: "orders", RoutingKey: "order.paid", Queue: "jobs"}
	f := testFacts(handled(errors.New("again")), attempt(2), func(f *facts) {
		f.d.Exchange, f.d.RoutingKey = "", "jobs" // back from the cascade
		f.d.Envelope.Failure = &broker.Failure{Class: ClassError, FirstFailedAt: first, FailedAt: first, Origin: prevOrigin}
	})
	v := decide(f)
	if v.kind != verdictRetry {
		t.Fatalf("verdict %s, want retry", v.kind)
	}
	if fl := v.env.Failure; !fl.FirstFailedAt.Equal(first) || !fl.FailedAt.Equal(verdictNow) || fl.Origin != prevOrigin {
		t.Errorf("failure %+v: want first failed at %v, failed now, origin %+v", fl, first, prevOrigin)
	}
}

func TestDecideRouteError(t *testing.T) {
	// A delay the cascade cannot hold is not a verdict settle could carry
	// out: it is reported with the retry, and settling treats it as a
	// failed publish (see TestSettlePublishFailsNoAck).
	v := decide(testFacts(handled(errors.New("x")), func(f *facts) { f.work.Name = "" }))
	if v.kind != verdictRetry || v.routeErr == nil {
		t.Errorf("verdict %s, route error %v; want a retry with a route error", v.kind, v.routeErr)
	}
}

func TestAfterReply(t *testing.T) {
	later := verdictNow.Add(3 * time.Second)
	v := decide(testFacts(request, handled(nil), func(f *facts) { f.result = "ok" }))
	if v.kind != verdictReply || v.result != "ok" {
		t.Fatalf("verdict %s result %v, want a reply of ok", v.kind, v.result)
	}
	for _, tc := range []struct {
		err      error
		shutdown bool
		want     verdictKind
		class    string
	}{
		{broker.ErrUnroutable, false, verdictDeadLetter, ClassReply},
		{broker.ErrInvalidJob, false, verdictDeadLetter, ClassPermanent},
		{broker.ErrInvalidJob, true, verdictRequeue, ""},
		{broker.ErrClosed, false, verdictRequeue, ""},
	} {
		t.Run(fmt.Sprint(tc.err, tc.shutdown), func(t *testing.T) {
			next := v.afterReply(tc.err, tc.shutdown, later)
			if next.kind != tc.want || next.class != tc.class {
				t.Fatalf("after %v: %s %q, want %s %q", tc.err, next.kind, next.class, tc.want, tc.class)
			}
			if next.env != nil && !next.env.Failure.FailedAt.Equal(later) {
				t.Errorf("failed at %v, want the time the reply failed, %v", next.env.Failure.FailedAt, later)
			}
		})
	}
}

// TestDecideJitter: the retry delay's jitter comes from the facts, so a
// verdict is the same every time, and its edges can be checked.
func TestDecideJitter(t *testing.T) {
	policy := topology.RetryPolicy{MaxAttempts: 5, InitialInterval: 10 * time.Second, MaxInterval: 30 * time.Second, Multiplier: 2, Jitter: 0.5}
	for _, tc := range []struct {
		name    string
		attempt int
		random  float64
		policy  func(*topology.RetryPolicy)
		want    time.Duration
	}{
		{"shortest", 1, 0, nil, 5 * time.Second},
		{"middle", 1, 0.5, nil, 10*time.Second + 1}, // cenkalti/backoff's +1 ns
		{"longest", 1, 0.999999999, nil, 15 * time.Second},
		{"second attempt, shortest", 2, 0, nil, 10 * time.Second},
		{"spread around MaxInterval, not capped by it", 4, 0.999999999, nil, 45 * time.Second},
		{"at least a second", 1, 0, func(p *topology.RetryPolicy) { p.InitialInterval = time.Second }, time.Second},
		{"no jitter ignores the draw", 1, 0.9, func(p *topology.RetryPolicy) { p.Jitter = 0 }, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := testFacts(handled(errors.New("x")), attempt(tc.attempt), func(f *facts) {
				f.policy, f.random = policy, tc.random
				if tc.policy != nil {
					tc.policy(&f.policy)
				}
			})
			v := decide(f)
			if v.kind != verdictRetry {
				t.Fatalf("verdict %s, want retry", v.kind)
			}
			if got := v.delay.Round(time.Millisecond); got != tc.want.Round(time.Millisecond) {
				t.Errorf("delay %s, want %s", v.delay, tc.want)
			}
			if again := decide(f); again.delay != v.delay {
				t.Errorf("same facts, delays %s and %s", v.delay, again.delay)
			}
		})
	}
}
