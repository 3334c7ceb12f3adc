package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// File redirects a file, or a block or character device node, by path.
//
// Each CreateFile opens the path afresh with the disposition asked for —
// OPEN_EXISTING opens, OPEN_ALWAYS and CREATE_NEW may create, CREATE_ALWAYS
// and TRUNCATE_EXISTING truncate — so the file is touched exactly as a
// local CreateFile would touch it, and no more: nothing is read, written,
// created, truncated or synced that a request did not ask for.
// FILE_FLAG_WRITE_THROUGH opens it O_SYNC.
//
// # Read-only
//
// A read-only File behaves like write-protected media. It still opens
// handles that ask for write access, because a Windows server always asks
// for GENERIC_READ|GENERIC_WRITE (MS-RDPEPNP Appendix A <9>) and would
// otherwise never open the device; the path is then opened O_RDONLY
// whatever was asked, every write fails with ERROR_WRITE_PROTECT, and so
// does every disposition that would create or truncate (CREATE_NEW,
// CREATE_ALWAYS, TRUNCATE_EXISTING, and OPEN_ALWAYS when the path is
// missing).
//
// # Access
//
// A handle opened without write access refuses writes, and one without
// read access refuses reads, with ERROR_ACCESS_DENIED. Truncating
// (CREATE_ALWAYS on an existing file, TRUNCATE_EXISTING) needs write
// access too. Share modes are enforced between the handles of one File
// (see Sharing), not against other programs using the path.
//
// # The path is fixed at NewFile
//
// NewFile resolves symbolic links once and records the identity of the
// file it finds (device and inode, or the volume and file index on
// Windows). Every CreateFile opens that resolved path without following a
// symbolic link in its last component (O_NOFOLLOW, where the system has
// it) and checks that what it opened is the recorded file: a path swapped
// for a link, or for another file, after NewFile is refused with
// ERROR_ACCESS_DENIED instead of redirecting whatever it now names. A
// writable File whose path did not exist at NewFile records the file the
// first CreateFile creates; a later CREATE_NEW, which creates a new file
// exclusively, records that one.
//
// # Device nodes
//
// FIFOs and character devices are opened non-blocking (and O_NOCTTY), so
// that a CreateFile never waits for a FIFO's peer or a slow device: open
// cannot be interrupted by a context. A FIFO opened for writing alone with
// no reader fails with ERROR_DEV_NOT_EXIST.
type File struct {
	path     string
	readOnly bool
	desc     Description
	share    Sharing

	mu sync.Mutex
	id os.FileInfo // the file the path named at NewFile (or first created); nil until known
}

// NewFile returns a device for path, made absolute and with its symbolic
// links resolved, so later changes of directory or of links do not
// matter. A read-only File's path must exist; a writable one's may be
// created by a CreateFile that asks. A directory is refused.
func NewFile(path string, readOnly bool, desc Description) (*File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("device: %s: %w", path, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	switch {
	case err == nil:
	case readOnly || !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("device: %w", err)
	default:
		// Not there yet: resolve the directory, and refuse a link in the
		// last component when the file is created (O_NOFOLLOW).
		resolved = abs
		if dir, derr := filepath.EvalSymlinks(filepath.Dir(abs)); derr == nil {
			resolved = filepath.Join(dir, filepath.Base(abs))
		}
	}
	st, err := os.Stat(resolved)
	switch {
	case err == nil && st.IsDir():
		return nil, fmt.Errorf("device: %s is a directory", abs)
	case err != nil && (readOnly || !errors.Is(err, os.ErrNotExist)):
		return nil, fmt.Errorf("device: %w", err)
	case err != nil:
		st = nil
	default:
		// Windows reads a path's file index lazily, at the first
		// SameFile, by opening the path again: read it now, while the
		// path still names the file found.
		os.SameFile(st, st)
	}
	if err := desc.Validate(); err != nil {
		return nil, fmt.Errorf("device: %s: %w", abs, err)
	}
	return &File{path: resolved, readOnly: readOnly, desc: desc, id: st}, nil
}

// Path is the absolute, resolved path the device opens.
func (f *File) Path() string { return f.path }

// ReadOnly reports whether the device refuses every write.
func (f *File) ReadOnly() bool { return f.readOnly }

// Describe implements Device.
func (f *File) Describe() Description { return f.desc }

// OpenHandles reports how many handles are open.
func (f *File) OpenHandles() int { return f.share.Open() }

// Open implements Device.
func (f *File) Open(ctx context.Context, req OpenRequest) (Handle, error) {
	if err := CheckOpen(req); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	read, write := req.WantsRead(), req.WantsWrite()
	disp := req.CreationDisposition
	if f.readOnly {
		switch disp {
		case wire.CreateNew, wire.CreateAlways, wire.TruncateExisting:
			return nil, errorf("CreateFile", ErrorWriteProtect, "%s is redirected read-only", f.path)
		}
	}
	flags := os.O_RDONLY
	switch {
	case f.readOnly:
	case read && write:
		flags = os.O_RDWR
	case write:
		flags = os.O_WRONLY
	}
	switch disp {
	case wire.CreateNew:
		flags |= os.O_CREATE | os.O_EXCL
	case wire.CreateAlways:
		flags |= os.O_CREATE | os.O_TRUNC
	case wire.OpenAlways:
		if !f.readOnly {
			flags |= os.O_CREATE
		}
	case wire.TruncateExisting:
		flags |= os.O_TRUNC
	}
	if flags&os.O_TRUNC != 0 && !write {
		// O_TRUNC with O_RDONLY truncates on Linux; never without write access.
		return nil, errorf("CreateFile", ErrorAccessDenied, "truncating needs GENERIC_WRITE")
	}
	if req.FlagsAndAttributes&wire.FileFlagWriteThrough != 0 && !f.readOnly {
		flags |= os.O_SYNC
	}
	release, err := f.share.Acquire(req)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(f.path); err == nil && isStream(fi.Mode()) {
		flags |= oStream
	}
	fd, err := os.OpenFile(f.path, flags|oNoFollow, 0o666)
	if err != nil {
		release()
		if isSymlinkRefused(err) {
			return nil, errorf("CreateFile", ErrorAccessDenied, "%s is now a symbolic link", f.path)
		}
		if f.readOnly && disp == wire.OpenAlways && errors.Is(err, os.ErrNotExist) {
			return nil, errorf("CreateFile", ErrorWriteProtect, "OPEN_ALWAYS would create %s, which is redirected read-only", f.path)
		}
		return nil, wrap("CreateFile", err)
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		release()
		return nil, wrap("CreateFile", err)
	}
	if st.IsDir() {
		fd.Close()
		release()
		return nil, errorf("CreateFile", ErrorAccessDenied, "%s is a directory", f.path)
	}
	if !f.sameFile(st, flags&os.O_EXCL != 0) {
		fd.Close()
		release()
		return nil, errorf("CreateFile", ErrorAccessDenied, "%s is no longer the file redirected", f.path)
	}
	if flags&oStream != 0 {
		if err := streamOpened(fd); err != nil {
			fd.Close()
			release()
			return nil, wrap("CreateFile", err)
		}
	}
	return &fileHandle{
		f: fd, release: release, read: read, write: write, readOnly: f.readOnly,
		stream: isStream(st.Mode()) || st.Mode()&os.ModeSocket != 0,
	}, nil
}

// isStream reports whether m is a FIFO or a character device: no
// offsets, and an open that may block.
func isStream(m os.FileMode) bool {
	return m&os.ModeCharDevice != 0 || m&os.ModeNamedPipe != 0
}

// sameFile reports whether st, just opened, is the file f redirects,
// recording it if f did not know it yet or the open created it
// exclusively.
func (f *File) sameFile(st os.FileInfo, created bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.id == nil || created {
		f.id = st
		return true
	}
	return os.SameFile(f.id, st)
}

type fileHandle struct {
	f           *os.File
	release     func()
	read, write bool
	readOnly    bool
	// stream devices (character devices, FIFOs) have no offsets: pread
	// fails on them, so they get plain reads and writes.
	stream bool
	once   sync.Once
}

func (h *fileHandle) ReadAt(ctx context.Context, p []byte, off uint64) (int, error) {
	if !h.read {
		return 0, errorf("Read", ErrorAccessDenied, "the handle was opened without read access")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if h.stream {
		var n int
		err := h.interruptible(ctx, h.f.SetReadDeadline, func() (err error) {
			n, err = h.f.Read(p)
			return err
		})
		if err == io.EOF {
			err = nil
		}
		return n, wrap("Read", err)
	}
	if off > math.MaxInt64 {
		return 0, errorf("Read", ErrorInvalidParameter, "offset %d", off)
	}
	n, err := h.f.ReadAt(p, int64(off))
	if err == io.EOF {
		err = nil // a short read at the end, as ReadFile reports it
	}
	return n, wrap("Read", err)
}

func (h *fileHandle) WriteAt(ctx context.Context, p []byte, off uint64) (int, error) {
	if h.readOnly {
		return 0, errorf("Write", ErrorWriteProtect, "the device is redirected read-only")
	}
	if !h.write {
		return 0, errorf("Write", ErrorAccessDenied, "the handle was opened without write access")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if h.stream {
		var n int
		err := h.interruptible(ctx, h.f.SetWriteDeadline, func() (err error) {
			n, err = h.f.Write(p)
			return err
		})
		return n, wrap("Write", err)
	}
	if off > math.MaxInt64 || uint64(len(p)) > math.MaxInt64-off {
		return 0, errorf("Write", ErrorInvalidParameter, "offset %d", off)
	}
	n, err := h.f.WriteAt(p, int64(off))
	return n, wrap("Write", err)
}

// interruptible runs a read or write on a stream device (a tty or FIFO
// can block indefinitely) so that ctx interrupts it: when ctx is done the
// deadline is set in the past, which makes a pollable descriptor's call
// return at once, and the call reports ctx.Err(). Descriptors the runtime
// cannot poll ignore deadlines and finish on their own.
func (h *fileHandle) interruptible(ctx context.Context, setDeadline func(time.Time) error, call func() error) error {
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		setDeadline(time.Unix(1, 0))
		close(fired)
	})
	err := call()
	if !stop() {
		<-fired
		setDeadline(time.Time{}) // for the next call
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return ctx.Err()
		}
	}
	return err
}

// IoControl: files and device nodes take no IOCTLs through this backend.
// (Passing raw ioctl(2) requests from a server to a local driver is a
// hole, not a feature.)
func (h *fileHandle) IoControl(ctx context.Context, code uint32, in []byte, outMax uint32) ([]byte, error) {
	return nil, errorf("IOControl", ErrorInvalidFunction, "IoCode 0x%08X: files take no I/O controls", code)
}

func (h *fileHandle) Close() error {
	var err error
	h.once.Do(func() {
		err = h.f.Close()
		h.release()
	})
	return err
}
