package saga

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNoTable: the saga's tables do not exist in the search_path; run
	// Migrate (warren saga migrate) first.
	ErrNoTable = errors.New("saga: no table warren_saga in the search_path; run saga.Migrate (warren saga migrate --database-url URL) first")

	// ErrNotRegistered: Start was given a definition the coordinator does
	// not know; Register it first.
	ErrNotRegistered = errors.New("saga: definition not registered with the coordinator; call Register first")

	// ErrExists: Start was given the id of a saga that exists.
	ErrExists = errors.New("saga: a saga with this id exists")

	// ErrNotFound: no saga has the id asked for.
	ErrNotFound = errors.New("saga: no such saga")
)

// DefinitionError lists every problem of a saga definition.
type DefinitionError struct {
	Saga     string
	Problems []string
}

func (e *DefinitionError) Error() string {
	return fmt.Sprintf("saga: definition %q: %s", e.Saga, strings.Join(e.Problems, "; "))
}
