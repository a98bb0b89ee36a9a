//go:build torture

package torture_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// supervisor keeps one worker child running in its slot: it restarts the
// child whenever it dies, until stopped. Each child's lines go to onLine.
type supervisor struct {
	slot   int
	name   string // the child's connection name (broker.WithName)
	env    []string
	onLine func(slot int, line string)

	mu       sync.Mutex
	cmd      *exec.Cmd      // the running child; nil between two
	stdin    io.WriteCloser // closing it stops the child gracefully
	stopping bool
	starts   int
	crashes  int      // exits with killExit: a kill job ran
	killed   int      // SIGKILLs from the test
	failures []string // other exits, with the end of their stderr

	done chan struct{} // closed when run returns
}

func newSupervisor(slot int, name string, env []string, onLine func(int, string)) *supervisor {
	return &supervisor{slot: slot, name: name, env: env, onLine: onLine, done: make(chan struct{})}
}

// run starts children one after another until stop; each start is
// reported. It returns when the last child has exited after stop.
func (s *supervisor) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			return
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), s.env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err1 := cmd.StdoutPipe()
		stdin, err2 := cmd.StdinPipe()
		err := errors.Join(err1, err2)
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			s.failures = append(s.failures, fmt.Sprintf("start: %v", err))
			s.mu.Unlock()
			time.Sleep(time.Second)
			continue
		}
		s.cmd, s.stdin = cmd, stdin
		s.starts++
		s.mu.Unlock()

		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.onLine(s.slot, sc.Text())
		}
		werr := cmd.Wait()

		s.mu.Lock()
		s.cmd, s.stdin = nil, nil
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		switch {
		case bytes.Contains(stderr.Bytes(), []byte("DATA RACE")):
			// Built with -race, a child reports a race when it happens;
			// a kill job's exit status or a SIGKILL would hide it.
			s.failures = append(s.failures, fmt.Sprintf("worker %d (slot %d) found a data race:\n%s", cmd.Process.Pid, s.slot, tail(stderr.Bytes(), 8000)))
		case werr == nil && s.stopping:
		case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
			// counted by kill
		case ws.Exited() && ws.ExitStatus() == killExit:
			s.crashes++
		default:
			s.failures = append(s.failures, fmt.Sprintf("worker %d (slot %d) ended: %v\n%s", cmd.Process.Pid, s.slot, werr, tail(stderr.Bytes(), 2000)))
		}
		s.mu.Unlock()
	}
}

// kill sends SIGKILL to the running child, if there is one, and reports
// whether there was.
func (s *supervisor) kill() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.stopping {
		return false
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return false
	}
	s.killed++
	return true
}

// running says whether a child runs now.
func (s *supervisor) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// stop asks the running child to shut down gracefully and waits up to
// timeout for it; then it is killed. It reports whether the child
// stopped in time.
func (s *supervisor) stop(timeout time.Duration) bool {
	s.mu.Lock()
	s.stopping = true
	if s.stdin != nil {
		_ = s.stdin.Close()
	}
	cmd := s.cmd
	s.mu.Unlock()
	select {
	case <-s.done:
		return true
	case <-time.After(timeout):
		if cmd != nil {
			_ = cmd.Process.Kill()
		}
		<-s.done
		return false
	}
}

func (s *supervisor) stats() (starts, crashes, killed int, failures []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts, s.crashes, s.killed, append([]string(nil), s.failures...)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// fleet is a run's child processes, each slot kept running by its
// supervisor until the fleet stops.
type fleet struct {
	sups    []*supervisor
	roles   map[*supervisor]string
	wg      sync.WaitGroup
	stopped bool
}

// newFleet returns an empty fleet, stopped at the test's end if it was
// not before.
func newFleet(t *testing.T) *fleet {
	f := &fleet{roles: map[*supervisor]string{}}
	t.Cleanup(func() { f.stop() })
	return f
}

// start starts a slot: the child of role with env, its lines to onLine.
func (f *fleet) start(slot int, name, role string, env []string, onLine func(slot int, line string)) *supervisor {
	s := newSupervisor(slot, name, env, onLine)
	f.sups = append(f.sups, s)
	f.roles[s] = role
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		s.run()
	}()
	return s
}

// stop asks every child to shut down gracefully, waits up to a minute for
// each, and returns how many did not stop in time (and were killed).
// Only the first call does anything.
func (f *fleet) stop() (stuck int) {
	if f.stopped {
		return 0
	}
	f.stopped = true
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range f.sups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !s.stop(time.Minute) {
				mu.Lock()
				stuck++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	f.wg.Wait()
	return stuck
}

// stats sums the slots' starts, and gathers their failures.
func (f *fleet) stats() (starts int, failures []string) {
	for _, s := range f.sups {
		st, _, _, fa := s.stats()
		starts, failures = starts+st, append(failures, fa...)
	}
	return starts, failures
}
