package redistest_test

import (
	"context"
	"testing"

	"github.com/warrenmq/warren/internal/redistest"
)

func TestClientPrefix(t *testing.T) {
	c, prefix := redistest.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, prefix+"k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, prefix+"k").Result(); err != nil || got != "v" {
		t.Fatalf("get %sk: %q, %v", prefix, got, err)
	}
}
