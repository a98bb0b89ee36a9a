package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
)

// ClassChain is the class of a job dead-lettered because what comes
// after it in its chain cannot be published: its routing slip is
// malformed, or its next step has no route. The job itself succeeded (its
// effects are done); replaying it once the topology routes the step runs
// it again and continues the chain.
const ClassChain = "chain"

// chainNamespace is the UUIDv5 namespace of the job ids of a chain's
// later steps and compensations: the same for every copy of a step, so
// that a step published twice (its predecessor ran twice) is one job to
// an idempotent consumer.
var chainNamespace = uuid.MustParse("7a1c5e0e-93d4-5b8e-a2f4-6368e1696e73")

// chainJobID is the id of a chain's step or compensation.
func chainJobID(chainID, kind string, n int) string {
	return uuid.NewSHA1(chainNamespace, []byte(chainID+"\n"+kind+"\n"+strconv.Itoa(n))).String()
}

// errChainRetry marks a continuation that failed for a reason that may
// pass (the broker, the connection): the job is returned to its queue and
// runs again.
var errChainRetry = errors.New("worker: could not publish the chain's next job")

// continueChain publishes what comes after d's job in its chain, when it
// has a routing slip (broker.HeaderChain): after a success, the next step
// (or, for a compensation, the next compensation); after a failure for
// good of a step, the compensation of the last step done. It returns an
// error wrapping errChainRetry when the publish may succeed later, any
// other error when it never will.
func (p *Pool) continueChain(ctx context.Context, q *queueRun, d *broker.Delivery, v verdict, status Status) error {
	raw, ok := d.Envelope.Headers[broker.HeaderChain]
	if !ok {
		return nil
	}
	slip, err := broker.ReadSlip(raw)
	if err != nil {
		return err
	}
	env := d.Envelope
	var next *broker.SlipStep
	var nextSlip broker.Slip
	var id string
	var input []byte // the result, for a step that has a payload of its own
	switch {
	case status == Succeeded:
		result, err := encodeResult(v.result)
		if err != nil {
			return err
		}
		done := slip.Done
		if slip.Compensate != nil {
			c := *slip.Compensate
			if c.Payload == nil {
				c.Payload = result
			}
			done = append(done[:len(done):len(done)], c)
		}
		if len(slip.Next) == 0 {
			jobFields(q.log.Debug(), env, max(env.Attempt, 1)).Str(logfield.ChainID, slip.ChainID).Msg("worker: chain complete")
			return nil
		}
		n := slip.Next[0]
		next = &n
		if next.Payload == nil {
			next.Payload = result
		} else if !slip.Compensating {
			input = result
		}
		nextSlip = broker.Slip{ChainID: slip.ChainID, Step: slip.Step + 1, Next: slip.Next[1:], Compensating: slip.Compensating, Failed: slip.Failed}
		if slip.Compensating {
			id = chainJobID(slip.ChainID, "compensation", nextSlip.Step)
		} else {
			nextSlip.Compensate, nextSlip.Done = next.Compensate, done
			next.Compensate = nil
			id = chainJobID(slip.ChainID, "step", nextSlip.Step)
		}
	case slip.Compensating || v.class == ClassChain:
		// A compensation that failed for good stays parked with the rest
		// in its slip: replayed, it runs and goes on. A step parked for
		// its chain did not fail.
		return nil
	default:
		if len(slip.Done) == 0 {
			jobFields(q.log.Warn(), env, max(env.Attempt, 1)).Str(logfield.ChainID, slip.ChainID).
				Msg("worker: a chain's step failed for good; no step before it to compensate")
			return nil
		}
		last := len(slip.Done) - 1
		c := slip.Done[last]
		next = &c
		rest := make([]broker.SlipStep, last)
		for i := range last {
			rest[i] = slip.Done[last-1-i]
		}
		failure := broker.SlipFailure{JobID: env.ID, Type: env.Type, Class: v.class}
		if v.cause != nil {
			failure.Error = v.cause.Error()
		}
		nextSlip = broker.Slip{ChainID: slip.ChainID, Next: rest, Compensating: true, Failed: &failure}
		id = chainJobID(slip.ChainID, "compensation", 0)
	}
	if err := nextSlip.Check(); err != nil {
		return err
	}
	exchange, key := next.Exchange, next.RoutingKey
	if next.Routed && !p.declares(exchange, key) {
		// A slip comes from whoever published the job: it may send the
		// worker's publishes only where the topology says.
		return fmt.Errorf("%w: the chain's next job (%s) names exchange %q and key %q, which this pool's topology does not declare; a chain's step goes to an exchange of the topology, or to a queue of it through the default exchange, or by its type's route",
			broker.ErrNoRoute, next.Type, exchange, key)
	}
	if !next.Routed {
		var ok bool
		if exchange, key, ok = p.topo.Route(next.Type); !ok {
			return fmt.Errorf("%w: the topology has no route for job type %q, the chain's next job; add one (routes:) and replay this job", broker.ErrNoRoute, next.Type)
		}
	}
	corr := env.CorrelationID // the conversation's, else the chain's id
	if corr == "" || env.ReplyTo != "" {
		corr = slip.ChainID
	}
	job := broker.Job{ID: id, Type: next.Type, Payload: msgpack.RawMessage(next.Payload), CorrelationID: corr}
	nenv, err := broker.NewEnvelope(job)
	if err != nil {
		return err
	}
	h := make(map[string]any, 2)
	h[broker.HeaderChain] = nextSlip.Table()
	if input != nil {
		h[broker.HeaderChainInput] = input
	}
	nenv.Headers = h
	nenv.Traceparent, nenv.Tracestate = env.Traceparent, env.Tracestate
	if err := p.send.publish(ctx, broker.KindJob, nenv, exchange, key); err != nil {
		if errors.Is(err, broker.ErrUnroutable) || errors.Is(err, broker.ErrNoExchange) {
			return fmt.Errorf("the chain's next job, %s (%s), reaches no queue through exchange %q with key %q: %w", id, next.Type, exchange, key, err)
		}
		return fmt.Errorf("%w %s (%s): %w", errChainRetry, id, next.Type, err)
	}
	jobFields(q.log.Debug(), env, max(env.Attempt, 1)).Str(logfield.ChainID, slip.ChainID).Str(logfield.NextJobID, id).
		Str(logfield.NextJobType, next.Type).Bool(logfield.Compensating, nextSlip.Compensating).Msg("worker: chain continued")
	return nil
}

// encodeResult encodes a handler's result as a step's payload.
func encodeResult(v any) ([]byte, error) {
	b, err := broker.EncodePayload(v)
	if err != nil {
		return nil, fmt.Errorf("the handler's result cannot be the chain's next payload: %w", err)
	}
	return b, nil
}

// declares says whether the pool's topology declares exchange (a file's
// own, not a derived one), or, for the default exchange, the queue key.
func (p *Pool) declares(exchange, key string) bool {
	if exchange == "" {
		q, ok := p.topo.Queue(key)
		return ok && !q.Derived
	}
	x, ok := p.topo.Exchange(exchange)
	return ok && !x.Derived
}
