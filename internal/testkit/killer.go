package testkit

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// KillChildren keeps slots children running for d: each is the test
// binary run again with env (its TestMain or init runs the child), killed
// with SIGKILL after a random life between minLife and maxLife, then
// replaced. A child that ends otherwise fails t. wait waits for the last
// child and returns how many were killed.
func KillChildren(t testing.TB, env []string, slots int, d, minLife, maxLife time.Duration) (wait func() int64) {
	t.Helper()
	until := time.Now().Add(d)
	var kills atomic.Int64
	var wg sync.WaitGroup
	for slot := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(until) {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = env
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Errorf("slot %d: %v", slot, err)
					return
				}
				time.Sleep(minLife + time.Duration(rand.Int64N(int64(maxLife-minLife))))
				_ = cmd.Process.Signal(syscall.SIGKILL)
				err := cmd.Wait()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Errorf("slot %d: the child ended with %v, want killed by SIGKILL", slot, err)
					return
				}
				kills.Add(1)
			}
		}()
	}
	return func() int64 {
		WaitDone(t, &wg, d+time.Minute, "the killed children")
		return kills.Load()
	}
}
