package rabbitnode

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nodePids are the processes a node runs: its VM and, for a node of a
// root filesystem, its own epmd.
func nodePids(n *Node) []int {
	pids := []int{n.proc.pid()}
	if n.ownEpmd {
		pids = append(pids, n.epmd.proc.pid())
	}
	return pids
}

// awaitGone waits until each process has exited (a zombie counts: its
// parent is gone and init reaps it), and kills those that have not after
// 30 s, failing the test.
func awaitGone(t *testing.T, what string, pids []int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range pids {
		for !processGone(pid) {
			if time.Now().After(deadline) {
				t.Errorf("%s: process %d (%s) still runs", what, pid, cmdline(pid))
				_ = syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\x00", " ")
}

// TestCleanupLeavesNothing: at the end of a test a node's processes are
// gone (its epmd too, for a node of a root filesystem) and so is its
// directory.
func TestCleanupLeavesNothing(t *testing.T) {
	t.Parallel()
	n, err := newNode(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.firstBoot(); err != nil {
		n.destroy(t)
		t.Fatal(err)
	}
	pids := nodePids(n)
	n.destroy(t)
	awaitGone(t, "after the cleanup", pids)
	if _, err := os.Stat(n.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the node's directory %s is still there: %v", n.dir, err)
	}
}

const orphanHelperEnv = "WARREN_RABBITNODE_ORPHAN_HELPER"

// TestNoOrphans: when a test binary is killed (SIGKILL: no cleanup runs)
// its nodes die with it, by the parent-death signal, and the next test
// binary sweeps their directories away. For a node of a root filesystem
// this is what setpriv's --pdeathsig keep is for: dropping root inside
// the chroot would otherwise clear the signal.
func TestNoOrphans(t *testing.T) {
	if os.Getenv(orphanHelperEnv) == "1" {
		orphanHelper(t)
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoOrphans$", "-test.count=1")
	cmd.Env = append(os.Environ(), orphanHelperEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		pids     []int
		dir      string
		lines    []string
		scanner  = bufio.NewScanner(out)
		reported bool
	)
	for !reported && scanner.Scan() {
		lines = append(lines, scanner.Text())
		f := strings.Fields(scanner.Text())
		if len(f) < 3 || f[0] != "node" {
			continue
		}
		dir = f[1]
		for _, p := range f[2:] {
			pid, err := strconv.Atoi(p)
			if err != nil {
				t.Fatalf("helper: %q", scanner.Text())
			}
			pids = append(pids, pid)
		}
		reported = true
	}
	// The helper is killed whatever happened: no cleanup of its own runs.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !reported {
		t.Fatalf("the helper started no node:\n%s", strings.Join(lines, "\n"))
	}
	awaitGone(t, "after the test binary was killed", pids)

	sweep(filepath.Dir(dir))
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead binary's node directory %s was not swept: %v", dir, err)
	}
}

// orphanHelper runs in the child binary: it starts a node, says which
// processes it runs, and waits to be killed.
func orphanHelper(t *testing.T) {
	n := Start(t)
	pids := nodePids(n)
	fmt.Printf("node %s %s\n", n.dir, strings.Trim(fmt.Sprint(pids), "[]"))
	time.Sleep(5 * time.Minute)
	t.Fatal("the helper was not killed")
}
