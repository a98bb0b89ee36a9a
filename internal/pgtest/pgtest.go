// Package pgtest gives tests a PostgreSQL database: DATABASE_URL when it
// is set, else the local default when it answers, else the test fails and
// says how to start one. Each test gets a schema of its own, dropped at
// the end.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/servicetest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultURL is the database a development machine runs (trust auth,
// database test).
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

var service = &servicetest.Service{
	Name:       "PostgreSQL",
	Env:        "DATABASE_URL",
	Default:    DefaultURL,
	HowToStart: "Debian: apt-get install postgresql, then pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start, and createdb test as postgres with trust auth for 127.0.0.1; or make services",
	Ping:       ping,
}

// URL returns the URL of the test PostgreSQL, failing t when there is none.
func URL(t testing.TB) string {
	t.Helper()
	return service.URL(t)
}

func ping(u string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return c.Ping(ctx)
}

// Schema creates a schema of the test's own and returns its name; it is
// dropped, with everything in it, when the test ends.
func Schema(t testing.TB) string {
	t.Helper()
	u := URL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + strings.ToLower(sanitize(t.Name())) + "_" + hex.EncodeToString(b[:])
	if len(name) > 63 {
		name = name[len(name)-63:]
		name = "t" + name[1:]
	}
	exec(t, u, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() {
		exec(t, u, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
	})
	return name
}

// Pool returns a pool on the test database whose connections use schema
// (search_path), closed when the test ends.
func Pool(t testing.TB, schema string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// SchemaURL returns the test database's URL with search_path set to
// schema, for a program the test starts.
func SchemaURL(t testing.TB, schema string) string {
	t.Helper()
	u := URL(t)
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "search_path=" + schema
}

func exec(t testing.TB, u, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
