//go:build !linux

package imageproc

import (
	"os"
	"syscall"
)

// workerProcAttr: elsewhere than Linux, a worker notices its server's end
// only when its jobs pipe closes.
func workerProcAttr() *syscall.SysProcAttr { return nil }

func growPipe(*os.File) {}

// ownBinary is the program a worker runs: this process's binary.
func ownBinary() (string, error) { return os.Executable() }

// offerToOOMKiller: Linux only.
func offerToOOMKiller() {}

// killedBySIGKILL: Linux's OOM killer only.
func killedBySIGKILL(*os.ProcessState) bool { return false }
