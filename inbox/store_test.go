package inbox_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/warrenmq/warren/inbox"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/inbox/redisinbox"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/pgtest"
	"github.com/warrenmq/warren/internal/redistest"
	"github.com/warrenmq/warren/internal/testkit"
)

// stores are the Store implementations, each made for one test.
var stores = []struct {
	name string
	new  func(t *testing.T) inbox.Store
	// waits is set when a second claim of a running job waits for the
	// first to end (PostgreSQL) rather than failing with ErrBusy.
	waits bool
}{
	{"memory", func(*testing.T) inbox.Store { return inbox.NewMemory() }, false},
	{"postgres", func(t *testing.T) inbox.Store { return newPG(t) }, true},
	{"redis", func(t *testing.T) inbox.Store {
		c, prefix := redistest.Client(t)
		s, err := redisinbox.New(c, redisinbox.WithPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, false},
}

// newPG returns a PostgreSQL store in a schema of the test's own, its
// table created.
func newPG(t *testing.T) *pginbox.Store {
	t.Helper()
	pool := pgtest.Pool(t, pgtest.Schema(t))
	s, err := pginbox.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(brokertest.Context(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStoresKeepResults: a result committed with the record comes back
// with ErrProcessed; a record without one gives none.
func TestStoresKeepResults(t *testing.T) {
	for _, tc := range stores {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := brokertest.Context(t, 60*time.Second)
			s := tc.new(t)
			for id, result := range map[string][]byte{"with": {0xa2, 'o', 'k', 0x00, 0xff}, "without": nil} {
				_, c, err := s.Claim(ctx, "a", id)
				if err != nil {
					t.Fatal(err)
				}
				rc, ok := c.(inbox.ResultClaim)
				if !ok {
					t.Fatalf("%T is not a ResultClaim", c)
				}
				if err := rc.CommitResult(ctx, result); err != nil {
					t.Fatal(err)
				}
				_, _, err = s.Claim(ctx, "a", id)
				var pe *inbox.ProcessedError
				if !errors.As(err, &pe) || !errors.Is(err, inbox.ErrProcessed) || !bytes.Equal(pe.Result, result) || (result == nil) != (pe.Result == nil) {
					t.Errorf("%s: claim after CommitResult: %v (%#v), want a ProcessedError holding %x", id, err, pe, result)
				}
			}
		})
	}
}

// TestStores is the behaviour every Store shares.
func TestStores(t *testing.T) {
	for _, tc := range stores {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := brokertest.Context(t, 60*time.Second)
			s := tc.new(t)
			claim := func(consumer, id string) (inbox.Claim, error) {
				t.Helper()
				_, c, err := s.Claim(ctx, consumer, id)
				return c, err
			}

			// Committed: skipped afterwards, by this consumer only.
			c, err := claim("a", "job-1")
			if err != nil {
				t.Fatalf("first claim: %v", err)
			}
			if err := c.Commit(ctx); err != nil {
				t.Fatalf("commit: %v", err)
			}
			if err := c.Rollback(ctx); err != nil {
				t.Errorf("rollback after commit: %v, want nil", err)
			}
			if _, err := claim("a", "job-1"); !errors.Is(err, inbox.ErrProcessed) {
				t.Errorf("claim of a committed job: %v, want ErrProcessed", err)
			}
			c, err = claim("b", "job-1")
			if err != nil {
				t.Fatalf("another consumer's claim of the job: %v, want a claim", err)
			}
			if err := c.Rollback(ctx); err != nil {
				t.Fatal(err)
			}

			// Rolled back: claimed again.
			c, err = claim("a", "job-2")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Rollback(ctx); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			c, err = claim("a", "job-2")
			if err != nil {
				t.Fatalf("claim after a rollback: %v, want a claim", err)
			}

			// Running: a second claim is busy, or waits for the first.
			if !tc.waits {
				if _, err := claim("a", "job-2"); !errors.Is(err, inbox.ErrBusy) {
					t.Errorf("second claim of a running job: %v, want ErrBusy", err)
				}
				if err := c.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				got := make(chan error, 1)
				go func() {
					_, c2, err := s.Claim(ctx, "a", "job-2")
					if err == nil {
						c2.Rollback(ctx)
					}
					got <- err
				}()
				select {
				case err := <-got:
					t.Fatalf("a second claim of a running job returned %v before the first ended", err)
				case <-time.After(200 * time.Millisecond):
				}
				if err := c.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				if err := <-got; !errors.Is(err, inbox.ErrProcessed) {
					t.Errorf("second claim, after the first committed: %v, want ErrProcessed", err)
				}
			}
			if _, err := claim("a", "job-2"); !errors.Is(err, inbox.ErrProcessed) {
				t.Errorf("claim after commit: %v, want ErrProcessed", err)
			}
		})
	}
}

func TestNewRefusesBadConsumers(t *testing.T) {
	for _, name := range []string{"", "a:b", "a b", string(make([]byte, inbox.MaxConsumerLen+1))} {
		if _, err := inbox.New(inbox.NewMemory(), name); err == nil {
			t.Errorf("New(%q): nil error", name)
		}
	}
	if _, err := inbox.New(nil, "ok"); err == nil {
		t.Error("New(nil store): nil error")
	}
	if _, err := inbox.New(inbox.NewMemory(), "billing.charge/v2_x-y"); err != nil {
		t.Errorf("New(valid name): %v", err)
	}
}

func TestPurge(t *testing.T) {
	ctx := brokertest.Context(t, 30*time.Second)
	s := newPG(t)
	for _, id := range []string{"old", "new"} {
		_, c, err := s.Claim(ctx, "a", id)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Purge(ctx, time.Hour)
	if err != nil || n != 0 {
		t.Fatalf("Purge(1h) = %d, %v; want 0 records deleted", n, err)
	}
	time.Sleep(50 * time.Millisecond)
	n, err = s.Purge(ctx, 0)
	if err != nil || n != 2 {
		t.Fatalf("Purge(0) = %d, %v; want 2", n, err)
	}
	if _, c, err := s.Claim(ctx, "a", "old"); err != nil {
		t.Errorf("claim of a purged record: %v, want a claim (it runs again)", err)
	} else {
		c.Rollback(ctx)
	}
}

// TestRollbackAfterPanic: a handler that panics leaves no record.
func TestRollbackAfterPanic(t *testing.T) {
	m := inbox.NewMemory()
	ib, err := inbox.New(m, "c")
	if err != nil {
		t.Fatal(err)
	}
	h := ib.Middleware(workerFunc(func(context.Context) error { panic("boom") }))
	func() {
		defer func() { _ = recover() }()
		h.HandleJob(context.Background(), newJob("j"))
	}()
	if _, c, err := m.Claim(context.Background(), "c", "j"); err != nil {
		t.Errorf("claim after a panic: %v, want a claim", err)
	} else {
		c.Rollback(context.Background())
	}
}

// TestRedisLeaseExpires: a claim whose worker vanished is taken over once
// its lease expires; the old claim's late rollback does not release the
// new one, and a rollback after a commit does not undo it.
func TestRedisLeaseExpires(t *testing.T) {
	ctx := brokertest.Context(t, 30*time.Second)
	c, prefix := redistest.Client(t)
	s, err := redisinbox.New(c, redisinbox.WithPrefix(prefix), redisinbox.WithLease(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, first, err := s.Claim(ctx, "a", "job")
	if err != nil {
		t.Fatal(err)
	}
	var second inbox.Claim
	testkit.WaitFor(t, 20*time.Second, "the lease to expire", func() bool {
		_, second, err = s.Claim(ctx, "a", "job")
		if err != nil && !errors.Is(err, inbox.ErrBusy) {
			t.Fatal(err)
		}
		return err == nil
	})
	if err := first.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Claim(ctx, "a", "job"); !errors.Is(err, inbox.ErrBusy) {
		t.Fatalf("claim after the old claim's rollback: %v, want ErrBusy (the new claim holds it)", err)
	}
	if err := second.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Claim(ctx, "a", "job"); !errors.Is(err, inbox.ErrProcessed) {
		t.Errorf("claim after commit: %v, want ErrProcessed", err)
	}
	if err := second.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Claim(ctx, "a", "job"); !errors.Is(err, inbox.ErrProcessed) {
		t.Errorf("a rollback after the commit undid it: %v, want ErrProcessed", err)
	}
}
