package broker

import (
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/internal/logfield"
)

// ErrInvalidPayload: a job's payload does not match the contract of its
// type and version (WithValidator, WithCallValidator). The error also
// wraps the validator's (for *contract.Set, contract.ErrMismatch) and
// names each field at fault. Nothing was published: fix the payload, or
// publish it as the version whose contract it follows.
var ErrInvalidPayload = errors.New("broker: the payload does not match its contract")

// PayloadValidator checks a job's payload against the contract of its
// type and version (0 is version 1). payload is the body as it decodes
// into an interface value: maps, lists, strings, numbers, booleans, nil,
// []byte and time.Time. Validate returns nil when the payload matches.
//
// An error that wraps one with a method NoContract() bool returning true
// (contract.ErrNoContract does) says the validator declares nothing for
// that type and version: the job is not refused, and a warning is logged
// once per type and version. Any other error refuses the payload.
//
// *contract.Set is a PayloadValidator. It must be safe for concurrent use.
type PayloadValidator interface {
	Validate(jobType string, version int, payload any) error
}

// WithValidator checks every job's payload against v before it is
// published: the encoded body is decoded as a worker would decode it and
// validated against its type and version. A payload v refuses is an error
// wrapping ErrInvalidPayload (and v's error), and nothing is published.
// Off by default; see docs/versioning.md for what it costs. For a
// Publisher only (a Sender publishes retries and dead letters, which must
// never be refused).
func WithValidator(v PayloadValidator) PublisherOption {
	return func(o *publisherOptions) error {
		if v == nil {
			return errors.New("broker: WithValidator: nil validator")
		}
		o.validator = v
		o.publisherOnly = "WithValidator"
		return nil
	}
}

// WithCallValidator checks every request's payload against v before it
// is sent, as WithValidator does for a Publisher.
func WithCallValidator(v PayloadValidator) CallerOption {
	return func(o *callerOptions) error {
		if v == nil {
			return errors.New("broker: WithCallValidator: nil validator")
		}
		o.validator = v
		return nil
	}
}

// isNoContract reports whether err, a PayloadValidator's error, says the
// validator declares no contract for the job's type and version.
func isNoContract(err error) bool {
	var nc interface{ NoContract() bool }
	return errors.As(err, &nc) && nc.NoContract()
}

// payloadCheck validates payloads before they are published; the zero
// value (no validator) lets everything through.
type payloadCheck struct {
	v      PayloadValidator
	log    zerolog.Logger
	warned sync.Map // typeVersion -> struct{}: undeclared, warned of
}

type typeVersion struct {
	jobType string
	version int
}

// check validates env's payload; the error wraps ErrInvalidPayload.
func (c *payloadCheck) check(env *Envelope) error {
	if c == nil || c.v == nil {
		return nil
	}
	// The body was just encoded: only its nesting is bounded, as deep as a
	// worker may be allowed to decode.
	var payload any
	if err := decodeBody(env.Body, Limits{MaxBytes: max(len(env.Body), 1), MaxDepth: MaxDepthLimit}, &payload); err != nil {
		return fmt.Errorf("%w: the body does not decode: %w", ErrInvalidPayload, err)
	}
	err := c.v.Validate(env.Type, env.Version, payload)
	switch {
	case err == nil:
		return nil
	case isNoContract(err):
		tv := typeVersion{env.Type, max(env.Version, 1)}
		if _, seen := c.warned.LoadOrStore(tv, struct{}{}); !seen {
			c.log.Warn().Err(err).Str(logfield.JobType, env.Type).Int(logfield.JobVersion, tv.version).
				Msg("broker: no contract for the job type and version; its payloads are published unchecked")
		}
		return nil
	}
	return &payloadError{err}
}

// payloadError is a payload the validator refused: its text is the
// validator's, with what to do.
type payloadError struct{ err error }

func (e *payloadError) Error() string {
	return e.err.Error() + "; fix the payload, or publish it as the version whose contract it follows"
}

func (e *payloadError) Unwrap() []error { return []error{ErrInvalidPayload, e.err} }
