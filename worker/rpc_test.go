package worker_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

type authorise struct {
	Rider  string `json:"rider"`
	Amount int    `json:"amount"`
}

type authorisation struct {
	Rider    string `json:"rider"`
	Approved bool   `json:"approved"`
	Seq      int    `json:"seq"`
}

// caller returns a Caller on a connection of its own, routed by the
// fixture's topology.
func (f *fixture) caller(opts ...broker.CallerOption) *broker.Caller {
	f.t.Helper()
	c, err := broker.NewCaller(testkit.Dial(f.t, "worker-test-caller"), append([]broker.CallerOption{broker.WithCallRouter(f.topo)}, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// authoriser answers "ok" jobs: approved when the amount is positive, a
// permanent failure otherwise.
func authoriser() *worker.Mux {
	mux := worker.NewMux()
	mux.Handle("ok", worker.TypedResult(func(ctx context.Context, job *worker.Job, a authorise) (authorisation, error) {
		if a.Amount <= 0 {
			return authorisation{}, worker.Permanent(fmt.Errorf("amount %d: must be positive", a.Amount))
		}
		return authorisation{Rider: a.Rider, Approved: true, Seq: a.Amount}, nil
	}))
	return mux
}

func TestCallRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	l := newLedger()
	f.run(authoriser(), worker.WithObserver(worker.OutcomeFunc(l.observe)))
	c := f.caller()

	reply, err := c.Call(brokertest.Context(t, 10*time.Second), broker.Job{Type: "ok", Payload: authorise{Rider: "ada", Amount: 12}})
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	var got authorisation
	if err := reply.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got != (authorisation{Rider: "ada", Approved: true, Seq: 12}) {
		t.Errorf("result %+v", got)
	}
	if reply.ReplyStatus != "" || len(reply.Headers) != 0 || reply.Type != "ok.reply" || !strings.HasSuffix(reply.ID, ".reply") {
		t.Errorf("reply envelope: status %q type %q id %q", reply.ReplyStatus, reply.Type, reply.ID)
	}
	testkit.WaitFor(t, 5*time.Second, "the outcome", func() bool { return l.status(worker.Succeeded) == 1 })
	if l.replied() != 1 {
		t.Errorf("%d outcomes with a reply sent, want 1", l.replied())
	}
}

// TestCallCorrelatesByIDOrOwnCorrelationID: a call without a correlation
// id sends none (the worker answers under the job's id, and the handler
// sees that id as the job's correlation id); one with its own gets it back.
func TestCallCorrelatesByIDOrOwnCorrelationID(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	type seen struct{ id, sent, handlerSaw string }
	seenc := make(chan seen, 2)
	mux := worker.NewMux()
	mux.Handle("ok", worker.TypedResult(func(ctx context.Context, job *worker.Job, a authorise) (authorisation, error) {
		seenc <- seen{id: job.ID, sent: job.Envelope.CorrelationID, handlerSaw: job.CorrelationID}
		return authorisation{Rider: a.Rider, Approved: true, Seq: a.Amount}, nil
	}))
	f.run(mux)
	c := f.caller()
	ctx := brokertest.Context(t, 10*time.Second)

	reply, err := c.Call(ctx, broker.Job{Type: "ok", Payload: authorise{Rider: "ada", Amount: 1}})
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	s := <-seenc
	if s.sent != "" || s.handlerSaw != s.id || reply.CorrelationID != s.id {
		t.Errorf("without a correlation id: sent %q, handler saw %q, reply has %q; want none sent, then the id %q", s.sent, s.handlerSaw, reply.CorrelationID, s.id)
	}

	reply, err = c.Call(ctx, broker.Job{Type: "ok", CorrelationID: "order-7", Payload: authorise{Rider: "bob", Amount: 2}})
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	s = <-seenc
	if s.sent != "order-7" || s.handlerSaw != "order-7" || reply.CorrelationID != "order-7" {
		t.Errorf("with correlation id order-7: sent %q, handler saw %q, reply has %q", s.sent, s.handlerSaw, reply.CorrelationID)
	}
	var got authorisation
	if err := reply.Decode(&got); err != nil || got.Rider != "bob" {
		t.Errorf("reply %+v (%v), want bob's", got, err)
	}
}

// TestCallsOverEachReplyPath: a Caller sends its reply queue (a
// server-named queue, the default) or the direct reply-to
// (WithCallDirectReplyTo) as reply_to; concurrent calls pair with their
// replies, a remote failure surfaces with its class, and the worker sends
// its replies without confirm or mandatory flag on either path.
func TestCallsOverEachReplyPath(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		opts []broker.CallerOption
		want func(string) bool
	}{
		"reply queue":     {nil, func(r string) bool { return strings.HasPrefix(r, broker.ServerNamedPrefix) }},
		"direct reply-to": {[]broker.CallerOption{broker.WithCallDirectReplyTo()}, broker.IsDirectReplyTo},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testCallsOver(t, c.opts, c.want)
		})
	}
}

func testCallsOver(t *testing.T, opts []broker.CallerOption, want func(string) bool) {
	f := newFixture(t, fixtureOpts{})
	var mu sync.Mutex
	replyTos := map[string]bool{}
	inner := authoriser()
	l := newLedger()
	f.run(worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		mu.Lock()
		replyTos[job.ReplyTo] = true
		mu.Unlock()
		return inner.HandleJob(ctx, job)
	}), worker.WithQueue(f.queue, worker.Concurrency(16), worker.Prefetch(64)), worker.WithObserver(worker.OutcomeFunc(l.observe)))
	c := f.caller(opts...)
	ctx := brokertest.Context(t, 60*time.Second)

	const n = 300
	callConcurrently(t, ctx, c, n)
	_, err := c.Call(ctx, broker.Job{Type: "ok", Payload: authorise{Rider: "zoe", Amount: 0}})
	var re *broker.RemoteError
	if !errors.As(err, &re) || re.Class != worker.ClassPermanent {
		t.Errorf("Call of a failing job: %v, want a RemoteError of class %q", err, worker.ClassPermanent)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(replyTos) != 1 {
		t.Fatalf("reply_to of the requests: %v, want one address", replyTos)
	}
	for r := range replyTos {
		if !want(r) || !broker.IsCallerReplyTo(r) {
			t.Errorf("reply_to %q, want the caller's reply path", r)
		}
	}
	if d := c.Discarded(); d != 0 {
		t.Errorf("%d replies discarded", d)
	}
	testkit.WaitFor(t, 10*time.Second, "every outcome", func() bool { return l.replied() == n+1 })
}

func TestThousandConcurrentCallsPairCorrectly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	f.run(authoriser(), worker.WithQueue(f.queue, worker.Concurrency(32), worker.Prefetch(128)))
	c := f.caller()
	ctx := brokertest.Context(t, 60*time.Second)

	callConcurrently(t, ctx, c, 1000)
	if d := c.Discarded(); d != 0 {
		t.Errorf("%d replies discarded", d)
	}
}

// callConcurrently makes n calls at once on c, each with its own rider and
// amount, and reports every call that failed or got another's reply.
func callConcurrently(t *testing.T, ctx context.Context, c *broker.Caller, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rider := fmt.Sprintf("rider-%d", i)
			reply, err := c.Call(ctx, broker.Job{Type: "ok", Payload: authorise{Rider: rider, Amount: i}})
			if err != nil {
				errs <- fmt.Errorf("call %d: %w", i, err)
				return
			}
			var got authorisation
			if err := reply.Decode(&got); err != nil {
				errs <- err
				return
			}
			if got.Rider != rider || got.Seq != i {
				errs <- fmt.Errorf("call %d (%s) got the reply for %s/%d", i, rider, got.Rider, got.Seq)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCallTimesOutWithoutWorker: nobody consumes, so the call times out
// with the typed error; a worker started afterwards does not run the
// request, whose caller has gone.
func TestCallTimesOutWithoutWorker(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	c := f.caller()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.Call(ctx, broker.Job{Type: "ok", Payload: authorise{Rider: "ada", Amount: 1}})
	if !errors.Is(err, broker.ErrReplyTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call: %v, want ErrReplyTimeout", err)
	}

	handled := make(chan struct{}, 1)
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
		handled <- struct{}{}
		return nil
	})
	l := newLedger()
	f.run(mux, worker.WithObserver(worker.OutcomeFunc(l.observe)))
	testkit.WaitFor(t, 10*time.Second, "the expired request", func() bool { return l.status(worker.Expired) == 1 })
	select {
	case <-handled:
		t.Error("a request was handled after its caller gave up")
	default:
	}
}

func TestCallRemoteErrorHasClass(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{routeRetry: map[string]string{"fail": "{max_attempts: 1}"}})
	mux := authoriser()
	mux.HandleFunc("fail", func(ctx context.Context, job *worker.Job) error {
		return errors.New("card declined")
	})
	f.run(mux)
	c := f.caller()
	ctx := brokertest.Context(t, 10*time.Second)

	for _, tc := range []struct {
		job   broker.Job
		class string
		text  string
	}{
		{broker.Job{Type: "ok", Payload: authorise{Rider: "ada", Amount: -5}}, worker.ClassPermanent, "amount -5: must be positive"},
		{broker.Job{Type: "fail", Payload: 1}, worker.ClassError, "card declined"},
	} {
		_, err := c.Call(ctx, tc.job)
		var re *broker.RemoteError
		if !errors.As(err, &re) {
			t.Errorf("%s: Call: %v, want a *RemoteError", tc.job.Type, err)
			continue
		}
		if re.Class != tc.class || re.Message != tc.text || re.JobType != tc.job.Type {
			t.Errorf("%s: remote error %+v, want class %q text %q", tc.job.Type, re, tc.class, tc.text)
		}
	}
	// The failed requests are parked too.
	if got := len(f.dlq(2, 10*time.Second)); got != 2 {
		t.Errorf("%d requests dead-lettered, want 2", got)
	}
}

func TestLateReplyIsDiscardedAndCounted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	mux := worker.NewMux()
	mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
		time.Sleep(1500 * time.Millisecond)
		job.SetResult("late")
		return nil
	})
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
		job.SetResult("fine")
		return nil
	})
	l := newLedger()
	f.run(mux, worker.WithObserver(worker.OutcomeFunc(l.observe)))
	c := f.caller()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := c.Call(ctx, broker.Job{Type: "slow"}); !errors.Is(err, broker.ErrReplyTimeout) {
		t.Fatalf("Call: %v, want ErrReplyTimeout", err)
	}
	testkit.WaitFor(t, 10*time.Second, "the late reply to be discarded", func() bool { return c.Discarded() == 1 })
	// The caller goes on working, and the next call gets its own reply.
	reply, err := c.Call(brokertest.Context(t, 10*time.Second), broker.Job{Type: "ok"})
	var s string
	if err != nil || reply.Decode(&s) != nil || s != "fine" {
		t.Errorf("next call: %v, %q", err, s)
	}
}

// TestCallerSurvivesWorkerKilledMidCall: the worker process dies while
// handling the request; the call times out cleanly, and the request is not
// run again after its caller gave up.
func TestCallerSurvivesWorkerKilledMidCall(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+f.yaml, childQueueEnv+"="+f.queue, childURLEnv+"="+brokertest.URL(t))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := f.caller()
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := c.Call(ctx, broker.Job{Type: "ok", Payload: authorise{Rider: "ada", Amount: 1}})
		errc <- err
	}()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "started ") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child worker did not start the request: %q", sc.Text())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if err := testkit.Recv(t, errc, 20*time.Second, "the call"); !errors.Is(err, broker.ErrReplyTimeout) {
		t.Fatalf("Call: %v, want ErrReplyTimeout", err)
	}
	// Another worker gets the request back, past its deadline: not run.
	l := newLedger()
	f.run(authoriser(), worker.WithObserver(worker.OutcomeFunc(l.observe)))
	testkit.WaitFor(t, 10*time.Second, "the expired request", func() bool { return l.status(worker.Expired) == 1 })
	if l.status(worker.Succeeded) != 0 {
		t.Error("the request ran again after its caller gave up")
	}
}

// TestAsyncRepliesSurviveCallerRestart: a producer publishes requests
// naming a durable reply queue and goes away; the worker answers into the
// queue; a new consumer (the producer restarted) gets every reply,
// correlated by the request's id.
func TestAsyncRepliesSurviveCallerRestart(t *testing.T) {
	t.Parallel()
	x, q, replies := brokertest.Name(t, "x"), brokertest.Name(t, "q"), brokertest.Name(t, "replies")
	topo := topotest.Apply(t, fmt.Sprintf(`version: 1
exchanges:
  %[1]s: {type: direct}
queues:
  %[2]s: {type: quorum}
  %[3]s: {type: quorum}
bindings:
  - {exchange: %[1]s, queue: %[2]s, routing_key: passenger.authorise}
routes:
  passenger.authorise: {exchange: %[1]s}
`, x, q, replies))

	// The producer publishes, then "restarts": its connection closes
	// before any reply exists.
	sent := map[string]int{}
	func() {
		conn := testkit.Dial(t, "worker-test-producer")
		pub, err := broker.NewPublisher(conn, broker.WithRouter(topo))
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close(context.Background())
		for i := 1; i <= 20; i++ {
			amount := i
			if i%5 == 0 {
				amount = -i // refused: an error reply
			}
			id := brokertest.JobID(t)
			if err := pub.Publish(brokertest.Context(t, 10*time.Second),
				broker.Job{ID: id, Type: "passenger.authorise", Payload: authorise{Rider: fmt.Sprint(i), Amount: amount}, ReplyTo: replies}); err != nil {
				t.Fatal(err)
			}
			sent[id] = amount
		}
		conn.Close()
	}()

	// The passenger service answers.
	wconn := testkit.Dial(t, "worker-test-passenger")
	mux := worker.NewMux()
	mux.Handle("passenger.authorise", worker.TypedResult(func(ctx context.Context, job *worker.Job, a authorise) (authorisation, error) {
		if a.Amount <= 0 {
			return authorisation{}, worker.Permanent(errors.New("refused"))
		}
		return authorisation{Rider: a.Rider, Approved: true, Seq: a.Amount}, nil
	}))
	pool, err := worker.NewPool(wconn, topo, mux, worker.WithQueue(q))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pool.Run(ctx) }()
	testkit.WaitFor(t, 20*time.Second, "every reply in the reply queue", func() bool { return brokertest.Depth(t, replies) == len(sent) })
	cancel()
	if err := testkit.Recv(t, done, 60*time.Second, "the pool to stop"); err != nil {
		t.Fatal(err)
	}

	// The restarted producer consumes the replies.
	var mu sync.Mutex
	got := map[string]worker.Reply[authorisation]{}
	rmux := worker.NewMux()
	rmux.Handle("passenger.authorise.reply", worker.HandleReply(func(ctx context.Context, r worker.Reply[authorisation]) error {
		mu.Lock()
		got[r.CorrelationID] = r
		mu.Unlock()
		return nil
	}))
	rpool, err := worker.NewPool(testkit.Dial(t, "worker-test-restarted"), topo, rmux, worker.WithQueue(replies))
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	rdone := make(chan error, 1)
	go func() { rdone <- rpool.Run(rctx) }()
	testkit.WaitFor(t, 20*time.Second, "every reply handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == len(sent) })
	rcancel()
	if err := testkit.Recv(t, rdone, 60*time.Second, "the reply pool to stop"); err != nil {
		t.Fatal(err)
	}
	for id, amount := range sent {
		r, ok := got[id]
		switch {
		case !ok:
			t.Errorf("no reply for request %s", id)
		case amount <= 0 && (r.Err == nil || r.Err.Message != "refused" || r.Err.Class != worker.ClassPermanent):
			t.Errorf("request %s (amount %d): reply %+v, want the refusal", id, amount, r)
		case amount > 0 && (r.Err != nil || r.Result.Seq != amount || r.RequestType != "passenger.authorise"):
			t.Errorf("request %s (amount %d): reply %+v", id, amount, r)
		}
	}
	if n := brokertest.Depth(t, topology.DeadLetterQueueName(q)); n != 4 {
		t.Errorf("%d refused requests dead-lettered, want 4", n)
	}
}

// TestReplyToGoneCallerIsDropped: the caller closed before the reply; the
// pool sends it all the same (the broker drops it) and goes on.
func TestReplyToGoneCallerIsDropped(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]broker.CallerOption{"direct reply-to": {broker.WithCallDirectReplyTo()}, "reply queue": nil} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testReplyToGoneCaller(t, opts)
		})
	}
}

func testReplyToGoneCaller(t *testing.T, opts []broker.CallerOption) {
	f := newFixture(t, fixtureOpts{})
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	mux := worker.NewMux()
	mux.HandleFunc("slow", func(ctx context.Context, job *worker.Job) error {
		started <- struct{}{}
		<-release
		job.SetResult("too late")
		return nil
	})
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error { return nil })
	var mu sync.Mutex
	var outcomes []worker.Outcome
	f.run(mux, worker.WithObserver(worker.OutcomeFunc(func(o worker.Outcome) { mu.Lock(); outcomes = append(outcomes, o); mu.Unlock() })))

	c, err := broker.NewCaller(testkit.Dial(t, "worker-test-gone-caller"), append([]broker.CallerOption{broker.WithCallRouter(f.topo)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Call(ctx, broker.Job{Type: "slow"})
		errc <- err
	}()
	testkit.Recv(t, started, 20*time.Second, "the handler to start")
	if err := c.Close(brokertest.Context(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := testkit.Recv(t, errc, 20*time.Second, "the call"); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Call on a closed caller: %v, want ErrClosed", err)
	}
	close(release)
	f.publish("ok", 1)
	testkit.WaitFor(t, 10*time.Second, "both jobs settled", func() bool { mu.Lock(); defer mu.Unlock(); return len(outcomes) == 2 })
	for _, o := range outcomes {
		if o.Status != worker.Succeeded || o.Replied != (o.JobType == "slow") {
			t.Errorf("%s: %v (replied %v, err %v), want succeeded, the request replied to (the broker drops the reply)", o.JobType, o.Status, o.Replied, o.Err)
		}
	}
}

// TestReplyQueueIsDeclaredAgainAfterReconnection: the broker closes the
// caller's connection, and with it its exclusive reply queue; the next
// call declares a new one and gets its reply there.
func TestReplyQueueIsDeclaredAgainAfterReconnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{})
	replyTos := make(chan string, 2)
	mux := worker.NewMux()
	mux.Handle("ok", worker.TypedResult(func(ctx context.Context, job *worker.Job, a authorise) (authorisation, error) {
		replyTos <- job.ReplyTo
		return authorisation{Rider: a.Rider, Seq: a.Amount}, nil
	}))
	f.run(mux)
	name := brokertest.ConnName(t, "reply-queue-caller")
	conn := testkit.Dial(t, name, broker.WithReconnectBackoff(50*time.Millisecond, time.Second))
	c, err := broker.NewCaller(conn, broker.WithCallRouter(f.topo), broker.WithCallReplyQueue())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	ctx := brokertest.Context(t, 30*time.Second)
	for i := 1; i <= 2; i++ {
		if i == 2 {
			closeLiveConnection(t, conn, name)
		}
		reply, err := c.Call(ctx, broker.Job{Type: "ok", Payload: authorise{Rider: "ada", Amount: i}})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		var got authorisation
		if err := reply.Decode(&got); err != nil || got.Seq != i {
			t.Fatalf("call %d: reply %+v (%v)", i, got, err)
		}
	}
	first, second := <-replyTos, <-replyTos
	if first == second || !strings.HasPrefix(second, broker.ServerNamedPrefix) {
		t.Errorf("reply queues %q then %q: want a new server-named one after the reconnection", first, second)
	}
}
