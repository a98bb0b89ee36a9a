package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
)

// The settle tests need no broker: the acknowledger and the sender are
// fakes that write what is asked of them to one log, in order.

type settleLog struct {
	mu     sync.Mutex
	events []string
}

func (l *settleLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
}

func (l *settleLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// fakeAck is an acknowledger: like *broker.Delivery, it settles once and
// refuses a second settlement.
type fakeAck struct {
	log  *settleLog
	errs map[string]error // by method: "ack", "requeue", "reject"
	done bool
}

func (a *fakeAck) Ack() error     { return a.settle("ack") }
func (a *fakeAck) Requeue() error { return a.settle("requeue") }
func (a *fakeAck) Reject() error  { return a.settle("reject") }
func (a *fakeAck) Settled() bool  { return a.done }

func (a *fakeAck) settle(op string) error {
	a.log.add("%s", op)
	if a.done {
		return broker.ErrAlreadySettled
	}
	a.done = true
	return a.errs[op]
}

// fakeSender is a sender whose publishes fail as told.
type fakeSender struct {
	log        *settleLog
	publishErr map[broker.PublishKind]error
	replyErrs  []error // one per reply, in order; nil once used up
	published  []*broker.Envelope
	ctxErrs    []error // each publish's ctx.Err()
}

func (s *fakeSender) publish(ctx context.Context, kind broker.PublishKind, env *broker.Envelope, exchange, key string) error {
	s.log.add("publish %s %s/%s", kind, exchange, key)
	s.published = append(s.published, env)
	s.ctxErrs = append(s.ctxErrs, ctx.Err())
	return s.publishErr[kind]
}

func (s *fakeSender) reply(_ context.Context, request *broker.Envelope, result any, failure *broker.Failure) error {
	if failure != nil {
		s.log.add("reply failure %s", failure.Class)
	} else {
		s.log.add("reply %v", result)
	}
	if len(s.replyErrs) == 0 {
		return nil
	}
	err := s.replyErrs[0]
	s.replyErrs = s.replyErrs[1:]
	return err
}

func (s *fakeSender) send(_ context.Context, env *broker.Envelope, exchange, key string) (confirmation, error) {
	s.log.add("send %s/%s", exchange, key)
	return nil, errors.New("not used")
}

// testSettler returns a pool and a queue that settle through s, and the
// outcomes the pool's observers are given.
func testSettler(s *fakeSender) (*Pool, *queueRun, *[]Outcome) {
	var outs []Outcome
	o := defaultOptions()
	o.host, o.crashLimit = "worker-7", 3
	o.now = func() time.Time { return verdictNow }
	observe := OutcomeFunc(func(out Outcome) {
		s.log.add("observe %s", out.Status)
		outs = append(outs, out)
	})
	p := &Pool{opts: o, send: s, pause: time.Millisecond, observers: []Observer{observe}}
	q := &queueRun{queue: verdictWork, log: zerolog.Nop(), kick: make(chan struct{}, 1)}
	return p, q, &outs
}

// settleObserved settles d as the pool does: its observers are told the
// outcome once settle returns.
func settleObserved(ctx context.Context, p *Pool, q *queueRun, d *broker.Delivery, ack acknowledger, v verdict, out *Outcome) {
	ctx, dones := p.take(ctx, &Job{}, d, nil)
	p.settle(ctx, q, d, ack, v, out)
	told(dones, *out)
}

var (
	errPublish = errors.New("broker: publish nacked")
	errAck     = errors.New("broker: channel closed")
)

func TestSettle(t *testing.T) {
	errFailed := errors.New("smtp: 421")
	retryRoute := func(d time.Duration) string {
		f := testFacts(handled(errFailed))
		v := f.retry(ClassError, errFailed, d)
		return v.exchange + "/" + v.key
	}
	for _, tc := range []struct {
		name       string
		f          facts
		publishErr map[broker.PublishKind]error
		replyErrs  []error
		ackErrs    map[string]error
		want       []string
		status     Status
		replied    bool
		errs       []error // out.Err matches each
		crashes    int     // the delivery's crash count after
		kicked     bool
	}{
		{name: "done", f: testFacts(handled(nil)),
			want: []string{"ack", "observe succeeded"}, status: Succeeded},
		{name: "done, ack fails", f: testFacts(handled(nil)), ackErrs: map[string]error{"ack": errAck},
			want: []string{"ack", "observe requeued"}, status: Requeued, errs: []error{errAck}},
		{name: "request done", f: testFacts(request, handled(nil), func(f *facts) { f.result = 42 }),
			want: []string{"reply 42", "ack", "observe succeeded"}, status: Succeeded, replied: true},
		{name: "request done, reply fails: not acked, requeued", f: testFacts(request, handled(nil)), replyErrs: []error{broker.ErrClosed},
			want: []string{"reply <nil>", "requeue", "observe requeued"}, status: Requeued, errs: []error{broker.ErrClosed}},
		{name: "request done, reply queue missing: dead-lettered, no failure reply", f: testFacts(request, handled(nil)),
			replyErrs: []error{broker.ErrUnroutable},
			want:      []string{"reply <nil>", "publish dead_letter jobs.dlx/jobs.dead", "ack", "observe dead-lettered"},
			status:    DeadLettered, errs: []error{broker.ErrUnroutable}},
		{name: "request done, result cannot be encoded: dead-lettered, failure replied", f: testFacts(request, handled(nil)),
			replyErrs: []error{broker.ErrInvalidJob},
			want:      []string{"reply <nil>", "publish dead_letter jobs.dlx/jobs.dead", "reply failure permanent", "ack", "observe dead-lettered"},
			status:    DeadLettered, replied: true, errs: []error{broker.ErrInvalidJob, ErrPermanent}},
		{name: "retry", f: testFacts(handled(errFailed)),
			want:   []string{"publish retry " + retryRoute(2*time.Second), "ack", "observe retried"},
			status: Retried, errs: []error{errFailed}},
		{name: "retry of a request: no reply", f: testFacts(request, handled(errFailed)),
			want:   []string{"publish retry " + retryRoute(2*time.Second), "ack", "observe retried"},
			status: Retried, errs: []error{errFailed}},
		{name: "retry not published: not acked, requeued", f: testFacts(handled(errFailed)),
			publishErr: map[broker.PublishKind]error{broker.KindRetry: errPublish},
			want:       []string{"publish retry " + retryRoute(2*time.Second), "requeue", "observe requeued"},
			status:     Requeued, errs: []error{errFailed, errPublish}},
		{name: "retry without a route: not published, not acked", f: testFacts(handled(errFailed), func(f *facts) { f.work.Name = "" }),
			want: []string{"requeue", "observe requeued"}, status: Requeued, errs: []error{errFailed}},
		{name: "retry, ack fails: retried all the same", f: testFacts(handled(errFailed)), ackErrs: map[string]error{"ack": errAck},
			want:   []string{"publish retry " + retryRoute(2*time.Second), "ack", "observe retried"},
			status: Retried, errs: []error{errFailed}},
		{name: "dead letter", f: testFacts(handled(errFailed), attempt(3)),
			want:   []string{"publish dead_letter jobs.dlx/jobs.dead", "ack", "observe dead-lettered"},
			status: DeadLettered, errs: []error{errFailed}},
		{name: "dead letter of a request: failure replied after the publish, before the ack", f: testFacts(request, handled(Permanent(errFailed))),
			want:   []string{"publish dead_letter jobs.dlx/jobs.dead", "reply failure permanent", "ack", "observe dead-lettered"},
			status: DeadLettered, replied: true, errs: []error{ErrPermanent}},
		{name: "dead letter of a request, failure reply fails: parked all the same", f: testFacts(request, handled(Permanent(errFailed))),
			replyErrs: []error{broker.ErrClosed},
			want:      []string{"publish dead_letter jobs.dlx/jobs.dead", "reply failure permanent", "ack", "observe dead-lettered"},
			status:    DeadLettered, errs: []error{ErrPermanent}},
		{name: "dead letter not published: not acked, no reply, requeued", f: testFacts(request, handled(Permanent(errFailed))),
			publishErr: map[broker.PublishKind]error{broker.KindDeadLetter: errPublish},
			want:       []string{"publish dead_letter jobs.dlx/jobs.dead", "requeue", "observe requeued"},
			status:     Requeued, errs: []error{ErrPermanent, errPublish}},
		{name: "dead letter not published, from the quarantine: back there as new", f: testFacts(fromQuarantine, handled(Permanent(errFailed))),
			publishErr: map[broker.PublishKind]error{broker.KindDeadLetter: errPublish},
			want:       []string{"publish dead_letter jobs.dlx/jobs.dead", "publish quarantine /jobs.quarantine", "ack", "observe quarantined"},
			status:     Quarantined, errs: []error{ErrPermanent, errPublish}},
		{name: "malformed", f: testFacts(func(f *facts) { f.d.Err = broker.ErrMissingType }),
			want:   []string{"publish dead_letter jobs.dlx/jobs.dead", "ack", "observe dead-lettered"},
			status: DeadLettered, errs: []error{broker.ErrMissingType}},
		{name: "no dead-letter target: failure replied, rejected", f: testFacts(request, handled(Permanent(errFailed)), func(f *facts) { f.work.DeadLetterExchange = "" }),
			want:   []string{"reply failure permanent", "reject", "observe rejected"},
			status: Rejected, replied: true, errs: []error{ErrPermanent}},
		{name: "no dead-letter target, reject fails", f: testFacts(handled(Permanent(errFailed)), func(f *facts) { f.work.DeadLetterExchange = "" }),
			ackErrs: map[string]error{"reject": errAck},
			want:    []string{"reject", "observe rejected"}, status: Rejected, errs: []error{ErrPermanent, errAck}},
		{name: "expired", f: testFacts(request, func(f *facts) { f.d.Envelope.Deadline = verdictNow.Add(-time.Second) }),
			want: []string{"ack", "observe expired"}, status: Expired},
		{name: "expired, ack fails", f: testFacts(request, func(f *facts) { f.d.Envelope.Deadline = verdictNow.Add(-time.Second) }),
			ackErrs: map[string]error{"ack": errAck},
			want:    []string{"ack", "observe requeued"}, status: Requeued, errs: []error{errAck}},
		{name: "suspect moved to the quarantine", f: testFacts(redelivered),
			want: []string{"publish quarantine /jobs.quarantine", "ack", "observe quarantined"}, status: Quarantined, kicked: true},
		{name: "suspect not moved: not acked, requeued", f: testFacts(redelivered),
			publishErr: map[broker.PublishKind]error{broker.KindQuarantine: errPublish},
			want:       []string{"publish quarantine /jobs.quarantine", "requeue", "observe requeued"},
			status:     Requeued, errs: []error{errPublish}},
		{name: "crash counted", f: testFacts(fromQuarantine, redelivered),
			want:   []string{"publish quarantine /jobs.quarantine", "ack", "observe quarantined"},
			status: Quarantined, crashes: 1},
		{name: "crash counted, not published: requeued at once", f: testFacts(fromQuarantine, redelivered),
			publishErr: map[broker.PublishKind]error{broker.KindQuarantine: errPublish},
			want:       []string{"publish quarantine /jobs.quarantine", "requeue", "observe requeued"},
			status:     Requeued, errs: []error{errPublish}, crashes: 1},
		{name: "crash limit", f: testFacts(fromQuarantine, redelivered, func(f *facts) { f.d.Envelope.Crashes = 2 }),
			want:   []string{"publish dead_letter jobs.dlx/jobs.dead", "ack", "observe dead-lettered"},
			status: DeadLettered, errs: []error{errCrashLimit}, crashes: 3},
		{name: "crash limit, dead letter not published: back in the quarantine, crashes kept", f: testFacts(fromQuarantine, redelivered, func(f *facts) { f.d.Envelope.Crashes = 2 }),
			publishErr: map[broker.PublishKind]error{broker.KindDeadLetter: errPublish},
			want:       []string{"publish dead_letter jobs.dlx/jobs.dead", "publish quarantine /jobs.quarantine", "ack", "observe quarantined"},
			status:     Quarantined, errs: []error{errCrashLimit, errPublish}, crashes: 3},
		{name: "shutdown: requeued untouched", f: testFacts(handled(errFailed), shutdown),
			want: []string{"requeue", "observe requeued"}, status: Requeued, errs: []error{errFailed}},
		{name: "shutdown, requeue fails", f: testFacts(handled(errFailed), shutdown), ackErrs: map[string]error{"requeue": errAck},
			want: []string{"requeue", "observe requeued"}, status: Requeued, errs: []error{errFailed}},
		{name: "shutdown, from the quarantine: back there as new", f: testFacts(fromQuarantine, handled(errFailed), shutdown),
			want: []string{"publish quarantine /jobs.quarantine", "ack", "observe quarantined"}, status: Quarantined, errs: []error{errFailed}},
		{name: "no verdict: requeued", f: testFacts(),
			want: []string{"requeue", "observe requeued"}, status: Requeued},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &settleLog{}
			s := &fakeSender{log: log, publishErr: tc.publishErr, replyErrs: tc.replyErrs}
			p, q, outs := testSettler(s)
			ack := &fakeAck{log: log, errs: tc.ackErrs}
			out := Outcome{Queue: "jobs", JobID: tc.f.d.Envelope.ID, Attempt: tc.f.attempt()}
			settleObserved(context.Background(), p, q, tc.f.d, ack, decide(tc.f), &out)

			got := log.all()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("settlement (-want +got):\n%s", diff)
			}
			checkOneSettlement(t, got)
			if len(*outs) != 1 {
				t.Fatalf("observed %d times, want once", len(*outs))
			}
			if o := (*outs)[0]; o.Status != tc.status || o.Replied != tc.replied {
				t.Errorf("outcome %s, replied %v; want %s, %v", o.Status, o.Replied, tc.status, tc.replied)
			}
			for _, e := range tc.errs {
				if !errors.Is(out.Err, e) {
					t.Errorf("outcome error %v does not match %v", out.Err, e)
				}
			}
			if len(tc.errs) == 0 && out.Err != nil {
				t.Errorf("outcome error %v, want none", out.Err)
			}
			if c := tc.f.d.Envelope.Crashes; c != tc.crashes {
				t.Errorf("delivery's crash count %d, want %d", c, tc.crashes)
			}
			for i, env := range s.published {
				if strings.HasPrefix(tc.want[i], "publish quarantine") && env.Crashes != tc.crashes {
					t.Errorf("quarantine copy carries %d crashes, want %d", env.Crashes, tc.crashes)
				}
			}
			if kicked := len(q.kick) == 1; kicked != tc.kicked {
				t.Errorf("quarantine runner woken: %v, want %v", kicked, tc.kicked)
			}
		})
	}
}

// checkOneSettlement checks that a settlement log has exactly one ack,
// requeue or reject, after every publish and reply, and one observation,
// last.
func checkOneSettlement(t *testing.T, events []string) {
	t.Helper()
	at := -1
	for i, e := range events {
		switch e {
		case "ack", "requeue", "reject":
			if at >= 0 {
				t.Errorf("settled twice: %q", events)
			}
			at = i
		}
	}
	if at < 0 {
		t.Fatalf("never settled: %q", events)
	}
	for _, e := range events[at+1:] {
		if strings.HasPrefix(e, "publish") || strings.HasPrefix(e, "reply") {
			t.Errorf("%q after the settlement: %q", e, events)
		}
	}
	if n := len(events); !strings.HasPrefix(events[n-1], "observe") || strings.Count(strings.Join(events, "\n"), "observe") != 1 {
		t.Errorf("want one observation, last: %q", events)
	}
}

// TestSettleIdempotent: settling a delivery a second time, with whatever
// verdict, changes nothing.
func TestSettleIdempotent(t *testing.T) {
	log := &settleLog{}
	s := &fakeSender{log: log}
	p, q, outs := testSettler(s)
	f := testFacts(handled(errors.New("x")))
	ack := &fakeAck{log: log}
	out := Outcome{}
	settleObserved(context.Background(), p, q, f.d, ack, decide(f), &out)
	first := log.all()
	for _, v := range []verdict{decide(f), {kind: verdictAck}, {kind: verdictRequeue}, decide(testFacts(handled(Permanent(errors.New("x")))))} {
		p.settle(context.Background(), q, f.d, ack, v, &out)
		p.ackCopied(q, f.d, ack, &out)
	}
	if diff := cmp.Diff(first, log.all()); diff != "" {
		t.Errorf("settling again did something (-first +now):\n%s", diff)
	}
	if len(*outs) != 1 || out.Status != Retried {
		t.Errorf("observed %d times, status %s; want once, retried", len(*outs), out.Status)
	}
}

// TestSettlePublishFailsNoAck: when what must be stored before the ack
// cannot be, the delivery goes back to its queue after the settle pause
// (cut short at shutdown), and is never acked.
func TestSettlePublishFailsNoAck(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    facts
		kind broker.PublishKind
	}{
		{"retry", testFacts(handled(errors.New("x"))), broker.KindRetry},
		{"dead letter", testFacts(handled(Permanent(errors.New("x")))), broker.KindDeadLetter},
		{"quarantine", testFacts(redelivered), broker.KindQuarantine},
		{"reply", testFacts(request, handled(nil)), broker.KindReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const pause = 50 * time.Millisecond
			for _, cancelled := range []bool{false, true} {
				log := &settleLog{}
				s := &fakeSender{log: log, publishErr: map[broker.PublishKind]error{tc.kind: errPublish}}
				if tc.kind == broker.KindReply {
					s.replyErrs = []error{errPublish}
				}
				p, q, _ := testSettler(s)
				p.pause = pause
				ctx, cancel := context.WithCancel(context.Background())
				if cancelled {
					cancel()
				}
				f := tc.f
				ack := &fakeAck{log: log}
				start := time.Now()
				settleObserved(ctx, p, q, f.d, ack, decide(f), &Outcome{})
				took := time.Since(start)
				cancel()
				got := log.all()
				if n := len(got); n < 2 || got[n-2] != "requeue" {
					t.Errorf("cancelled %v: settlement %q, want a requeue", cancelled, got)
				}
				for _, e := range got {
					if e == "ack" {
						t.Errorf("cancelled %v: acked after a failed publish: %q", cancelled, got)
					}
				}
				if !cancelled && took < pause {
					t.Errorf("requeued after %s, want the settle pause, %s", took, pause)
				}
				if cancelled && took >= pause {
					t.Errorf("shutting down, requeued after %s: the pause should be cut short", took)
				}
			}
		})
	}
}

// TestSettleShutdownRequeueNoPause: a job whose handler failed at the
// shutdown deadline goes back at once.
func TestSettleShutdownRequeueNoPause(t *testing.T) {
	log := &settleLog{}
	p, q, _ := testSettler(&fakeSender{log: log})
	p.pause = time.Hour
	f := testFacts(handled(errors.New("x")), shutdown)
	done := make(chan struct{})
	go func() {
		defer close(done)
		settleObserved(context.Background(), p, q, f.d, &fakeAck{log: log}, decide(f), &Outcome{})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a shutdown requeue waited for the settle pause")
	}
}

// TestSettleQuarantineOutlivesShutdown: putting a quarantined job back is
// not cut short by the shutdown, or a crash would be counted against it.
func TestSettleQuarantineOutlivesShutdown(t *testing.T) {
	log := &settleLog{}
	s := &fakeSender{log: log}
	p, q, _ := testSettler(s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := testFacts(fromQuarantine, handled(errors.New("x")), shutdown)
	settleObserved(ctx, p, q, f.d, &fakeAck{log: log}, decide(f), &Outcome{})
	if len(s.ctxErrs) != 1 || s.ctxErrs[0] != nil {
		t.Errorf("publish ctx errors %v, want one publish with a live ctx", s.ctxErrs)
	}
}
