package rabbitnode

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// process is one run of a node's Erlang VM. With RABBITMQ_ALLOW_INPUT set,
// rabbitmq-server execs the VM in its own place instead of running it
// under a shell that forwards signals, so the child is the VM (beam.smp):
// SIGKILL reaches it directly, and its exit is the node's.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the VM has exited and been reaped
	err  error         // how it exited; read after done
}

// startProcess starts cmd in a process group of its own (a ^C to the test
// does not reach it; Kill takes the VM's helpers with it) that dies with
// the test binary. The parent-death signal fires when the thread that
// started the child exits, not the process, so that thread stays locked
// to the goroutine that waits for the child.
func startProcess(cmd *exec.Cmd, as runAs) (*process, error) {
	cmd.SysProcAttr = sysProcAttr(as.cred)
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1) // the goroutine's single answer; it never waits for a reader
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the VM's process group and waits for the VM.
func (p *process) kill() error {
	if err := syscall.Kill(-p.pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", p.pid(), err)
	}
	return p.wait(30 * time.Second)
}

// stop asks the VM to stop (RabbitMQ stops gracefully on SIGTERM) and
// kills it if it has not stopped within grace.
func (p *process) stop(grace time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %d: %w", p.pid(), err)
	}
	if p.wait(grace) == nil {
		return nil
	}
	if err := p.kill(); err != nil {
		return err
	}
	return fmt.Errorf("did not stop within %v of SIGTERM and was killed", grace)
}

func (p *process) wait(d time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("process %d still running after %v", p.pid(), d)
	}
}
