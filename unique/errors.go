package unique

import (
	"errors"
	"fmt"
)

// ErrDuplicate is what a *DuplicateError matches with errors.Is.
var ErrDuplicate = errors.New("unique: a job with the key is pending, retrying or running")

// DuplicateError is a Publish refused because another job holds its key.
type DuplicateError struct {
	// Key is the unique key.
	Key string
	// JobID is the job that holds it, when the store could tell.
	JobID string
}

func (e *DuplicateError) Error() string {
	if e.JobID == "" {
		return fmt.Sprintf("unique: key %q is held by another job (pending, retrying or running); it is released when that job ends", e.Key)
	}
	return fmt.Sprintf("unique: key %q is held by job %s (pending, retrying or running); it is released when that job ends", e.Key, e.JobID)
}

// Is reports whether target is ErrDuplicate.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }
