//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package storage

import "os"

// flock: no file locks here.
func flock(*os.File) (bool, error) { return false, errLockUnsupported }
