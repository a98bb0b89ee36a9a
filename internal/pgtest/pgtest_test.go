package pgtest_test

import (
	"context"
	"testing"

	"github.com/warrenmq/warren/internal/pgtest"
)

func TestSchemaIsolatesTables(t *testing.T) {
	schema := pgtest.Schema(t)
	p := pgtest.Pool(t, schema)
	ctx := context.Background()
	if _, err := p.Exec(ctx, "CREATE TABLE things (id int primary key)"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := p.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'things' AND table_schema = $1", schema).Scan(&got); err != nil {
		t.Fatalf("the table is not in the test's schema %s: %v", schema, err)
	}
}
