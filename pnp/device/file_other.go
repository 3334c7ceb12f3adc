//go:build !unix

package device

import "os"

// Elsewhere (Windows) the path is only checked after the open, by its
// identity: see File.

const (
	oNoFollow = 0
	oStream   = 0
)

func isSymlinkRefused(error) bool { return false }

func streamOpened(*os.File) error { return nil }
