package scheduler

import (
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
