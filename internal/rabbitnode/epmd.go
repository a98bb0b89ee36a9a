package rabbitnode

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"time"
)

// epmd is a private Erlang port mapper daemon, on a port of its own, for
// the nodes of a root filesystem: the nodes of one cluster register with
// the same one; nothing registers with the machine's epmd on 4369, where
// the shared broker is. It runs in the foreground as a child of the test,
// like the nodes (so it dies with the test binary), and the nodes are
// started with -start_epmd false, so that none of them starts a daemon
// that would outlive the test.
type epmd struct {
	base string // where its port is reserved
	port int
	proc *process
}

func startEpmd(base string, r *rootfs, user runAs, unshare string) (*epmd, error) {
	var errs []error
	for range 3 {
		ports, err := reservePorts(base, 1)
		if err != nil {
			return nil, err
		}
		e := &epmd{base: base, port: ports[0]}
		cmd := exec.Command(unshare, chrootArgs(r, user, "/", rootfsEpmd, "-port", strconv.Itoa(e.port), "-address", "127.0.0.1")...)
		cmd.Env = []string{"PATH=" + rootfsPath, "LANG=C.UTF-8"}
		if e.proc, err = startProcess(cmd, runAs{}); err != nil {
			releasePorts(base, ports)
			return nil, fmt.Errorf("start epmd: %w", err)
		}
		if err = e.awaitListening(10 * time.Second); err == nil {
			return e, nil
		}
		// Most likely another process took the port in between.
		errs = append(errs, err)
		e.stop()
	}
	return nil, fmt.Errorf("start epmd: %w", errors.Join(errs...))
}

func (e *epmd) awaitListening(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if e.proc.exited() {
			return fmt.Errorf("epmd on port %d exited: %v", e.port, e.proc.err)
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(e.port)), time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("epmd does not listen on port %d after %v: %w", e.port, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the daemon and releases its port. Its nodes must be gone
// first: a node that loses its epmd goes on running but cannot be found.
func (e *epmd) stop() error {
	err := e.proc.kill()
	releasePorts(e.base, []int{e.port})
	return err
}
