package saga

import (
	"context"
	"embed"

	"github.com/warrenmq/warren/internal/pgmigrate"
	"github.com/warrenmq/warren/outbox"
)

//go:embed migrations/*.sql
var migrations embed.FS

// schema is the package's versioned schema, recorded in
// warren_saga_migrations.
var schema = pgmigrate.Set{Package: "saga", FS: migrations, Dir: "migrations"}

// DB is what Migrate needs of a database: *pgx.Conn and *pgxpool.Pool
// are ones.
type DB = pgmigrate.DB

// Migration is one step of the saga's schema.
type Migration = pgmigrate.Migration

// Migrations returns the saga's migrations in order, as Migrate applies
// them, for a project that applies its schema with its own tool (after the
// outbox's: outbox.Migrations).
func Migrations() ([]Migration, error) { return schema.Migrations() }

// Migrate creates or updates the saga's tables in the first schema of
// the connection's search_path, and returns the versions it applied (none
// when the schema was up to date). It is idempotent and safe to run from
// several processes at once: one transaction, under an advisory lock per
// schema, applies the missing versions and records each in
// warren_saga_migrations. A failed migration leaves nothing behind.
//
// It first migrates the outbox (outbox.Migrate), through which the sagas'
// commands are sent.
func Migrate(ctx context.Context, db DB) (applied []int, err error) {
	if _, err := outbox.Migrate(ctx, db); err != nil {
		return nil, err
	}
	return schema.Apply(ctx, db)
}
