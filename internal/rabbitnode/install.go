package rabbitnode

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// binaries are the real RabbitMQ scripts, not the wrappers some packages
// put on PATH: Debian's /usr/sbin/rabbitmq-server re-runs itself through
// su and sends its output to /var/log/rabbitmq, where a test cannot see it.
type binaries struct {
	server, ctl string
}

const installHint = "install RabbitMQ 3.10 or later: on Debian/Ubuntu `sudo apt-get install rabbitmq-server` " +
	"(a broker already answering on port 5672, e.g. from Docker, does not install it here); elsewhere see " +
	"https://www.rabbitmq.com/docs/download and set WARREN_RABBITMQ_SBIN to the directory holding " +
	"rabbitmq-server and rabbitmqctl"

func findBinaries() (binaries, error) {
	var dirs []string
	if d := os.Getenv("WARREN_RABBITMQ_SBIN"); d != "" {
		dirs = []string{d}
	} else {
		// Debian and Ubuntu keep the real scripts here.
		dirs = append(dirs, "/usr/lib/rabbitmq/bin")
		for _, d := range append(filepath.SplitList(os.Getenv("PATH")), "/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin") {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
	}
	for _, d := range dirs {
		server, err := filepath.EvalSymlinks(filepath.Join(d, "rabbitmq-server"))
		if err != nil || filepath.Base(server) != "rabbitmq-server" {
			continue // missing, or a wrapper that runs the real script
		}
		ctl := filepath.Join(filepath.Dir(server), "rabbitmqctl")
		if !executable(server) || !executable(ctl) {
			continue
		}
		if _, err := exec.LookPath("erl"); err != nil {
			return binaries{}, fmt.Errorf("found %s but not Erlang's erl on PATH; %s", server, installHint)
		}
		return binaries{server: server, ctl: ctl}, nil
	}
	if d := os.Getenv("WARREN_RABBITMQ_SBIN"); d != "" {
		return binaries{}, fmt.Errorf("WARREN_RABBITMQ_SBIN=%s holds no executable rabbitmq-server and rabbitmqctl; %s", d, installHint)
	}
	return binaries{}, fmt.Errorf("rabbitmq-server is not installed; %s", installHint)
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// runAs is the user the nodes run as. Root runs them as the rabbitmq user,
// like the distribution's service does, rather than as root; any other
// user runs them as itself.
type runAs struct {
	cred     *syscall.Credential // nil: the current user
	uid, gid int
	name     string
}

func findUser() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: os.Getuid(), gid: os.Getgid(), name: "the current user"}, nil
	}
	u, err := user.Lookup("rabbitmq")
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			// A RabbitMQ installed without its package has no such user;
			// root can run the node itself.
			return runAs{uid: 0, gid: 0, name: "root"}, nil
		}
		return runAs{}, fmt.Errorf("look up the rabbitmq user: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return runAs{}, fmt.Errorf("the rabbitmq user: %w", err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.Atoi(g); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	return runAs{cred: cred, uid: uid, gid: gid, name: "rabbitmq"}, nil
}

// baseDir is where nodes keep their directories:
// $WARREN_NODES_DIR/go, /tmp/warren-nodes/go by default (scripts/node.sh
// uses the same base for its own nodes, one level up). It must be
// reachable by the rabbitmq user, which a t.TempDir (mode 0700, owned by
// the test's user) is not.
func baseDir() string {
	base := os.Getenv("WARREN_NODES_DIR")
	if base == "" {
		base = "/tmp/warren-nodes"
	}
	return filepath.Join(base, "go")
}

func makeBaseDir(dir string, as runAs) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%w (set WARREN_NODES_DIR to a directory you can write)", err)
	}
	if as.cred == nil {
		return nil
	}
	// Every directory on the way must let the node's user through.
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s (mode %v) cannot be entered by the %s user: set WARREN_NODES_DIR to a directory under /tmp", d, fi.Mode().Perm(), as.name)
		}
	}
	return nil
}

// chownAll gives dir and what is in it to the node's user.
func chownAll(dir string, as runAs) error {
	if as.cred == nil {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, as.uid, as.gid)
	})
}

// sweep removes the directories of nodes whose test binary died without
// its cleanup (the nodes themselves died with it, by the parent-death
// signal).
func sweep(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || alive(pid) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
