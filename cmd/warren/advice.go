package main

import (
	"errors"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
)

// The packages' errors say what went wrong, in their own terms; the
// command line adds which command or flag of its own to use about it.

// advice is what a user of warren does about err: a command or a flag, or
// "" when warren has none to give.
func advice(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, deadletter.ErrNoQueueNamed):
		return "import it with --to QUEUE"
	case errors.Is(err, deadletter.ErrUnknownOrigin):
		return "replay it with --to"
	case errors.Is(err, deadletter.ErrNotAJob):
		return "inspect it with warren dlq show, fix the producer, and replay with --to only if a worker can take it as it is"
	case errors.Is(err, deadletter.ErrHeadersLost):
		return "look at it with warren dlq show, and delete it with warren dlq purge --id, without --export, once it is not needed"
	case errors.Is(err, broker.ErrNoExchange), errors.Is(err, broker.ErrNoQueue):
		return "apply it with warren topology apply -f FILE"
	}
	return ""
}

// importAdvice is advice for a record an import could not publish: a
// queue its record names that does not exist can also be left for
// another.
func importAdvice(err error) string {
	if errors.Is(err, broker.ErrNoQueue) {
		return "declare it (warren topology apply -f FILE) or import with --to QUEUE"
	}
	return advice(err)
}

// advised is err's text with advice(err) after it.
func advised(err error) string {
	return withAdvice(err, advice(err))
}

// importAdvised is err's text with importAdvice(err) after it.
func importAdvised(err error) string {
	return withAdvice(err, importAdvice(err))
}

func withAdvice(err error, a string) string {
	if a == "" {
		return err.Error()
	}
	return err.Error() + "; " + a
}
