package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultRetention is how long a relay keeps sent rows, for audit, unless
// told otherwise (WithRetention).
const DefaultRetention = 7 * 24 * time.Hour

// deleteChunk bounds the rows one DELETE removes, so that the retention
// never holds a long transaction.
const deleteChunk = 10_000

// Execer is what DeleteSent needs of a database: *pgx.Conn,
// *pgxpool.Pool and pgx.Tx are ones.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// DeleteSent deletes the rows sent more than olderThan ago (by the
// database's clock), in chunks, and returns how many it deleted. Unsent
// rows are never deleted, however old. A Relay calls it periodically with
// its retention.
func DeleteSent(ctx context.Context, db Execer, olderThan time.Duration) (int64, error) {
	if olderThan < 0 {
		return 0, errors.New("outbox: DeleteSent: negative age")
	}
	var total int64
	for {
		tag, err := db.Exec(ctx, `DELETE FROM warren_outbox WHERE id IN (
			SELECT id FROM warren_outbox
			WHERE sent_at IS NOT NULL AND sent_at < clock_timestamp() - make_interval(secs => $1)
			LIMIT $2)`, olderThan.Seconds(), deleteChunk)
		if err != nil {
			return total, fmt.Errorf("outbox: delete sent rows: %w", tableErr(err))
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < deleteChunk {
			return total, nil
		}
	}
}
