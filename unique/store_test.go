package unique_test

import (
	"errors"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/redistest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/unique"
	"github.com/warrenmq/warren/unique/pgunique"
	"github.com/warrenmq/warren/unique/redisunique"
)

// stores are the Store implementations, each made for one test.
var stores = []struct {
	name string
	new  func(t *testing.T) unique.Store
}{
	{"memory", func(*testing.T) unique.Store { return unique.NewMemory() }},
	{"postgres", func(t *testing.T) unique.Store { return newPG(t) }},
	{"redis", func(t *testing.T) unique.Store {
		c, prefix := redistest.Client(t)
		s, err := redisunique.New(c, redisunique.WithPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

func newPG(t *testing.T) *pgunique.Store {
	t.Helper()
	s, err := pgunique.New(pgtest.Pool(t, pgtest.Schema(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(brokertest.Context(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStores is the behaviour every Store shares.
func TestStores(t *testing.T) {
	for _, tc := range stores {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := brokertest.Context(t, 60*time.Second)
			s := tc.new(t)
			duplicate := func(err error, holder string) {
				t.Helper()
				var de *unique.DuplicateError
				if !errors.As(err, &de) || !errors.Is(err, unique.ErrDuplicate) {
					t.Fatalf("error %v, want a *DuplicateError", err)
				}
				if de.Key != "k" || de.JobID != holder {
					t.Errorf("DuplicateError{Key: %q, JobID: %q}, want k held by %s", de.Key, de.JobID, holder)
				}
			}
			if err := s.Acquire(ctx, "k", "job-1", time.Hour); err != nil {
				t.Fatalf("acquire: %v", err)
			}
			duplicate(s.Acquire(ctx, "k", "job-2", time.Hour), "job-1")
			if err := s.Acquire(ctx, "k", "job-1", time.Hour); err != nil {
				t.Errorf("acquire again by its holder: %v, want nil", err)
			}
			if err := s.Acquire(ctx, "other", "job-2", time.Hour); err != nil {
				t.Errorf("acquire of another key: %v", err)
			}
			// Released by another job: nothing happens.
			if err := s.Release(ctx, "k", "job-2"); err != nil {
				t.Fatal(err)
			}
			duplicate(s.Acquire(ctx, "k", "job-3", time.Hour), "job-1")
			// Released by its holder: free.
			if err := s.Release(ctx, "k", "job-1"); err != nil {
				t.Fatal(err)
			}
			if err := s.Acquire(ctx, "k", "job-3", 300*time.Millisecond); err != nil {
				t.Fatalf("acquire after release: %v", err)
			}
			// Expired: free, and its old holder's release does not free
			// the new holder's.
			testkit.WaitFor(t, 30*time.Second, "the key to expire", func() bool {
				return s.Acquire(ctx, "k", "job-4", time.Hour) == nil
			})
			if err := s.Release(ctx, "k", "job-3"); err != nil {
				t.Fatal(err)
			}
			duplicate(s.Acquire(ctx, "k", "job-5", time.Hour), "job-4")
		})
	}
}
