package rabbitnode

import "syscall"

// sysProcAttr runs a node in its own process group, as cred when set, and
// has the kernel kill it when the test binary dies, however it dies.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred, Pdeathsig: syscall.SIGKILL}
}
