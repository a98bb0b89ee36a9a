package workflow

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/worker"
)

// Step is one step of a chain.
type Step struct {
	// Type is the step's job type, routed by the topology unless To is
	// set.
	Type string
	// Payload is the step's payload; nil: the previous step's result (for
	// the first step: no payload; for a compensation: the result of the
	// step it undoes).
	Payload any
	// To sends the step to an exchange and routing key of its own.
	To *Route
	// Compensate undoes the step, when a later step fails for good. A
	// compensation has no compensation of its own.
	Compensate *Step
}

// Route is where a step is published: an exchange and a routing key.
type Route struct {
	Exchange, RoutingKey string
}

// Chain is a chain of steps ready to publish.
type Chain struct {
	first *Step
	slip  broker.Slip // without its chain id, set at Publish
}

// NewChain returns the chain of steps, their payloads encoded now. It
// fails on an empty chain, a step without a type, a compensation with a
// compensation, or a chain over broker.MaxSlipSteps steps or
// broker.MaxSlipBytes of payloads (the chain travels in a header); the
// error wraps broker.ErrInvalidSlip or broker.ErrInvalidJob.
func NewChain(steps ...Step) (*Chain, error) {
	if len(steps) == 0 {
		return nil, fmt.Errorf("%w: NewChain: no steps", broker.ErrInvalidSlip)
	}
	first := steps[0]
	if first.Type == "" {
		return nil, fmt.Errorf("%w: step 0 has no job type", broker.ErrInvalidSlip)
	}
	c := &Chain{first: &first, slip: broker.Slip{ChainID: "-"}}
	var err error
	if first.Compensate != nil {
		if c.slip.Compensate, err = slipStep(*first.Compensate, "step 0's compensation", true); err != nil {
			return nil, err
		}
	}
	for i, st := range steps[1:] {
		s, err := slipStep(st, fmt.Sprintf("step %d (%s)", i+1, st.Type), false)
		if err != nil {
			return nil, err
		}
		c.slip.Next = append(c.slip.Next, *s)
	}
	if err := c.slip.Check(); err != nil {
		return nil, err
	}
	return c, nil
}

func slipStep(st Step, where string, compensation bool) (*broker.SlipStep, error) {
	if st.Type == "" {
		return nil, fmt.Errorf("%w: %s has no job type", broker.ErrInvalidSlip, where)
	}
	s := &broker.SlipStep{Type: st.Type}
	if st.Payload != nil {
		b, err := broker.EncodePayload(st.Payload)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		s.Payload = b
	}
	if st.To != nil {
		s.Exchange, s.RoutingKey, s.Routed = st.To.Exchange, st.To.RoutingKey, true
	}
	if st.Compensate != nil {
		if compensation {
			return nil, fmt.Errorf("%w: %s: a compensation cannot have a compensation of its own", broker.ErrInvalidSlip, where)
		}
		c, err := slipStep(*st.Compensate, where+"'s compensation", true)
		if err != nil {
			return nil, err
		}
		s.Compensate = c
	}
	return s, nil
}

// Publish publishes the chain's first step with pub and returns the
// chain's id (the first step's job id, a new UUIDv7). The chain's jobs
// carry the correlation id of ctx (a handler's: its job's), else the
// chain's id. opts apply to the first step (a
// scheduled start with broker.At, say); the first step's To wins over a
// broker.To among them.
func (c *Chain) Publish(ctx context.Context, pub *broker.Publisher, opts ...broker.PublishOption) (string, error) {
	id, err := broker.NewJobID()
	if err != nil {
		return "", err
	}
	slip := c.slip
	slip.ChainID = id
	opts = append(opts[:len(opts):len(opts)], broker.RoutingSlip(&slip))
	if c.first.To != nil {
		opts = append(opts, broker.To(c.first.To.Exchange, c.first.To.RoutingKey))
	}
	corr := broker.CorrelationIDFromContext(ctx) // the conversation's, else the chain's id
	if corr == "" {
		corr = id
	}
	job := broker.Job{ID: id, Type: c.first.Type, Payload: c.first.Payload, CorrelationID: corr}
	if err := pub.Publish(ctx, job, opts...); err != nil {
		return "", err
	}
	return id, nil
}

// Write writes the chain's first step into tx, the caller's PostgreSQL
// transaction, through the transactional outbox (outbox.Publish): the
// chain starts if and only if tx commits, and an outbox relay publishes
// its first step. router routes the first step by its type, unless it has
// a To; the later steps are routed by the workers' topology as they go.
// It returns the chain's id.
func (c *Chain) Write(ctx context.Context, tx pgx.Tx, router broker.Router) (string, error) {
	id, err := broker.NewJobID()
	if err != nil {
		return "", err
	}
	slip := c.slip
	slip.ChainID = id
	opts := []outbox.PublishOption{outbox.Marks(broker.RoutingSlip(&slip))}
	if c.first.To != nil {
		opts = append(opts, outbox.To(c.first.To.Exchange, c.first.To.RoutingKey))
	} else if router != nil {
		opts = append(opts, outbox.Router(router))
	}
	corr := broker.CorrelationIDFromContext(ctx)
	if corr == "" {
		corr = id
	}
	job := broker.Job{ID: id, Type: c.first.Type, Payload: c.first.Payload, CorrelationID: corr}
	if err := outbox.Publish(ctx, tx, job, opts...); err != nil {
		return "", err
	}
	return id, nil
}

// ErrNoInput is returned by Input for a job that has no input: not a
// chain's step, or one whose payload is the previous step's result.
var ErrNoInput = errors.New("workflow: the job has no input from a previous step")

// Input decodes into v the result of the step before job, for a step
// that has a payload of its own (a step without one gets the result as
// its payload: Job.Decode). It returns ErrNoInput when there is none.
func Input(job *worker.Job, v any) error {
	b, ok := job.Headers[broker.HeaderChainInput].([]byte)
	if !ok {
		return ErrNoInput
	}
	env := broker.Envelope{Body: b}
	return env.Decode(v)
}

// Info is what a job's routing slip says of its place in a chain.
type Info struct {
	// ChainID identifies the chain; "" for a job of no chain.
	ChainID string
	// Step is the job's place: from 0 among the steps, or, for a
	// compensation, among the compensations (0 runs first).
	Step int
	// Compensating is set on a compensation.
	Compensating bool
	// Failed is the step whose failure for good started the
	// compensations, on a compensation.
	Failed *broker.SlipFailure
	// Remaining is how many steps (or compensations) come after the job.
	Remaining int
}

// Of returns job's place in its chain; the zero Info for a job of no
// chain, or whose slip cannot be read.
func Of(job *worker.Job) Info {
	raw, ok := job.Headers[broker.HeaderChain]
	if !ok {
		return Info{}
	}
	s, err := broker.ReadSlip(raw)
	if err != nil {
		return Info{}
	}
	return Info{ChainID: s.ChainID, Step: s.Step, Compensating: s.Compensating, Failed: s.Failed, Remaining: len(s.Next)}
}
