//go:build unix

package device

import (
	"errors"
	"os"
	"runtime"
	"syscall"
)

// oNoFollow makes open(2) fail with ELOOP when the path's last component
// is a symbolic link, so that a link planted after NewFile is not
// followed.
const oNoFollow = syscall.O_NOFOLLOW

// oStream opens FIFOs and character devices: O_NONBLOCK so that open(2)
// does not wait for a FIFO's peer or a slow device (it would ignore the
// context), O_NOCTTY so that a terminal never becomes the process's
// controlling terminal.
const oStream = syscall.O_NONBLOCK | syscall.O_NOCTTY

// isSymlinkRefused reports whether err is open(2) refusing a symbolic
// link under oNoFollow.
func isSymlinkRefused(err error) bool { return errors.Is(err, syscall.ELOOP) }

// streamOpened finishes opening a stream device with oStream. The Go
// runtime polls FIFOs and character devices where it can, and then wants
// them non-blocking; where it cannot (FIFOs on Darwin), O_NONBLOCK would
// make reads fail with EAGAIN, so it is cleared.
func streamOpened(f *os.File) error {
	if runtime.GOOS != "darwin" && runtime.GOOS != "ios" {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}
