package worker_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/brokertest/rawmsg"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// The child worker of TestCrashLoop: the job type "ok" prints "done ID"
// and succeeds; "crash" ends the process (os.Exit); "panic" panics in a
// goroutine the handler started, which no recover can catch.
const crashChildEnv = "WARREN_TEST_CRASH_CHILD"

func crashChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	topo, err := topology.Parse("child.yaml", []byte(os.Getenv(crashChildEnv)))
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	conn, err := broker.Dial(ctx, []string{os.Getenv(childURLEnv)}, broker.WithName("worker-test-crash-child"))
	if err != nil {
		return fail(err)
	}
	var mu sync.Mutex
	mux := worker.NewMux()
	mux.HandleFunc("ok", func(ctx context.Context, job *worker.Job) error {
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		fmt.Printf("done %s\n", job.ID)
		mu.Unlock()
		return nil
	})
	mux.HandleFunc("crash", func(ctx context.Context, job *worker.Job) error {
		os.Exit(3)
		return nil
	})
	mux.HandleFunc("panic", func(ctx context.Context, job *worker.Job) error {
		go func() { panic("a goroutine of the handler panicked") }()
		<-ctx.Done()
		return ctx.Err()
	})
	pool, err := worker.NewPool(conn, topo, mux, worker.WithQueue(os.Getenv(childQueueEnv), worker.Concurrency(4), worker.Prefetch(16)))
	if err != nil {
		return fail(err)
	}
	if err := pool.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// TestCrashLoop: a job that kills every worker process that runs it, in a
// queue of innocent jobs, under a supervisor that restarts the worker each
// time. The job is parked, with class crash, after the crash limit; every
// innocent job is handled, none is parked, and the worker restarts no more
// than the limit and the first crash need. (Before: on a classic queue the
// job was never parked and nothing behind it ran; on a quorum queue the
// broker's delivery limit parked innocent jobs with it, since every crash
// returns the whole prefetch window and each return counts.)
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ queueType, poison string }{
		{"classic", "crash"},
		{"quorum", "panic"},
	} {
		t.Run(tc.queueType+"/"+tc.poison, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOpts{queueType: tc.queueType, types: []string{"ok", "crash", "panic"}})
			const innocents = 199
			payloads := make([]any, innocents)
			for i := range payloads {
				payloads[i] = i
			}
			okIDs := f.publish("ok", payloads[:5]...)
			poison := f.publish(tc.poison, "poison")[0]
			okIDs = append(okIDs, f.publish("ok", payloads[5:]...)...)

			const maxRestarts = 30
			handled := map[string]int{}
			var mu sync.Mutex
			dlq := topology.DeadLetterQueueName(f.queue)
			// handledInnocents counts the innocent jobs handled at least once.
			handledInnocents := func() int {
				mu.Lock()
				defer mu.Unlock()
				n := 0
				for _, id := range okIDs {
					if handled[id] > 0 {
						n++
					}
				}
				return n
			}
			// Every job is handled or parked (the assertions below say
			// which were parked).
			finished := func() bool { return handledInnocents()+brokertest.Depth(t, dlq) >= innocents+1 }
			crashes := 0
			for !finished() {
				if crashes > maxRestarts {
					t.Fatalf("after %d crashes: %d of %d innocent jobs handled, %d in the dead-letter queue", crashes, handledInnocents(), innocents, brokertest.Depth(t, dlq))
				}
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), crashChildEnv+"="+f.yaml, childQueueEnv+"="+f.queue, childURLEnv+"="+brokertest.URL(t))
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				var stderr strings.Builder
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				readDone := make(chan struct{})
				go func() {
					defer close(readDone)
					sc := bufio.NewScanner(out)
					for sc.Scan() {
						if id, ok := strings.CutPrefix(sc.Text(), "done "); ok {
							mu.Lock()
							handled[id]++
							mu.Unlock()
						}
					}
				}()
				exited := make(chan error, 1)
				go func() {
					<-readDone
					exited <- cmd.Wait()
				}()
				deadline := time.After(60 * time.Second)
			wait:
				for {
					select {
					case err := <-exited:
						if !strings.Contains(stderr.String(), "panicked") && err != nil && cmd.ProcessState.ExitCode() != 3 {
							t.Fatalf("the child worker failed: %v\n%s", err, stderr.String())
						}
						crashes++
						break wait
					case <-time.After(100 * time.Millisecond):
						if finished() {
							cmd.Process.Kill()
							<-exited
							break wait
						}
					case <-deadline:
						cmd.Process.Kill()
						<-exited
						t.Fatalf("the child worker neither crashed nor finished within 60 s (%d innocent jobs handled, %d in the dead-letter queue)\n%s", handledInnocents(), brokertest.Depth(t, dlq), stderr.String())
					}
				}
			}

			got := f.dlq(1, 10*time.Second)
			d, ok := got[poison]
			if !ok {
				t.Fatalf("the dead-letter queue holds %v, not the poison job %s", keys(got), poison)
			}
			env, err := rawmsg.Envelope(&d)
			if err != nil {
				t.Fatal(err)
			}
			if env.Failure == nil || env.Failure.Class != worker.ClassCrash {
				t.Errorf("the poison job was parked with %+v, want class %q", env.Failure, worker.ClassCrash)
			}
			if env.Crashes != worker.DefaultCrashLimit {
				t.Errorf("the poison job was parked after %d crashes, want %d", env.Crashes, worker.DefaultCrashLimit)
			}
			if want := worker.DefaultCrashLimit + 1; crashes != want {
				t.Errorf("the worker crashed %d times, want %d (the first, among other jobs, then the limit, alone)", crashes, want)
			}
			if n := brokertest.Depth(t, dlq); n != 0 {
				t.Errorf("%d more jobs in the dead-letter queue: innocent jobs were parked", n)
			}
			dups := 0
			for _, id := range okIDs {
				dups += handled[id] - 1
			}
			t.Logf("%d crashes; %d innocent jobs handled, %d duplicates", crashes, len(okIDs), dups)
		})
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
