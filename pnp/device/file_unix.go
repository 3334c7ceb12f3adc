//go:build unix

package device

import (
	"errors"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// oOpen goes with every open of a device's file: O_NOFOLLOW makes it fail
// with ELOOP when the last component is a symbolic link (one planted after
// NewFile is not followed); O_NONBLOCK so that open(2) does not wait for a
// FIFO's peer or a slow device (it would ignore the context), cleared
// again for anything but a FIFO or character device; O_NOCTTY so that a
// terminal never becomes the process's controlling terminal.
const oOpen = unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

// dirHandle is the directory of a device's file, open for the device's
// lifetime: files are opened relative to it (openat), so renaming the
// directory, or replacing it or a parent by a symbolic link, after
// NewFile changes nothing.
type dirHandle struct{ f *os.File }

func openDir(dir string) (dirHandle, error) {
	fd, err := unix.Open(dir, oDirectory|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return dirHandle{}, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return dirHandle{os.NewFile(uintptr(fd), dir)}, nil
}

// at runs fn with the directory's descriptor.
func (f *File) at(fn func(dirfd int)) error {
	rc, err := f.dir.f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}

// openAt opens the device's file by name in its directory, with flags
// (os.O_* values, which are the system's on Unix) plus oOpen. It never
// truncates: callers do, once the file is verified.
func (f *File) openAt(flags int, perm uint32) (*os.File, error) {
	var fd int
	var oerr error
	if err := f.at(func(dirfd int) {
		for {
			fd, oerr = unix.Openat(dirfd, f.base, flags|oOpen, perm)
			if oerr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return nil, err
	}
	if oerr != nil {
		return nil, &os.PathError{Op: "openat", Path: f.path, Err: oerr}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: f.path, Err: err}
	}
	if m := st.Mode & unix.S_IFMT; m != unix.S_IFIFO && m != unix.S_IFCHR {
		if err := unix.SetNonblock(fd, false); err != nil {
			unix.Close(fd)
			return nil, &os.PathError{Op: "fcntl", Path: f.path, Err: err}
		}
	}
	return os.NewFile(uintptr(fd), f.path), nil
}

// exists reports whether the device's directory has an entry by its name
// (of any kind, a link included).
func (f *File) exists() (bool, error) {
	var serr error
	if err := f.at(func(dirfd int) {
		var st unix.Stat_t
		serr = unix.Fstatat(dirfd, f.base, &st, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		return false, err
	}
	switch {
	case serr == nil:
		return true, nil
	case errors.Is(serr, unix.ENOENT):
		return false, nil
	}
	return false, &os.PathError{Op: "fstatat", Path: f.path, Err: serr}
}

// isSymlinkRefused reports whether err is open(2) refusing a symbolic
// link under O_NOFOLLOW.
func isSymlinkRefused(err error) bool { return errors.Is(err, syscall.ELOOP) }

// streamOpened finishes opening a stream device opened O_NONBLOCK. The Go
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
