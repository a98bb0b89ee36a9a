package deadletter

import (
	"errors"
	"fmt"

	"github.com/warrenmq/warren/broker"
)

// Why a job was not moved. An import reports them per record
// (ImportFailure), a replay per job (Failed), with the line or job, so
// their text names no package. Callers match them with errors.Is.
var (
	// ErrNoQueueNamed: a record to import names no queue, and the import
	// has no target of its own (ImportOptions.To): give it one.
	ErrNoQueueNamed = errors.New("the record names no queue")
	// ErrUnknownOrigin: a job to replay carries no origin (no warren
	// headers, no x-death), and the replay has no target of its own
	// (ReplayOptions.To): give it one.
	ErrUnknownOrigin = errors.New("the job's origin is unknown (no warren headers, no x-death)")
	// ErrNotAJob: a message to replay is not a well-formed job; the error
	// wraps why (an error of package broker). It can never be handled as
	// it is: its producer needs fixing.
	ErrNotAJob = errors.New("the message is not a job")
	// ErrHeadersLost: a job's header table could not be read (the error
	// wraps the *broker.HeadersError), so a record of it would lose its
	// headers: it is neither exported nor purged into records. Look at it
	// as it is, and delete it once it is not needed.
	ErrHeadersLost = errors.New("deadletter: its headers could not be read, and a record without them would lose them")
)

// LineError is a line a Decoder could not read.
type LineError struct {
	Line int // 1 for the first
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// missingQueueError: an import sent a record through the default exchange
// to the queue it names, and the broker returned it: this broker has no
// queue of that name. It wraps broker.ErrNoQueue and the publish's error
// (broker.ErrUnroutable).
type missingQueueError struct {
	queue string
	err   error
}

func (e *missingQueueError) Error() string {
	return fmt.Sprintf("there is no queue %q on this broker: %v", e.queue, e.err)
}

func (e *missingQueueError) Unwrap() []error { return []error{broker.ErrNoQueue, e.err} }

// lostHeaders is the error for a job whose header table could not be read
// (the AMQP client delivered it without): its record would lack the
// headers, so none is written. It wraps ErrHeadersLost and the
// *broker.HeadersError.
func lostHeaders(e Entry) error {
	var herr *broker.HeadersError
	if !errors.As(e.Malformed, &herr) {
		return nil
	}
	return &lostHeadersError{herr}
}

type lostHeadersError struct {
	herr *broker.HeadersError
}

func (e *lostHeadersError) Error() string {
	return fmt.Sprintf("its headers could not be read (%v), and a record without them would lose them", e.herr)
}

func (e *lostHeadersError) Unwrap() []error { return []error{ErrHeadersLost, e.herr} }
