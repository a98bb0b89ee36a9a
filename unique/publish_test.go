package unique_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/queuetest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/unique"
	"github.com/warrenmq/warren/worker"
)

func TestMain(m *testing.M) { os.Exit(brokertest.MainWithLeakCheck(m)) }

// TestUniqueJobs: with each store, a second job with a key is refused
// while the first is pending, retrying and running; the key is released
// when the job succeeds, and when it is dead-lettered.
func TestUniqueJobs(t *testing.T) {
	for _, tc := range stores {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := brokertest.Context(t, 120*time.Second)
			store := tc.new(t)
			f := queuetest.New(t, "report")
			up, err := unique.NewPublisher(f.Pub, store)
			if err != nil {
				t.Fatal(err)
			}
			const key = "report:acme:2026-12"
			publish := func(what string) (string, error) {
				id := brokertest.JobID(t)
				return id, up.Publish(ctx, broker.Job{ID: id, Type: "report", Payload: what}, key, time.Hour)
			}
			refused := func(when, holder string) {
				t.Helper()
				_, err := publish("again")
				var de *unique.DuplicateError
				if !errors.As(err, &de) || !errors.Is(err, unique.ErrDuplicate) {
					t.Fatalf("%s: a second job with the key: %v, want a *DuplicateError", when, err)
				}
				if de.Key != key || de.JobID != holder {
					t.Errorf("%s: DuplicateError{Key: %q, JobID: %q}, want %q held by %s", when, de.Key, de.JobID, key, holder)
				}
			}

			first, err := publish("flaky")
			if err != nil {
				t.Fatal(err)
			}
			refused("pending", first)
			if n := brokertest.Depth(t, f.Queue); n != 1 {
				t.Fatalf("%d jobs in the queue, want the first alone", n)
			}

			running := make(chan string)
			proceed := make(chan struct{})
			releaser, err := unique.NewReleaser(store)
			if err != nil {
				t.Fatal(err)
			}
			f.Run(worker.Typed(func(ctx context.Context, job *worker.Job, what string) error {
				switch what {
				case "flaky":
					if job.Attempt == 1 {
						return errors.New("the database is away")
					}
					running <- job.ID
					<-proceed
					return nil
				case "doomed":
					return worker.Permanent(errors.New("the account is closed"))
				case "fine":
					return nil
				}
				// Dead-lettered, not retried: a retry still in the delay
				// cascade when the queue is deleted would be left behind.
				return worker.Permanent(fmt.Errorf("unexpected payload %q", what))
			}), worker.WithObserver(releaser))

			f.WaitCount(worker.Retried, 1, 30*time.Second)
			refused("retrying", first)
			testkit.Recv(t, running, 30*time.Second, "the retry to run")
			refused("running", first)
			close(proceed)
			f.WaitCount(worker.Succeeded, 1, 30*time.Second)

			// Released after success (by the observer, after the ack).
			testkit.WaitFor(t, 30*time.Second, "the key to be released after success", func() bool {
				_, err = publish("doomed")
				return err == nil
			})
			f.WaitCount(worker.DeadLettered, 1, 30*time.Second)
			testkit.WaitFor(t, 30*time.Second, "the key to be released after the dead letter", func() bool {
				_, err = publish("fine")
				if err != nil && !errors.Is(err, unique.ErrDuplicate) {
					t.Fatal(err)
				}
				return err == nil
			})
			f.WaitCount(worker.Succeeded, 2, 30*time.Second)
			if n := f.Count(worker.DeadLettered); n != 1 {
				t.Errorf("%d jobs dead-lettered, want 1", n)
			}
		})
	}
}

// TestPublishFailureReleases: a job the broker does not take (no route
// for its type) does not keep its key.
func TestPublishFailureReleases(t *testing.T) {
	t.Parallel()
	ctx := brokertest.Context(t, 60*time.Second)
	f := queuetest.New(t, "report")
	store := unique.NewMemory()
	up, err := unique.NewPublisher(f.Pub, store)
	if err != nil {
		t.Fatal(err)
	}
	err = up.Publish(ctx, broker.Job{Type: "no-such-type"}, "k", time.Hour)
	if !errors.Is(err, broker.ErrNoRoute) {
		t.Fatalf("publish of an unrouted type: %v, want ErrNoRoute", err)
	}
	if id, held := store.Holder("k"); held {
		t.Errorf("the key is held by %s after a failed publish", id)
	}
	if err := up.Publish(ctx, broker.Job{Type: "report"}, "k", time.Hour); err != nil {
		t.Fatal(err)
	}
	err = f.Pub.PublishBatch(ctx, []broker.Job{{Type: "report"}, {Type: "report"}}, broker.UniqueKey("k2"))
	if !errors.Is(err, broker.ErrInvalidOption) {
		t.Errorf("PublishBatch of 2 jobs with a UniqueKey: %v, want ErrInvalidOption", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := up.Publish(ctx, broker.Job{Type: "report"}, "k3", ttl); err == nil {
			t.Errorf("Publish with TTL %s: nil error", ttl)
		}
	}
}

// TestReleaserFinal: the statuses that release a key.
func TestReleaserFinal(t *testing.T) {
	want := map[worker.Status]bool{
		worker.Succeeded: true, worker.DeadLettered: true, worker.Rejected: true, worker.Expired: true,
		worker.Retried: false, worker.Requeued: false, worker.Quarantined: false, 0: false,
	}
	for s, final := range want {
		if got := unique.Final(s); got != final {
			t.Errorf("Final(%s) = %v, want %v", s, got, final)
		}
	}
}
