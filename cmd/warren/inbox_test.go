package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/pgtest"
)

// TestStoreMigrate: warren inbox migrate and warren unique migrate create
// their tables, again without harm, and --print writes the SQL alone.
func TestStoreMigrate(t *testing.T) {
	schema := pgtest.Schema(t)
	db := pgtest.Pool(t, schema)
	for _, tc := range []struct{ noun, table string }{{"inbox", "warren_inbox"}, {"unique", "warren_unique"}} {
		t.Run(tc.noun, func(t *testing.T) {
			for range 2 {
				code, out, errOut := warren(t, tc.noun, "migrate", "--database-url", pgtest.SchemaURL(t, schema), "--json")
				if code != 0 || !strings.Contains(out, `"table": "`+tc.table+`"`) {
					t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var n int
			if err := db.QueryRow(ctx, "SELECT count(*) FROM "+tc.table).Scan(&n); err != nil {
				t.Fatalf("the table: %v", err)
			}
			code, out, _ := warren(t, tc.noun, "migrate", "--print", "--table", "s.t")
			if code != 0 || !strings.Contains(out, `CREATE TABLE IF NOT EXISTS "s"."t"`) {
				t.Errorf("--print: exit %d, %q", code, out)
			}
			t.Setenv(envDatabaseURL, "")
			t.Setenv(envDatabaseURLFallback, "")
			if code, _, errOut := warren(t, tc.noun, "migrate"); code != exitUsage || !strings.Contains(errOut, "--database-url") {
				t.Errorf("without a database: exit %d, %q; want a usage error naming --database-url", code, errOut)
			}
		})
	}
}
