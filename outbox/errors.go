package outbox

import (
	"errors"

	"github.com/warrenmq/warren/broker"
)

var (
	// ErrNoRoute: Publish was given neither To nor a Router that routes
	// the job's type. It wraps broker.ErrNoRoute.
	ErrNoRoute = broker.ErrNoRoute

	// ErrNoTable: the outbox's table does not exist in the search_path;
	// run Migrate (warren outbox migrate) first.
	ErrNoTable = errors.New("outbox: no table warren_outbox in the search_path; run outbox.Migrate (warren outbox migrate --database-url URL) first")
)
