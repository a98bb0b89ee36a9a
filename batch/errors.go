package batch

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// ErrInvalid: Publish was given a batch it cannot write (no job, too
	// many, a callback without a type, duplicate job ids, …). The error
	// wrapping it says what to change.
	ErrInvalid = errors.New("batch: invalid batch")

	// ErrNotFound: Get was given the id of no batch (never written, its
	// transaction rolled back, or deleted by the retention).
	ErrNotFound = errors.New("batch: no such batch")

	// ErrNoTable: the batches' tables do not exist in the search_path;
	// run Migrate (warren batch migrate) first.
	ErrNoTable = errors.New("batch: no table warren_batch in the search_path; run batch.Migrate (warren batch migrate --database-url URL) first")
)

// invalid returns an error wrapping ErrInvalid.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// tableErr turns PostgreSQL's "relation does not exist" for the batches'
// tables into ErrNoTable.
func tableErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
		return fmt.Errorf("%w (%w)", ErrNoTable, err)
	}
	return err
}
