//go:build unix && !linux

package device

import "golang.org/x/sys/unix"

// oDirectory opens a device's directory for openat.
const oDirectory = unix.O_RDONLY
