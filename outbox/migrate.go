package outbox

import (
	"context"
	"embed"

	"github.com/warrenmq/warren/internal/pgmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// schema is the package's versioned schema, recorded in
// warren_outbox_migrations.
var schema = pgmigrate.Set{Package: "outbox", FS: migrations, Dir: "migrations"}

// DB is what Migrate needs of a database: *pgx.Conn and *pgxpool.Pool
// are ones.
type DB = pgmigrate.DB

// Migration is one step of the outbox's schema.
type Migration = pgmigrate.Migration

// Migrations returns the outbox's migrations in order, as Migrate applies
// them, for a project that applies its schema with its own tool.
func Migrations() ([]Migration, error) { return schema.Migrations() }

// Migrate creates or updates the outbox's tables in the first schema of
// the connection's search_path, and returns the versions it applied (none
// when the schema was up to date). It is idempotent and safe to run from
// several processes at once: one transaction, under an advisory lock per
// schema, applies the missing versions and records each in
// warren_outbox_migrations. A failed migration leaves nothing behind.
func Migrate(ctx context.Context, db DB) (applied []int, err error) {
	return schema.Apply(ctx, db)
}
