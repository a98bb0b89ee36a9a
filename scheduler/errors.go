package scheduler

import (
	"errors"
	"strings"
)

// ScheduleError reports what is wrong with one schedule; New and Validate
// return one per schedule, joined.
type ScheduleError struct {
	Name     string
	Problems []string
}

func (e *ScheduleError) Error() string {
	return "scheduler: schedule " + quote(e.Name) + ": " + strings.Join(e.Problems, "; ")
}

var errLostLease = errors.New("scheduler: lost the lease (the lease queue's consumer ended)")

func quote(s string) string { return "\"" + s + "\"" }
