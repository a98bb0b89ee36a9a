package worker

import (
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/logfield"
)

// PayloadValidator checks a job's payload against the contract of its
// type and version; *contract.Set is one. See broker.PayloadValidator.
type PayloadValidator = broker.PayloadValidator

// WithValidator checks each job's payload against v on receipt, before
// the handler (and its middleware) sees it: the body is decoded into an
// interface value and validated against the job's type and version. A
// payload v refuses dead-letters the job at once, class "schema", with
// v's error (the fields at fault) in warren-error; a body that does not
// decode, class "decode". An error reply (its warren-reply-status
// "error") carries no payload and is not checked. A type or version v
// declares no contract for
// (contract.ErrNoContract) is handled unchecked, with a warning logged
// once per type and version. Off by default; see docs/versioning.md for
// what it costs.
func WithValidator(v PayloadValidator) Option {
	return func(o *options) error {
		if v == nil {
			return errors.New("worker: WithValidator: nil validator")
		}
		o.validator = v
		return nil
	}
}

// validation is a pool's WithValidator.
type validation struct {
	v      PayloadValidator
	log    zerolog.Logger
	warned sync.Map // typeVersion -> struct{}: undeclared, warned of
}

// check validates job's payload. The error wraps broker.ErrInvalidPayload
// (class schema) or broker.ErrBadBody (class decode).
func (c *validation) check(job *Job) error {
	if job.Envelope != nil && job.Envelope.RemoteErr() != nil {
		return nil // an error reply: its body is empty, warren-error says why
	}
	var payload any
	if err := job.Decode(&payload); err != nil {
		return err
	}
	err := c.v.Validate(job.Type, job.Version, payload)
	switch {
	case err == nil:
		return nil
	case isNoContract(err):
		tv := typeVersion{job.Type, max(job.Version, 1)}
		if _, seen := c.warned.LoadOrStore(tv, struct{}{}); !seen {
			c.log.Warn().Err(err).Str(logfield.JobType, job.Type).Int(logfield.JobVersion, tv.version).
				Msg("worker: no contract for the job type and version; its payloads are handled unchecked")
		}
		return nil
	}
	return &schemaError{err: err}
}

// isNoContract reports whether err, a PayloadValidator's error, says the
// validator declares no contract for the job's type and version.
func isNoContract(err error) bool {
	var nc interface{ NoContract() bool }
	return errors.As(err, &nc) && nc.NoContract()
}

// schemaError is a payload that does not fit the contract of its job's
// type and version (class schema).
type schemaError struct {
	err  error
	hint string // what to do; the default when empty
}

func (e *schemaError) Error() string {
	hint := e.hint
	if hint == "" {
		hint = "fix the producer, or the contract, then replay the job from the dead-letter queue"
	}
	return fmt.Sprintf("worker: %v; %s", e.err, hint)
}

// Unwrap returns broker.ErrInvalidPayload, ErrPermanent (the job is
// dead-lettered at once) and the validator's or conversion's error.
func (e *schemaError) Unwrap() []error {
	return []error{broker.ErrInvalidPayload, ErrPermanent, e.err}
}
