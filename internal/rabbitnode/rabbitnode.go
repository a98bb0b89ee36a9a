package rabbitnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Node is a private RabbitMQ node. Its methods may be called from several
// goroutines.
type Node struct {
	name string // Erlang node name, e.g. "TestKill-3f9a1c@localhost"
	base string // where the directories of nodes and port reservations are
	dir  string // HOME, data, logs and configuration of the node
	opts options
	bin  binaries
	as   runAs

	// A node of a root filesystem (WithVersion) runs in a chroot, where
	// its directory dir is vmDir, with an epmd of its own or its
	// cluster's (ownEpmd: stopped with the node). For the machine's
	// rabbitmq-server, root and epmd are nil and vmDir is dir.
	root    *rootfs
	vmDir   string
	epmd    *epmd
	ownEpmd bool
	unshare string // the machine's unshare(1), which enters the chroot

	server string // the RabbitMQ version the node's log names, e.g. "4.3.6"

	// The ports are chosen at the first start and kept, so that a
	// restarted node is found where it was. ports holds them all, each
	// reserved (see ports.go) until the node is destroyed.
	amqpPort, distPort, tlsPort, mgmtPort int
	ports                                 []int

	mu   sync.Mutex
	proc *process // nil while the node is stopped or killed
}

// Start starts a node and waits until it accepts AMQP connections. The
// node is killed and its directory removed when the test ends. Start fails
// the test when the node cannot start, saying why.
func Start(t testing.TB, opts ...Option) *Node {
	t.Helper()
	n, err := newNode(t.Name(), opts...)
	if err != nil {
		t.Fatalf("rabbitnode: %v", err)
	}
	t.Cleanup(func() { n.destroy(t) })
	if err := n.firstBoot(); err != nil {
		t.Fatalf("rabbitnode: %v", err)
	}
	n.logStarted(t)
	return n
}

// logStarted says which RabbitMQ a node of a root filesystem runs.
func (n *Node) logStarted(t testing.TB) {
	t.Helper()
	if n.root != nil {
		t.Logf("rabbitnode: %s runs RabbitMQ %s (Debian rabbitmq-server %s, Erlang %s) from %s", n.name, n.Version(), n.root.server, n.root.erlang, n.root.dir)
	}
}

var errPortTaken = errors.New("a port of the node is taken by another process")

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func newNode(testName string, opts ...Option) (*Node, error) {
	o := options{startTimeout: defaultStartTimeout}
	var errs []error
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			errs = append(errs, err)
		}
	}
	if err := versionFromEnv(&o); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	as, err := findUser()
	if err != nil {
		return nil, err
	}
	// nodesDir is where the node's directory is seen from here: base,
	// or base inside the root filesystem.
	base := baseDir()
	nodesDir := base
	var (
		bin     binaries
		root    *rootfs
		unshare string
	)
	if o.version == "" {
		if bin, err = findBinaries(); err != nil {
			return nil, err
		}
	} else {
		if root, err = findRootfs(o.version); err != nil {
			return nil, err
		}
		if as, err = rootfsUser(root, as); err != nil {
			return nil, err
		}
		if unshare, err = exec.LookPath("unshare"); err != nil {
			return nil, fmt.Errorf("a node of RabbitMQ %s is started with unshare(1): install util-linux: %w", o.version, err)
		}
		bin = binaries{server: rootfsSbin + "/rabbitmq-server", ctl: rootfsSbin + "/rabbitmqctl"}
		nodesDir = filepath.Join(root.dir, base)
		if err := makeBaseDir(base, runAs{}); err != nil { // for the port reservations
			return nil, err
		}
	}
	if err := makeBaseDir(nodesDir, as); err != nil {
		return nil, err
	}
	sweep(nodesDir)
	sweepPorts(base)

	short := unsafeName.ReplaceAllString(testName, "_")
	if len(short) > 40 {
		short = short[len(short)-40:]
	}
	if o.label != "" {
		short += "-" + o.label
	}
	short += "-" + randomHex(3)
	if o.cookie == "" {
		o.cookie = newCookie()
	}
	n := &Node{
		name: short + "@localhost", base: base, dir: filepath.Join(nodesDir, short), opts: o, bin: bin, as: as,
		root: root, vmDir: filepath.Join(base, short), unshare: unshare,
	}
	if err := os.Mkdir(n.dir, 0o755); err != nil {
		if errors.Is(err, os.ErrPermission) {
			err = fmt.Errorf("%w (set WARREN_NODES_DIR to a directory you can write)", err)
		}
		return nil, err
	}
	if err := n.prepare(); err != nil {
		_ = os.RemoveAll(n.dir)
		return nil, err
	}
	if root != nil {
		n.epmd = o.epmd
		if n.epmd == nil {
			if n.epmd, err = startEpmd(base, root, as, unshare); err != nil {
				_ = os.RemoveAll(n.dir)
				return nil, fmt.Errorf("node %s: %w", n.name, err)
			}
			n.ownEpmd = true
		}
	}
	return n, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newCookie returns a secret like the ones Erlang makes itself. A node's
// own cookie, not the shared broker's, keeps rabbitmqctl commands meant
// for a private node from ever reaching the shared one.
func newCookie() string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	return base32.StdEncoding.EncodeToString(b)
}

// prepare writes what does not change between starts into the node's
// new directory.
func (n *Node) prepare() error {
	plugins := "[].\n"
	if n.opts.management {
		plugins = "[rabbitmq_management].\n"
	}
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{".erlang.cookie", n.opts.cookie, 0o400},
		{"enabled_plugins", plugins, 0o644},
		// Read instead of /etc/rabbitmq/rabbitmq-env.conf, which names the
		// shared broker's node.
		{"rabbitmq-env.conf", "", 0o644},
		{"owner.pid", strconv.Itoa(os.Getpid()) + "\n", 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(n.dir, f.name), []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	// An empty conf.d in place of /etc/rabbitmq/conf.d.
	if err := os.Mkdir(filepath.Join(n.dir, "conf.d"), 0o755); err != nil {
		return err
	}
	if c := n.opts.tls; c != nil {
		if err := os.Mkdir(filepath.Join(n.dir, "tls"), 0o755); err != nil {
			return err
		}
		for _, f := range []struct{ src, dst string }{
			{c.CACertFile, "ca.pem"}, {c.CertFile, "server.pem"}, {c.KeyFile, "server.key"},
		} {
			b, err := os.ReadFile(f.src)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(n.dir, "tls", f.dst), b, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// firstBoot picks free ports and starts the node, with new ports when
// another process took one of them in between.
func (n *Node) firstBoot() error {
	var err error
	for range 3 {
		if err = n.pickPorts(); err != nil {
			return err
		}
		n.mu.Lock()
		err = n.boot()
		n.mu.Unlock()
		// The node names eaddrinuse in its log when it lost the race
		// for a port.
		if err == nil || !errors.Is(err, errPortTaken) && !strings.Contains(err.Error(), "eaddrinuse") {
			return err
		}
	}
	return err
}

func (n *Node) pickPorts() error {
	releasePorts(n.base, n.ports)
	n.ports = nil
	count := 2
	if n.opts.tls != nil {
		count++
	}
	if n.opts.management {
		count++
	}
	ports, err := reservePorts(n.base, count)
	if err != nil {
		return err
	}
	n.ports = ports
	n.amqpPort, n.distPort, ports = ports[0], ports[1], ports[2:]
	if n.opts.tls != nil {
		n.tlsPort, ports = ports[0], ports[1:]
	}
	if n.opts.management {
		n.mgmtPort = ports[0]
	}
	return nil
}

func (n *Node) config() string {
	var b strings.Builder
	b.WriteString("# Written by internal/rabbitnode for one test node.\n")
	b.WriteString("log.console = false\nlog.file.level = info\n")
	if c := n.opts.tls; c != nil {
		fmt.Fprintf(&b, "listeners.ssl.1 = 127.0.0.1:%d\n", n.tlsPort)
		tlsDir := filepath.Join(n.vmDir, "tls") // as the node sees it
		fmt.Fprintf(&b, "ssl_options.cacertfile = %s\n", filepath.Join(tlsDir, "ca.pem"))
		fmt.Fprintf(&b, "ssl_options.certfile = %s\n", filepath.Join(tlsDir, "server.pem"))
		fmt.Fprintf(&b, "ssl_options.keyfile = %s\n", filepath.Join(tlsDir, "server.key"))
		if c.VerifyPeer {
			b.WriteString("ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n")
		} else {
			b.WriteString("ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n")
		}
		for i, v := range c.Versions {
			fmt.Fprintf(&b, "ssl_options.versions.%d = %s\n", i+1, v)
		}
	}
	if n.opts.management {
		fmt.Fprintf(&b, "management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %d\n", n.mgmtPort)
	}
	for _, l := range n.opts.config {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// advancedConfig is the node's advanced.config, or "" for none.
func (n *Node) advancedConfig() string {
	if len(n.opts.advanced) == 0 {
		return ""
	}
	return "%% Written by internal/rabbitnode for one test node.\n[\n  " +
		strings.Join(n.opts.advanced, ",\n  ") + "\n].\n"
}

// env is the whole environment of the node's VM and of rabbitmqctl: no
// RABBITMQ_* or ERL_* variable of the test's own environment leaks in,
// and every path RabbitMQ would take from /etc or /var is the node's own.
//
// The paths are as the node sees them, in its chroot for a node of a root
// filesystem, which also gets its epmd's port and starts no epmd itself.
func (n *Node) env() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/bin:/bin"
	}
	path += ":/usr/sbin:/usr/local/sbin"
	erlArgs := "-noinput -kernel inet_dist_use_interface {127,0,0,1}"
	var epmdEnv []string
	if n.root != nil {
		path = rootfsPath
		erlArgs += " -start_epmd false"
		epmdEnv = []string{"ERL_EPMD_PORT=" + strconv.Itoa(n.epmd.port)}
	}
	d := func(name string) string { return filepath.Join(n.vmDir, name) }
	return append([]string{
		"PATH=" + path,
		"HOME=" + n.vmDir, // where the VM and rabbitmqctl read .erlang.cookie
		"LANG=C.UTF-8",
		"LC_ALL=C.UTF-8",
		"RABBITMQ_NODENAME=" + n.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(n.amqpPort),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(n.distPort),
		"RABBITMQ_MNESIA_BASE=" + d("mnesia"),
		"RABBITMQ_LOG_BASE=" + d("log"),
		"RABBITMQ_CONFIG_FILE=" + d("rabbitmq.conf"),
		"RABBITMQ_CONFIG_FILES=" + d("conf.d"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + d("advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + d("enabled_plugins"),
		"RABBITMQ_PID_FILE=" + d("rabbitmq.pid"),
		"RABBITMQ_CONF_ENV_FILE=" + d("rabbitmq-env.conf"),
		"RABBITMQ_ALLOW_INPUT=true", // see process
		// -noinput: ALLOW_INPUT would otherwise give the VM a shell on
		// stdin. Distribution on the loopback interface only, like the
		// shared broker's.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=" + erlArgs,
		"RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		// Used only if no epmd runs yet and this node starts one.
		"ERL_EPMD_ADDRESS=127.0.0.1",
	}, epmdEnv...)
}

// command returns the command that runs path (rabbitmq-server or
// rabbitmqctl) for the node, in the node's directory, and who must start
// it: the node's user for the machine's RabbitMQ; root for a node of a
// root filesystem, whose command enters the chroot and then drops root.
func (n *Node) command(ctx context.Context, path string, args ...string) (*exec.Cmd, runAs) {
	if n.root == nil {
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Dir = n.dir
		cmd.Env = n.env()
		return cmd, n.as
	}
	cmd := exec.CommandContext(ctx, n.unshare, chrootArgs(n.root, n.as, n.vmDir, path, args...)...)
	cmd.Dir = "/"
	cmd.Env = n.env()
	return cmd, runAs{}
}

func (n *Node) logFile() string { return filepath.Join(n.dir, "log", n.name+".log") }

// boot starts the VM and waits for it to answer. n.mu is held.
func (n *Node) boot() error {
	if n.proc != nil {
		return fmt.Errorf("node %s is already running", n.name)
	}
	// Otherwise the node would fail to listen, and the wait below could
	// mistake whatever holds the port for the node.
	for _, p := range n.ports {
		if err := portFree(p); err != nil {
			return fmt.Errorf("node %s cannot start: %w: %d (%v)", n.name, errPortTaken, p, err)
		}
	}
	if err := os.WriteFile(filepath.Join(n.dir, "rabbitmq.conf"), []byte(n.config()), 0o644); err != nil {
		return err
	}
	if adv := n.advancedConfig(); adv != "" {
		if err := os.WriteFile(filepath.Join(n.dir, "advanced.config"), []byte(adv), 0o644); err != nil {
			return err
		}
	}
	out, err := os.OpenFile(filepath.Join(n.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	if err := chownAll(n.dir, n.as); err != nil {
		return err
	}
	fmt.Fprintf(out, "=== %s: starting %s as %s\n", time.Now().Format(time.RFC3339Nano), n.name, n.as.name)
	// In the node's directory, where the VM would write erl_crash.dump.
	// Started once: the process lives until killed, not until a context
	// ends.
	cmd, as := n.command(context.Background(), n.bin.server)
	cmd.Stdout, cmd.Stderr = out, out
	p, err := startProcess(cmd, as)
	if err != nil {
		return fmt.Errorf("start %s: %w", n.bin.server, err)
	}
	n.proc = p
	if err := n.awaitReady(p); err != nil {
		_ = p.kill()
		n.proc = nil
		return fmt.Errorf("node %s did not start: %w\n%s", n.name, err, n.tail())
	}
	n.server = n.logVersion()
	return nil
}

var startedRE = regexp.MustCompile(`Starting RabbitMQ (\S+) on Erlang`)

// logVersion is the version the node's log says it started, or "".
func (n *Node) logVersion() string {
	lines := readLines(n.logFile())
	for i := len(lines) - 1; i >= 0; i-- {
		if m := startedRE.FindStringSubmatch(lines[i]); m != nil {
			return m[1]
		}
	}
	return ""
}

// awaitReady waits until the node accepts an AMQP connection (and its
// other listeners accept TCP), or its VM exits, or the start timeout.
func (n *Node) awaitReady(p *process) error {
	deadline := time.Now().Add(n.opts.startTimeout)
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("rabbitmq-server exited: %v", p.err)
		}
		if last = n.answers(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer within %v: %v", n.opts.startTimeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *Node) answers() error {
	c, err := amqp.DialConfig(n.URL(), amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		return err
	}
	_ = c.Close()
	if n.tlsPort != 0 {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.tlsPort)), 2*time.Second)
		if err != nil {
			return err
		}
		_ = conn.Close()
	}
	if n.mgmtPort != 0 {
		return n.managementAnswers()
	}
	return nil
}

// managementAnswers asks the management API for its overview. Listening
// is not enough: a 4.3 node busy starting was seen answering its first
// requests with 500 Internal Server Error.
func (n *Node) managementAnswers() error {
	// No keep-alive: no connection, and no goroutine, stays behind.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(n.ManagementURL() + "/api/overview")
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("management API: GET /api/overview: %s", resp.Status)
	}
	return nil
}

// tail is the end of the node's log and of its console output, for
// failure messages.
func (n *Node) tail() string {
	var b strings.Builder
	if lines := readLines(n.logFile()); len(lines) > 0 {
		fmt.Fprintf(&b, "--- end of %s ---\n%s\n", n.logFile(), strings.Join(last(lines, 20), "\n"))
	}
	// Before its logging is set up (a bad configuration, say) the node
	// writes to the console: the cause is in the first errors, a crash
	// report follows.
	out := filepath.Join(n.dir, "stdout.log")
	lines := readLines(out)
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "=== ") {
			lines = lines[i+1:] // this start's only
			break
		}
	}
	var errs []string
	for _, l := range lines {
		if strings.Contains(l, "[error]") && len(errs) < 20 {
			errs = append(errs, l)
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(&b, "--- %s ---\n", out)
		if len(errs) > 0 {
			fmt.Fprintf(&b, "%s\n...\n", strings.Join(errs, "\n"))
		}
		fmt.Fprintf(&b, "%s\n", strings.Join(last(lines, 5), "\n"))
	}
	b.WriteString("(docs/testing.md explains how private nodes are started)")
	return b.String()
}

func readLines(file string) []string {
	data, err := os.ReadFile(file)
	if err != nil || len(data) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(data), "\n"), "\n")
}

func last(lines []string, n int) []string { return lines[max(0, len(lines)-n):] }

// destroy kills the node and removes its directory, at the end of the
// test. Killing is enough: nothing of the node is kept.
func (n *Node) destroy(t testing.TB) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t.Failed() {
		t.Logf("rabbitnode: node %s:\n%s", n.name, n.tail())
	}
	if n.proc != nil {
		if err := n.proc.kill(); err != nil {
			t.Errorf("rabbitnode: cleanup of %s: %v", n.name, err)
		}
		n.proc = nil
	}
	if n.ownEpmd {
		if err := n.epmd.stop(); err != nil {
			t.Errorf("rabbitnode: cleanup of %s's epmd: %v", n.name, err)
		}
		n.ownEpmd = false
	}
	releasePorts(n.base, n.ports)
	if err := os.RemoveAll(n.dir); err != nil {
		t.Errorf("rabbitnode: cleanup of %s: %v", n.name, err)
	}
}

// Name returns the Erlang node name, e.g. "TestKill-3f9a1c@localhost",
// as rabbitmqctl and the management API show it.
func (n *Node) Name() string { return n.name }

// Dir returns the node's directory: configuration, data (mnesia/) and
// logs (log/). For a node of a root filesystem it is inside that.
func (n *Node) Dir() string { return n.dir }

// Version returns the RabbitMQ version the node runs, e.g. "3.10.8" or
// "4.3.6", as its log says at its last start.
func (n *Node) Version() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.server
}

// URL returns the node's AMQP URL, e.g. amqp://guest:guest@127.0.0.1:41234/.
func (n *Node) URL() string {
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.amqpPort)
}

// TLSURL returns the URL of the amqps listener, or "" without WithTLS.
func (n *Node) TLSURL() string {
	if n.tlsPort == 0 {
		return ""
	}
	return fmt.Sprintf("amqps://guest:guest@127.0.0.1:%d/", n.tlsPort)
}

// ManagementURL returns the base URL of the management API with
// credentials, e.g. http://guest:guest@127.0.0.1:41235, or "" without
// WithManagement.
func (n *Node) ManagementURL() string {
	if n.mgmtPort == 0 {
		return ""
	}
	return fmt.Sprintf("http://guest:guest@127.0.0.1:%d", n.mgmtPort)
}

// Running reports whether the node's VM is running (its application may
// be stopped; see StopApp).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited()
}

// Kill kills the node's VM (and its helper processes) with SIGKILL, as a
// crash would: no connection is closed properly, and what the VM held in
// memory is lost; what it had written to files stays, for Restart (a
// crash of the whole machine could lose more). Kill fails the test when
// the node is not running.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		t.Fatalf("rabbitnode: Kill %s: the node is not running", n.name)
	}
	err := n.proc.kill()
	n.proc = nil
	if err != nil {
		t.Fatalf("rabbitnode: Kill %s: %v", n.name, err)
	}
}

// Stop stops the node gracefully (SIGTERM: connections are closed with
// connection.close, queues are written out), killing it if it takes over
// a minute. A node already stopped is left as it is. Its data stays for
// Restart.
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return
	}
	err := n.proc.stop(time.Minute)
	n.proc = nil
	if err != nil {
		t.Fatalf("rabbitnode: Stop %s: %v", n.name, err)
	}
}

// Restart stops the node gracefully if it runs, then starts it again with
// the same name, ports and data, so that durable queues and persistent
// messages are back, and waits until it answers. After Kill it only
// starts the node. A node of a cluster rejoins it.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		err := n.proc.stop(time.Minute)
		n.proc = nil
		if err != nil {
			t.Fatalf("rabbitnode: Restart %s: %v", n.name, err)
		}
	}
	if err := n.boot(); err != nil {
		t.Fatalf("rabbitnode: Restart: %v", err)
	}
}

// StopApp stops the RabbitMQ application but not the VM (rabbitmqctl
// stop_app): every client connection is closed and the AMQP port stops
// accepting connections, as during a node's maintenance or a cluster
// join.
func (n *Node) StopApp(t testing.TB) {
	t.Helper()
	n.Ctl(t, "stop_app")
}

// StartApp starts the application again (rabbitmqctl start_app) and waits
// until the node answers.
func (n *Node) StartApp(t testing.TB) {
	t.Helper()
	n.Ctl(t, "start_app")
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		t.Fatalf("rabbitnode: StartApp %s: the node is not running", n.name)
	}
	if err := n.awaitReady(n.proc); err != nil {
		t.Fatalf("rabbitnode: StartApp %s: %v\n%s", n.name, err, n.tail())
	}
}

// CloseAllConnections closes every client connection to the node with
// connection.close 320 (CONNECTION_FORCED) and reason.
func (n *Node) CloseAllConnections(t testing.TB, reason string) {
	t.Helper()
	if reason == "" {
		reason = "closed by the test"
	}
	n.Ctl(t, "close_all_connections", "--global", reason)
}

// SetMemoryAlarm raises (on) or clears the node's memory alarm. While any
// node of a cluster has a resource alarm, RabbitMQ blocks every connection
// that publishes and tells clients so with connection.blocked.
//
// The alarm is set through rabbit_alarm, as the memory monitor does, and
// stays until cleared: the monitor only reports changes of its own view,
// which the test's small memory use never changes.
func (n *Node) SetMemoryAlarm(t testing.TB, on bool) {
	t.Helper()
	n.setAlarm(t, "memory", on)
}

// SetDiskAlarm raises (on) or clears the node's free-disk-space alarm, as
// SetMemoryAlarm does the memory alarm.
func (n *Node) SetDiskAlarm(t testing.TB, on bool) {
	t.Helper()
	n.setAlarm(t, "disk", on)
}

func (n *Node) setAlarm(t testing.TB, resource string, on bool) {
	t.Helper()
	expr := fmt.Sprintf("rabbit_alarm:clear_alarm({resource_limit, %s, node()}).", resource)
	if on {
		expr = fmt.Sprintf("rabbit_alarm:set_alarm({{resource_limit, %s, node()}, []}).", resource)
	}
	if out := n.Eval(t, expr); out != "ok" {
		t.Fatalf("rabbitnode: %s alarm on %s: %s", resource, n.name, out)
	}
}

// SyncMetadata writes the node's metadata (exchanges, queues, bindings,
// users, policies) to its files. RabbitMQ 3.10 keeps it in Mnesia, whose
// transaction log is written up to two seconds after a declaration
// returns (disk_log's write cache): here a durable queue declared just
// before a Kill was gone after the restart in 3 of 40 tries, with the
// confirmed persistent messages in it, and in none of 40 with
// SyncMetadata before the Kill. A test that needs its topology to survive
// a Kill calls this first; without it, the test sees what a real crash
// can do.
//
// A node whose metadata store is Khepri (RabbitMQ 4.3, where Mnesia is
// gone; 4.0-4.2 with the khepri_db feature flag) needs nothing: Khepri
// is a Raft log, written and synced before a declaration returns.
// SyncMetadata then only checks that Khepri is the store.
func (n *Node) SyncMetadata(t testing.TB) {
	t.Helper()
	out := n.Eval(t, syncMetadataExpr)
	if out != "dumped" && out != "khepri" {
		t.Fatalf("rabbitnode: sync metadata of %s: %s", n.name, out)
	}
}

// syncMetadataExpr answers khepri or dumps Mnesia's log (dumped).
// rabbit_khepri does not exist before 3.13.
const syncMetadataExpr = `case code:ensure_loaded(rabbit_khepri) of
  {module, _} -> case rabbit_khepri:is_enabled() of true -> khepri; false -> mnesia:dump_log() end;
  _ -> mnesia:dump_log()
end.`

// Alarms returns the node's resource alarms as rabbitmqctl shows them,
// e.g. "[{{resource_limit,memory,'TestX-1a2b3c@localhost'},[]}]".
func (n *Node) Alarms(t testing.TB) string {
	t.Helper()
	return n.Eval(t, "rabbit_alarm:get_alarms().")
}

// Eval evaluates an Erlang expression on the node (rabbitmqctl eval) and
// returns what it printed, e.g. Eval(t, "application:get_env(rabbit,
// consumer_timeout).") returns "{ok,5000}".
func (n *Node) Eval(t testing.TB, expr string) string {
	t.Helper()
	return n.Ctl(t, "eval", expr)
}

// Ctl runs rabbitmqctl against the node and returns its output, trimmed.
// It fails the test when rabbitmqctl fails.
func (n *Node) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := n.ctl(ctx, args...)
	if err != nil {
		t.Fatalf("rabbitnode: %v", err)
	}
	return out
}

func (n *Node) ctl(ctx context.Context, args ...string) (string, error) {
	cmd, as := n.command(ctx, n.bin.ctl, append([]string{"-n", n.name, "--quiet"}, args...)...)
	// No parent-death signal: the thread that runs rabbitmqctl is not
	// locked, and the context bounds it anyway.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: as.cred}
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		return s, fmt.Errorf("rabbitmqctl -n %s %s: %v\n%s", n.name, strings.Join(args, " "), err, s)
	}
	return s, nil
}
