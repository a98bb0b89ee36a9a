package broker

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// The headers of a chain of jobs (package workflow).
const (
	// HeaderChain holds a job's routing slip (Slip), a table: the chain
	// it belongs to and what comes after it.
	HeaderChain = "warren-chain"
	// HeaderChainInput holds the previous step's result (MessagePack
	// bytes) on a step that has a payload of its own; a step without one
	// gets the result as its payload.
	HeaderChainInput = "warren-chain-input"
)

// Limits of a routing slip: it travels in a header, and a message's
// headers must fit in one AMQP frame (128 KiB by default).
const (
	// MaxSlipSteps is the most steps a chain holds, compensations included.
	MaxSlipSteps = 100
	// MaxSlipBytes is the most bytes of payloads a slip holds.
	MaxSlipBytes = 32 << 10
)

// Slip is a job's routing slip: the chain of jobs it belongs to, the
// steps after it, and the compensations of the steps done before it. It
// travels with the job in its HeaderChain header, through retries, dead
// letters and replays; the worker pool that settles the job reads it and
// publishes what comes next (package worker). Build one with package
// workflow.
type Slip struct {
	// ChainID identifies the chain: the first step's job id.
	ChainID string
	// Step is the job's place in the chain, from 0; a compensation's is
	// its place among the compensations, from 0 for the first to run.
	Step int
	// Next are the steps after this one, in order; for a compensation,
	// the compensations still to run.
	Next []SlipStep
	// Compensate is this step's compensation, run when a later step
	// fails for good; nil for none.
	Compensate *SlipStep
	// Done are the compensations of the steps done before this one,
	// oldest first, their payloads resolved.
	Done []SlipStep
	// Compensating is set on a compensation.
	Compensating bool
	// Failed is the step that failed for good, on the compensations it
	// caused.
	Failed *SlipFailure
}

// SlipStep is one step of a chain, not yet published.
type SlipStep struct {
	// Type is the step's job type.
	Type string
	// Payload is the step's MessagePack-encoded payload; nil: the
	// previous step's result (for a compensation, its step's result).
	Payload []byte
	// Exchange and RoutingKey are where the step goes when Routed; else
	// its type's route in the topology of the pool that publishes it.
	Exchange, RoutingKey string
	Routed               bool
	// Compensate is the step's compensation; nil for none. A
	// compensation has none of its own.
	Compensate *SlipStep
}

// SlipFailure is the step of a chain that failed for good.
type SlipFailure struct {
	JobID, Type, Class, Error string
}

// ErrInvalidSlip is wrapped by the errors of a routing slip that cannot
// be used: malformed, or over the limits.
var ErrInvalidSlip = errors.New("broker: invalid routing slip")

// Table returns the slip as the value of its header.
func (s *Slip) Table() Table {
	t := Table{"id": s.ChainID, "step": int64(s.Step)}
	if len(s.Next) > 0 {
		t["next"] = stepsTable(s.Next)
	}
	if s.Compensate != nil {
		t["compensate"] = s.Compensate.table()
	}
	if len(s.Done) > 0 {
		t["done"] = stepsTable(s.Done)
	}
	if s.Compensating {
		t["compensating"] = true
	}
	if f := s.Failed; f != nil {
		t["failed"] = Table{"job_id": f.JobID, "type": f.Type, "class": f.Class, "error": truncateUTF8(f.Error, MaxErrorHeader)}
	}
	return t
}

func stepsTable(steps []SlipStep) []any {
	a := make([]any, len(steps))
	for i := range steps {
		a[i] = steps[i].table()
	}
	return a
}

func (s *SlipStep) table() Table {
	t := Table{"type": s.Type}
	if s.Payload != nil {
		t["payload"] = s.Payload
	}
	if s.Routed {
		t["exchange"], t["routing_key"] = s.Exchange, s.RoutingKey
	}
	if s.Compensate != nil {
		t["compensate"] = s.Compensate.table()
	}
	return t
}

// Check reports what makes s unusable: no chain id, a step without a
// type, a compensation with a compensation, more than MaxSlipSteps steps
// or MaxSlipBytes of payloads. The error wraps ErrInvalidSlip.
func (s *Slip) Check() error {
	if s.ChainID == "" || len(s.ChainID) > 255 || !utf8.ValidString(s.ChainID) {
		return fmt.Errorf("%w: the chain id must be 1 to 255 bytes of UTF-8", ErrInvalidSlip)
	}
	if s.Step < 0 {
		return fmt.Errorf("%w: step %d is negative", ErrInvalidSlip, s.Step)
	}
	steps, size := 0, 0
	var check func(where string, st *SlipStep, comp bool) error
	check = func(where string, st *SlipStep, comp bool) error {
		steps++
		size += len(st.Payload)
		if st.Type == "" || len(st.Type) > 255 || !utf8.ValidString(st.Type) {
			return fmt.Errorf("%w: %s: the job type must be 1 to 255 bytes of UTF-8", ErrInvalidSlip, where)
		}
		if st.Routed && (len(st.Exchange) > 255 || len(st.RoutingKey) > 255) {
			return fmt.Errorf("%w: %s: exchange names and routing keys are at most 255 bytes", ErrInvalidSlip, where)
		}
		if st.Compensate != nil {
			if comp {
				return fmt.Errorf("%w: %s: a compensation cannot have a compensation of its own", ErrInvalidSlip, where)
			}
			return check(where+" compensation", st.Compensate, true)
		}
		return nil
	}
	for i := range s.Next {
		if err := check(fmt.Sprintf("next step %d (%s)", i, s.Next[i].Type), &s.Next[i], s.Compensating); err != nil {
			return err
		}
	}
	if s.Compensate != nil {
		if err := check("the step's compensation", s.Compensate, true); err != nil {
			return err
		}
	}
	for i := range s.Done {
		if err := check(fmt.Sprintf("done compensation %d (%s)", i, s.Done[i].Type), &s.Done[i], true); err != nil {
			return err
		}
	}
	if steps > MaxSlipSteps {
		return fmt.Errorf("%w: %d steps and compensations, the limit is %d", ErrInvalidSlip, steps, MaxSlipSteps)
	}
	if size > MaxSlipBytes {
		return fmt.Errorf("%w: %d bytes of payloads, the limit is %d: pass large data by reference (an id to fetch)", ErrInvalidSlip, size, MaxSlipBytes)
	}
	return nil
}

// ReadSlip reads a routing slip from the value of a HeaderChain header,
// as a delivery holds it. The error wraps ErrInvalidSlip.
func ReadSlip(v any) (*Slip, error) {
	t, ok := v.(Table)
	if !ok {
		if m, isMap := v.(map[string]any); isMap {
			t, ok = Table(m), true
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s is %s, want a table", ErrInvalidSlip, HeaderChain, describe(v))
	}
	var s Slip
	var err error
	if s.ChainID, err = slipString(t, "id", true); err != nil {
		return nil, err
	}
	if n, present := t["step"]; present {
		if s.Step, err = headerInt(HeaderChain+" step", n, 0, MaxSlipSteps); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidSlip, err)
		}
	}
	if s.Next, err = readSteps(t, "next"); err != nil {
		return nil, err
	}
	if s.Done, err = readSteps(t, "done"); err != nil {
		return nil, err
	}
	if c, present := t["compensate"]; present {
		if s.Compensate, err = readStep("compensate", c); err != nil {
			return nil, err
		}
	}
	if c, present := t["compensating"]; present {
		b, isBool := c.(bool)
		if !isBool {
			return nil, fmt.Errorf("%w: compensating is %s, want a boolean", ErrInvalidSlip, describe(c))
		}
		s.Compensating = b
	}
	if f, present := t["failed"]; present {
		ft, isTable := asTable(f)
		if !isTable {
			return nil, fmt.Errorf("%w: failed is %s, want a table", ErrInvalidSlip, describe(f))
		}
		var sf SlipFailure
		for _, field := range []struct {
			name string
			dst  *string
		}{{"job_id", &sf.JobID}, {"type", &sf.Type}, {"class", &sf.Class}, {"error", &sf.Error}} {
			if *field.dst, err = slipString(ft, field.name, false); err != nil {
				return nil, err
			}
		}
		s.Failed = &sf
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	return &s, nil
}

func asTable(v any) (Table, bool) {
	switch t := v.(type) {
	case Table:
		return t, true
	case map[string]any:
		return Table(t), true
	}
	return nil, false
}

func slipString(t Table, name string, required bool) (string, error) {
	v, present := t[name]
	if !present {
		if required {
			return "", fmt.Errorf("%w: no %q", ErrInvalidSlip, name)
		}
		return "", nil
	}
	s, ok := stringOf(v)
	if !ok {
		return "", fmt.Errorf("%w: %s is %s, want a string", ErrInvalidSlip, name, describe(v))
	}
	return s, nil
}

func readSteps(t Table, name string) ([]SlipStep, error) {
	v, present := t[name]
	if !present || v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s is %s, want an array", ErrInvalidSlip, name, describe(v))
	}
	if len(a) > MaxSlipSteps {
		return nil, fmt.Errorf("%w: %s holds %d steps, the limit is %d", ErrInvalidSlip, name, len(a), MaxSlipSteps)
	}
	steps := make([]SlipStep, len(a))
	for i, e := range a {
		st, err := readStep(fmt.Sprintf("%s[%d]", name, i), e)
		if err != nil {
			return nil, err
		}
		steps[i] = *st
	}
	return steps, nil
}

func readStep(where string, v any) (*SlipStep, error) {
	t, ok := asTable(v)
	if !ok {
		return nil, fmt.Errorf("%w: %s is %s, want a table", ErrInvalidSlip, where, describe(v))
	}
	var st SlipStep
	var err error
	if st.Type, err = slipString(t, "type", true); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if p, present := t["payload"]; present {
		switch b := p.(type) {
		case []byte:
			st.Payload = b
		case string: // a producer whose library writes byte arrays as strings
			st.Payload = []byte(b)
		default:
			return nil, fmt.Errorf("%w: %s payload is %s, want a byte array of MessagePack", ErrInvalidSlip, where, describe(p))
		}
	}
	if _, present := t["exchange"]; present {
		st.Routed = true
		if st.Exchange, err = slipString(t, "exchange", false); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if st.RoutingKey, err = slipString(t, "routing_key", false); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	if c, present := t["compensate"]; present {
		if st.Compensate, err = readStep(where+" compensate", c); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// RoutingSlip makes the job the first step of a chain, with slip in its
// HeaderChain header: the worker pool that settles it publishes what
// comes next. Package workflow sets it; it is refused by PublishBatch of
// more than one job and by Call (a chain's steps are not awaited). The
// error wraps ErrInvalidOption and ErrInvalidSlip.
func RoutingSlip(slip *Slip) PublishOption {
	return func(o *publishOptions) error {
		if slip == nil {
			return fmt.Errorf("%w: RoutingSlip: nil slip", ErrInvalidOption)
		}
		if err := slip.Check(); err != nil {
			return fmt.Errorf("%w: RoutingSlip: %w", ErrInvalidOption, err)
		}
		o.slip = slip
		return nil
	}
}
