package inbox

import (
	"errors"
	"fmt"
)

// ErrProcessed is what a Store's Claim returns for a job the consumer
// processed before: the middleware skips it (the delivery is acked, the
// handler does not run).
var ErrProcessed = errors.New("inbox: job already processed")

// ProcessedError is the ErrProcessed of a store that keeps results
// (ResultClaim): Result is the result the job's handler set the first
// time (MessagePack), nil when it set none. errors.Is(err, ErrProcessed)
// matches it.
type ProcessedError struct {
	Result []byte
}

func (e *ProcessedError) Error() string {
	if e.Result == nil {
		return ErrProcessed.Error()
	}
	return fmt.Sprintf("%v (its result kept: %d bytes)", ErrProcessed, len(e.Result))
}

// Is makes errors.Is(err, ErrProcessed) true.
func (e *ProcessedError) Is(target error) bool { return target == ErrProcessed }

// ErrBusy is what a Store's Claim returns for a job another worker is
// running now (it holds the job's lease). The middleware returns an error
// wrapping it, so the job is retried later; by then the other worker has
// marked it done, or given it up.
var ErrBusy = errors.New("inbox: job being processed by another worker")
