package rabbitnode

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// VersionEnv names the environment variable that makes every node the
// tests start (Start and StartCluster alike) run that RabbitMQ version
// from its root filesystem, as WithVersion does: e.g.
// WARREN_RABBITMQ_VERSION=4.3. Empty or unset: the machine's own
// rabbitmq-server.
const VersionEnv = "WARREN_RABBITMQ_VERSION"

// Versions are the RabbitMQ releases a node can run from a root
// filesystem, besides the machine's own rabbitmq-server.
var Versions = []string{"4.0", "4.3"}

// WithVersion runs the node on RabbitMQ version (one of Versions) from
// the Debian root filesystem that scripts/rabbitmq4.sh builds and caches
// under $WARREN_ROOTFS_DIR (default /var/cache/warren/rootfs), instead of
// the machine's rabbitmq-server. It overrides WARREN_RABBITMQ_VERSION. A
// root filesystem that is missing is built first (about a minute; only as
// root, else the test fails with the command to run). Such a node runs in
// a chroot and a mount namespace of its own, registered with an epmd of
// its own (its cluster's, for StartCluster): the tests must run as root.
func WithVersion(version string) Option {
	return func(o *options) error {
		if !slices.Contains(Versions, version) {
			return fmt.Errorf("version %q: want one of %s (or no WithVersion for the machine's rabbitmq-server)", version, strings.Join(Versions, ", "))
		}
		o.version = version
		return nil
	}
}

// versionFromEnv applies WARREN_RABBITMQ_VERSION when no WithVersion was
// given.
func versionFromEnv(o *options) error {
	v := strings.TrimSpace(os.Getenv(VersionEnv))
	if o.version != "" || v == "" {
		return nil
	}
	if err := WithVersion(v)(o); err != nil {
		return fmt.Errorf("%s: %w", VersionEnv, err)
	}
	return nil
}

// rootfs is a finished root filesystem of one RabbitMQ release.
type rootfs struct {
	dir     string // its root
	version string // the release, e.g. "4.3"
	server  string // rabbitmq-server's Debian version, e.g. "4.3.6-1"
	erlang  string // erlang-base's Debian version
}

// Paths inside a root filesystem.
const (
	rootfsSbin    = "/usr/lib/rabbitmq/bin"
	rootfsEpmd    = "/usr/bin/epmd"
	rootfsSetpriv = "/usr/bin/setpriv"
	rootfsPath    = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

func rootfsCache() string {
	if d := os.Getenv("WARREN_ROOTFS_DIR"); d != "" {
		return d
	}
	return "/var/cache/warren/rootfs"
}

// buildMu makes the nodes of this test binary wait for one build;
// scripts/rabbitmq4.sh's lock makes other processes wait for it too.
var buildMu sync.Mutex

// findRootfs returns the root filesystem of version, building it when it
// is missing.
func findRootfs(version string) (*rootfs, error) {
	if r, err := readRootfs(version); err == nil {
		return r, nil
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if r, err := readRootfs(version); err == nil {
		return r, nil
	}
	build := "scripts/rabbitmq4.sh build " + version
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("RabbitMQ %s: its root filesystem is not built under %s, and building it needs root: run sudo %s (about a minute, 250 MB), then run the tests as root", version, rootfsCache(), build)
	}
	script, err := findScript("rabbitmq4.sh")
	if err != nil {
		return nil, fmt.Errorf("RabbitMQ %s: %w", version, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", script, "build", version).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("RabbitMQ %s: %s: %v\n%s", version, build, err, bytes.TrimSpace(out))
	}
	return readRootfs(version)
}

// readRootfs reads what scripts/rabbitmq4.sh recorded of a finished
// build; the record is written last, so a half-built root filesystem has
// none.
func readRootfs(version string) (*rootfs, error) {
	dir := filepath.Join(rootfsCache(), "rabbitmq-"+version)
	f, err := os.Open(dir + ".version")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &rootfs{dir: dir, version: version}
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, _ := strings.Cut(s.Text(), "=")
		switch k {
		case "rabbitmq-server":
			r.server = v
		case "erlang-base":
			r.erlang = v
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if r.server == "" {
		return nil, fmt.Errorf("%s.version names no rabbitmq-server", dir)
	}
	for _, p := range []string{rootfsSbin + "/rabbitmq-server", rootfsSbin + "/rabbitmqctl", rootfsEpmd, rootfsSetpriv} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return nil, fmt.Errorf("the root filesystem of RabbitMQ %s lacks %s (rm -rf %s*, then scripts/rabbitmq4.sh build %s): %w", version, p, dir, version, err)
		}
	}
	return r, nil
}

// rootfsUser is who a node of the root filesystem runs as (and owns its
// directory): the machine's rabbitmq user, by number (the root
// filesystem's own may have another uid, which here is someone else's),
// or else the root filesystem's. The node is started as root all the
// same: its command drops root once in the chroot (chrootArgs).
func rootfsUser(r *rootfs, machine runAs) (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{}, fmt.Errorf("a node of RabbitMQ %s runs in a chroot, which needs root: run the tests as root, or unset %s to use the machine's rabbitmq-server", r.version, VersionEnv)
	}
	if machine.name == "rabbitmq" {
		return machine, nil
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "etc", "passwd"))
	if err != nil {
		return runAs{}, fmt.Errorf("the root filesystem of RabbitMQ %s (rm -rf %s*, then scripts/rabbitmq4.sh build %s): %w", r.version, r.dir, r.version, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 || f[0] != "rabbitmq" {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err := errors.Join(err1, err2); err != nil {
			return runAs{}, fmt.Errorf("%s/etc/passwd: %w", r.dir, err)
		}
		return runAs{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid: uid, gid: gid, name: "rabbitmq"}, nil
	}
	return runAs{}, fmt.Errorf("%s has no rabbitmq user: rm -rf %s*, then scripts/rabbitmq4.sh build %s", r.dir, r.dir, r.version)
}

// chrootArgs is the command line that runs path with args inside the
// root filesystem as user: in a mount namespace of its own with its own
// /proc (mounted nowhere else, and gone with its last process), in dir,
// with root dropped by the root filesystem's setpriv, which keeps the
// parent-death signal that the change of user would clear.
func chrootArgs(r *rootfs, user runAs, dir, path string, args ...string) []string {
	return append([]string{
		"--mount", "--propagation", "private", "--root=" + r.dir, "--mount-proc=/proc", "--wd=" + dir, "--",
		rootfsSetpriv, "--reuid=" + strconv.Itoa(user.uid), "--regid=" + strconv.Itoa(user.gid), "--clear-groups",
		"--pdeathsig", "keep", "--", path,
	}, args...)
}
