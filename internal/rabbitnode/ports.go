package rabbitnode

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A node keeps its ports for its whole life, across kills and restarts,
// and nothing else may take them meanwhile. Two things could:
//   - another node, of this test binary or of another one running at the
//     same time, handed the same free port by the kernel once the killed
//     node had released it: a restart would then find that node answering
//     on "its" port. Each port is therefore reserved with a file in
//     portsDir, created exclusively, until the node is destroyed;
//   - the local end of some outgoing connection. Ports are therefore taken
//     below the kernel's ephemeral range, which it uses for those.
const portsDirName = ".ports"

func portsDir(base string) string { return filepath.Join(base, portsDirName) }

// candidates is the range ports are drawn from: from 10000 to just below
// the ephemeral range (32768-60999 by default on Linux).
func candidates() (lo, hi int) {
	lo, hi = 10000, 32767
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if eph, err := strconv.Atoi(f[0]); err == nil && eph > lo+1000 {
				hi = eph - 1
			}
		}
	}
	return lo, hi
}

// reservePorts reserves count distinct ports that nothing listens on.
func reservePorts(base string, count int) ([]int, error) {
	dir := portsDir(base)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lo, hi := candidates()
	var ports []int
	for range 1000 {
		if len(ports) == count {
			return ports, nil
		}
		p := lo + rand.IntN(hi-lo+1)
		if portFree(p) != nil {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			continue // reserved by another node
		}
		_, err = fmt.Fprintf(f, "%d\n", os.Getpid())
		if err = errors.Join(err, f.Close()); err != nil {
			return ports, err
		}
		ports = append(ports, p)
	}
	releasePorts(base, ports)
	return nil, fmt.Errorf("found no %d free ports between %d and %d", count, lo, hi)
}

func releasePorts(base string, ports []int) {
	for _, p := range ports {
		_ = os.Remove(filepath.Join(portsDir(base), strconv.Itoa(p)))
	}
}

// portFree tells whether the port can be listened on at 127.0.0.1, where
// the node will listen.
func portFree(p int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return err
	}
	return l.Close()
}

// sweepPorts releases the reservations of test binaries that died.
func sweepPorts(base string) {
	entries, err := os.ReadDir(portsDir(base))
	if err != nil {
		return
	}
	for _, e := range entries {
		file := filepath.Join(portsDir(base), e.Name())
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && !alive(pid) {
			_ = os.Remove(file)
		}
	}
}
