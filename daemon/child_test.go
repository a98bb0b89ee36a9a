package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/daemon"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

// The child process of the tests below is this test binary, run again
// with these variables set: TestMain then runs childDaemon instead of the
// tests. The daemon's own settings come from its WARREN_* variables.
const (
	childEnv      = "WARREN_DAEMON_TEST_CHILD_TOPOLOGY"
	childQueueEnv = "WARREN_DAEMON_TEST_CHILD_QUEUE"
)

// childDaemon is a worker daemon configured from the environment, as a
// real one is. It prints "started ID" when a job starts; the job then
// waits for a line "finish" on stdin (or its ctx to end) and prints
// "done ID".
func childDaemon() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child daemon:", err)
		return 1
	}
	cfg, err := daemon.FromEnv()
	if err != nil {
		return fail(err)
	}
	log, err := cfg.Logger(os.Stderr)
	if err != nil {
		return fail(err)
	}
	topo, err := topology.Parse("child.yaml", []byte(os.Getenv(childEnv)))
	if err != nil {
		return fail(err)
	}
	conn, err := broker.Dial(context.Background(), cfg.URLs, broker.WithName("daemon-test-child"), broker.WithLogger(log))
	if err != nil {
		return fail(err)
	}
	defer conn.Close()

	release := make(chan struct{})
	go func() { // ends with the process
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == "finish" {
				close(release)
				return
			}
		}
	}()
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	h := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		say("started %s", job.ID)
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		say("done %s", job.ID)
		return nil
	})
	pool, err := worker.NewPool(conn, topo, h,
		worker.WithQueue(os.Getenv(childQueueEnv), worker.Concurrency(1), worker.Prefetch(1)),
		worker.WithShutdownTimeout(cfg.ShutdownTimeout), worker.WithLogger(log))
	if err != nil {
		return fail(err)
	}
	d, err := daemon.New(daemon.WithConfig(cfg), daemon.WithLogger(log))
	if err != nil {
		return fail(err)
	}
	if err := d.Run(context.Background(), pool); err != nil {
		return fail(err)
	}
	return 0
}

// child is a running childDaemon.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, line by line
	addr   chan string // the HTTP address, from the daemon's JSON log
	reads  sync.WaitGroup
	mu     sync.Mutex
	stderr strings.Builder
	exited chan struct{}
	status int
}

// startChild runs a child daemon on the fixture's queue.
func startChild(t *testing.T, f *fixture) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		childEnv+"="+f.yaml,
		childQueueEnv+"="+f.queue,
		daemon.EnvURL+"="+brokertest.URL(t),
		daemon.EnvHTTPAddr+"=127.0.0.1:0",
		daemon.EnvShutdownTimeout+"=2m",
		daemon.EnvLogLevel+"=info",
		daemon.EnvLogFormat+"=json",
	)
	c := &child{t: t, cmd: cmd, lines: make(chan string, 64), addr: make(chan string, 1), exited: make(chan struct{})}
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.reads.Add(2)
	go func() {
		defer c.reads.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default: // nobody reads that many lines
			}
		}
	}()
	go func() {
		defer c.reads.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.stderr.WriteString(line + "\n")
			c.mu.Unlock()
			var entry struct {
				Message string `json:"message"`
				Addr    string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Message == "daemon: serving http" {
				c.addr <- entry.Addr
			}
		}
	}()
	go func() {
		c.reads.Wait() // Wait closes the pipes: read them to their end first
		_ = cmd.Wait()
		c.status = cmd.ProcessState.ExitCode()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			c.mu.Lock()
			t.Logf("child daemon's stderr:\n%s", c.stderr.String())
			c.mu.Unlock()
		}
	})
	return c
}

// base returns the URL of the child's HTTP server.
func (c *child) base() string {
	c.t.Helper()
	return "http://" + testkit.Recv(c.t, c.addr, 60*time.Second, "the child to serve http")
}

// expect waits for a line of stdout with the prefix, and returns the rest.
func (c *child) expect(prefix string) string {
	c.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case line := <-c.lines:
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				return rest
			}
		case <-c.exited:
			c.t.Fatalf("the child exited (status %d) before printing %q", c.status, prefix)
		case <-deadline:
			c.t.Fatalf("the child did not print %q within 60s", prefix)
		}
	}
}

func (c *child) signal(sig os.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatal(err)
	}
}

// wait waits for the child to exit and returns its status.
func (c *child) wait() int {
	c.t.Helper()
	select {
	case <-c.exited:
		return c.status
	case <-time.After(90 * time.Second):
		c.t.Fatal("the child did not exit within 90s")
		return -1
	}
}

// startDraining starts a child daemon, gives it a job that waits, and
// sends it SIGTERM; it returns once /readyz says the daemon is draining.
func startDraining(t *testing.T) (*fixture, *child, string) {
	t.Helper()
	f := newFixture(t)
	c := startChild(t, f)
	base := c.base()
	id := f.publish(t)
	if got := c.expect("started "); got != id {
		t.Fatalf("the child started %s, want %s", got, id)
	}
	waitStatus(t, base+daemon.ReadyPath, http.StatusOK, 30*time.Second)
	c.signal(syscall.SIGTERM)
	body := waitStatus(t, base+daemon.ReadyPath, http.StatusServiceUnavailable, 30*time.Second)
	if !strings.Contains(body, "draining") {
		t.Errorf("%s after SIGTERM: %q, want it to say draining", daemon.ReadyPath, body)
	}
	return f, c, id
}

// TestSIGTERMFinishesTheJobInFlight sends a real SIGTERM to a daemon
// process running a job: it turns not ready, finishes and acks the job,
// and exits 0.
func TestSIGTERMFinishesTheJobInFlight(t *testing.T) {
	t.Parallel()
	f, c, id := startDraining(t)
	if _, err := io.WriteString(c.stdin, "finish\n"); err != nil {
		t.Fatal(err)
	}
	if got := c.expect("done "); got != id {
		t.Errorf("the child finished %s, want %s", got, id)
	}
	if status := c.wait(); status != 0 {
		t.Fatalf("exit status %d, want 0", status)
	}
	// The process is gone with its connection: an unacked job would be
	// back in the queue.
	if n := brokertest.Depth(t, f.queue); n != 0 {
		t.Errorf("%d jobs in the queue after the exit, want 0: the job was not acked", n)
	}
}

// TestSecondSIGTERMExitsAtOnce: a second SIGTERM during the drain exits
// with status 143 (128 + SIGTERM) without waiting for the job, which the
// broker returns to the queue.
func TestSecondSIGTERMExitsAtOnce(t *testing.T) {
	t.Parallel()
	f, c, id := startDraining(t)
	c.signal(syscall.SIGTERM)
	if status := c.wait(); status != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit status %d, want %d", status, 128+int(syscall.SIGTERM))
	}
	d := brokertest.Get(t, f.queue, 30*time.Second)
	if d.MessageId != id || !d.Redelivered {
		t.Errorf("got %s (redelivered %v) from the queue, want %s back", d.MessageId, d.Redelivered, id)
	}
}
