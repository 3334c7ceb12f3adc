package device

import "golang.org/x/sys/unix"

// oDirectory opens a device's directory as a handle only (O_PATH): enough
// for openat, and needs no read permission on the directory.
const oDirectory = unix.O_PATH
