// Package redistest gives tests a Redis server: REDIS_URL when it is set,
// else the local default when it answers, else the test fails and says how
// to start one. Each test gets a key prefix of its own, whose keys are
// deleted at the end.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/servicetest"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the Redis a development machine runs.
const DefaultURL = "redis://127.0.0.1:6379/0"

var service = &servicetest.Service{
	Name:       "Redis",
	Env:        "REDIS_URL",
	Default:    DefaultURL,
	HowToStart: "Debian: apt-get install redis-server, then redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\"; or make services",
	Ping:       ping,
}

// URL returns the URL of the test Redis, failing t when there is none.
func URL(t testing.TB) string {
	t.Helper()
	return service.URL(t)
}

func ping(u string, timeout time.Duration) error {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Ping(ctx).Err()
}

// Client returns a client of the test Redis, closed when the test ends,
// and a key prefix of the test's own ("warren-test:<random>:"): every key
// under it is deleted when the test ends.
func Client(t testing.TB) (*redis.Client, string) {
	t.Helper()
	opt, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix := "warren-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("redistest: clean up %s*: %v", prefix, err)
		}
		c.Close()
	})
	return c, prefix
}
