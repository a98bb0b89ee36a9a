package worker

import (
	"errors"
	"fmt"
	"time"
)

// ErrPermanent marks a failure that retrying cannot fix (a payload that
// fails validation, a record that no longer exists): a handler returns an
// error wrapping it, with Permanent or fmt.Errorf("...: %w",
// worker.ErrPermanent), and the job goes to the dead-letter queue at once.
var ErrPermanent = errors.New("worker: permanent failure")

// ErrUnknownType is returned by Mux for a job type no handler is registered
// for. Such a job is dead-lettered at once: register a handler, then replay
// it from the dead-letter queue.
var ErrUnknownType = errors.New("worker: no handler for the job type")

// Permanent wraps err so that the job is dead-lettered without retrying.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() []error {
	return []error{e.err, ErrPermanent}
}

// RetryAfter wraps err so that the job, unless it has no attempt left, is
// retried after d instead of its policy's backoff (e.g. the Retry-After of
// a rate-limited API). d is rounded up to whole seconds, at least one.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	return &retryAfterError{d: d, err: err}
}

type retryAfterError struct {
	d   time.Duration
	err error
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// PanicError is the failure of a handler that panicked.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the handler goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("worker: handler panicked: %v", e.Value) }

// Error classes, written to the warren-error-class header of retried and
// dead-lettered jobs. Operators filter and group dead letters by them.
const (
	// ClassError: the handler returned an error. Retried.
	ClassError = "error"
	// ClassTimeout: the handler returned an error after its timeout.
	// Retried.
	ClassTimeout = "timeout"
	// ClassPanic: the handler panicked. Retried, unless the pool was
	// built with WithPanicPolicy(DeadLetterPanics).
	ClassPanic = "panic"
	// ClassPermanent: the handler returned an error wrapping ErrPermanent.
	// Dead-lettered at once.
	ClassPermanent = "permanent"
	// ClassDecode: the body is not MessagePack, is too deep or does not fit
	// the handler's payload type. Dead-lettered at once.
	ClassDecode = "decode"
	// ClassSchema: the payload does not match the contract of the job's
	// type and version (WithValidator), or cannot be converted to the
	// version its handler takes (Upcast). Dead-lettered at once.
	ClassSchema = "schema"
	// ClassTooLarge: the body is over the pool's size limit. Dead-lettered
	// at once, before any decoding.
	ClassTooLarge = "too-large"
	// ClassUnknownType: no handler is registered for the job type.
	// Dead-lettered at once.
	ClassUnknownType = "unknown-type"
	// ClassMalformed: the message is not a job (another content type, no
	// type property, unreadable warren headers). Dead-lettered at once, as
	// it came.
	ClassMalformed = "malformed"
	// ClassReply: the job succeeded, but its result could not be
	// delivered: its reply_to names a queue that does not exist.
	// Dead-lettered, to be replayed once the reply queue exists.
	ClassReply = "reply"
	// ClassCrash: the job's worker process died while running it alone,
	// the crash limit's number of times (see WithCrashLimit): the job
	// kills its workers. Dead-lettered.
	ClassCrash = "crash"
)
