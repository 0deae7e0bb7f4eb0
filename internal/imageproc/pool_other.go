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
