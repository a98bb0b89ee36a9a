//go:build unix && !linux

package rabbitnode

import "syscall"

// sysProcAttr runs a node in its own process group, as cred when set.
// Without a parent-death signal on this system, a node outlives a test
// binary that is killed before its cleanup runs.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
