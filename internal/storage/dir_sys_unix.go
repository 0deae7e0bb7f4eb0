//go:build unix

package storage

// What the local store learns of a file from the system: its inode, its
// names, and whether an open may refuse a link.

import (
	"io/fs"
	"syscall"
)

// fileID returns the inode number of the file st describes, or 0.
func fileID(st fs.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Ino)
	}
	return 0
}

// fileLinks returns the number of names of the file st describes (hard
// links), or 1.
func fileLinks(st fs.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Nlink)
	}
	return 1
}

// oNoFollow makes an open fail on a symbolic link.
const oNoFollow = syscall.O_NOFOLLOW
