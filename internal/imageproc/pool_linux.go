package imageproc

import (
	"os"
	"syscall"
)

// workerProcAttr has the kernel kill a worker when the server dies, even
// while the worker is deep in a codec and not reading its pipe.
func workerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// growPipe raises a pipe's buffer from 64 KiB to 1 MiB (Linux's default
// limit for unprivileged processes), so that a body of several MiB crosses
// in a few large writes rather than a hundred small ones.
func growPipe(f *os.File) {
	const fSetPipeSize = 1031 // F_SETPIPE_SZ
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSize, 1<<20) })
	}
}

// ownBinary is the program a worker runs: this very process's binary, as
// /proc/self/exe names it, which stays the running one even when the file
// at its path is replaced (a new build or deploy beside a running server),
// so that a worker never speaks another version's protocol.
func ownBinary() (string, error) {
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		return os.Executable()
	}
	return "/proc/self/exe", nil
}

// offerToOOMKiller makes this process (a worker) the first the kernel's
// OOM killer takes when the task or container runs out of memory: an image
// that needs more than there is then costs its worker, which the server
// replaces, and never the server with every request in flight. Raising
// one's own score needs no privilege; a failure leaves the default.
func offerToOOMKiller() {
	_ = os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0)
}

// killedBySIGKILL reports whether the process ended by SIGKILL.
func killedBySIGKILL(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
