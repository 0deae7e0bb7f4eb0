//go:build !unix

package storage

import "io/fs"

// fileID returns 0: no inode number to tell two files apart by.
func fileID(fs.FileInfo) uint64 { return 0 }

// fileLinks returns 1: no count of a file's names here.
func fileLinks(fs.FileInfo) uint64 { return 1 }

// oNoFollow: none here; open's Lstat alone keeps links out.
const oNoFollow = 0
