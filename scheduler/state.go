package scheduler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/warrenmq/warren/broker"
)

// state is what the lease token carries: for each schedule, the
// watermark, the latest time up to which every tick is settled (fired,
// skipped as too late, or skipped as paused). Schedules of other
// scheduler sets sharing the lease queue are kept as they are.
type state map[string]time.Time

// tokenType is the job type of lease tokens.
const tokenType = "warren.scheduler.token"

// tokenBody is a token's payload: each watermark as RFC 3339 with
// nanoseconds, UTC.
type tokenBody struct {
	Version    int               `msgpack:"v"`
	Watermarks map[string]string `msgpack:"watermarks"`
}

// merge returns s with every watermark of o that is later.
func (s state) merge(o state) state {
	out := maps.Clone(s)
	if out == nil {
		out = state{}
	}
	for name, t := range o {
		if t.After(out[name]) {
			out[name] = t
		}
	}
	return out
}

// covers reports whether s has every watermark of o, or a later one.
func (s state) covers(o state) bool {
	for name, t := range o {
		if t.After(s[name]) {
			return false
		}
	}
	return true
}

func (s state) job() broker.Job {
	b := tokenBody{Version: 1, Watermarks: make(map[string]string, len(s))}
	for name, t := range s {
		b.Watermarks[name] = t.UTC().Format(time.RFC3339Nano)
	}
	return broker.Job{Type: tokenType, Payload: b}
}

// readToken reads a token's state. A message that is not a token, or is
// malformed, is an error; its holder treats it as an empty token.
func readToken(env *broker.Envelope) (state, error) {
	if env.Type != tokenType {
		return nil, fmt.Errorf("scheduler: message of type %q in the lease queue is not a token", env.Type)
	}
	var b tokenBody
	if err := env.Decode(&b); err != nil {
		return nil, fmt.Errorf("scheduler: read token: %w", err)
	}
	s := make(state, len(b.Watermarks))
	for name, v := range b.Watermarks {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, fmt.Errorf("scheduler: token: watermark of %q: %w", name, err)
		}
		s[name] = t
	}
	return s, nil
}

// ErrTokenHeld: the lease queue has no token ready to read, as the leader
// holds it (or no scheduler ever ran).
var ErrTokenHeld = errors.New("scheduler: no token to read in the lease queue: the leading scheduler holds it, or none has run")

// Watermarks reads the schedules' watermarks from the tokens ready in
// the lease queue (DefaultLeaseQueue when empty), without taking them:
// they are returned to the queue at once. Every tick of a schedule up to
// its watermark was fired or skipped. While a scheduler runs, the token is
// its (held by the leader, or delivered to the leader first), and
// Watermarks returns ErrTokenHeld; it is for operators, when the
// schedulers are stopped. The queue does not allow basic.get (a quorum
// queue with a single active consumer): Watermarks consumes it for a
// moment, which it can only do while no scheduler does.
func Watermarks(ctx context.Context, conn *broker.Conn, leaseQueue string) (map[string]time.Time, error) {
	if leaseQueue == "" {
		leaseQueue = DefaultLeaseQueue
	}
	d := broker.NewDeclarer(conn)
	defer d.Close(context.WithoutCancel(ctx))
	info, err := d.QueueInfo(ctx, leaseQueue)
	if err != nil {
		return nil, fmt.Errorf("scheduler: read the lease queue: %w", err)
	}
	if info.Messages == 0 || info.Consumers > 0 {
		return nil, ErrTokenHeld
	}
	want := min(info.Messages, 4) // a few extra tokens at most; the leader merges more
	cons, err := broker.Consume(ctx, conn, leaseQueue, broker.WithPrefetch(want))
	if err != nil {
		return nil, fmt.Errorf("scheduler: read the lease queue: %w", err)
	}
	defer func() {
		cctx := context.WithoutCancel(ctx)
		_ = cons.Cancel(cctx)
		_ = cons.ReturnAll(cctx)
		_ = cons.Close(cctx)
	}()
	// A scheduler that started meanwhile is the active consumer: then
	// nothing comes, and ctx's deadline ends the wait.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	merged := state{}
	got := 0
	for got < want {
		dl, ok := cons.Next(wctx)
		if !ok {
			break
		}
		got++
		if st, err := readToken(dl.Envelope); err == nil {
			merged = merged.merge(st)
		}
	}
	if got == 0 {
		return nil, ErrTokenHeld
	}
	return merged, nil
}
