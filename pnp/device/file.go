package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// File redirects a file, or a block or character device node, by path.
//
// Each CreateFile opens the file afresh with the disposition asked for —
// OPEN_EXISTING opens, CREATE_ALWAYS and TRUNCATE_EXISTING truncate, and
// the creating dispositions create only a file the device never had (see
// below) — so the file is touched as a local CreateFile would touch it,
// and no more: nothing is read, written, created, truncated or synced
// that a request did not ask for.
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
// # The file is fixed at NewFile
//
// NewFile resolves symbolic links once, opens the file's directory and
// keeps it open, and records the identity of the file it finds (device
// and inode, or the volume and file index on Windows). Every CreateFile
// opens the file by name in that directory (openat(2) on the directory
// handle, so a directory renamed or swapped for a link since does not
// matter; by path on Windows), without following a symbolic link in the
// last component (O_NOFOLLOW) and without truncating or creating, and
// checks that what it opened is the recorded file. Only then does
// CREATE_ALWAYS or TRUNCATE_EXISTING truncate it, through the handle just
// verified. A path swapped for a link, a hard link or another file after
// NewFile is refused with ERROR_ACCESS_DENIED (CREATE_NEW: ERROR_FILE_EXISTS)
// and that file is left as it was.
//
// The device is that file: once it is deleted, OPEN_EXISTING and
// TRUNCATE_EXISTING fail with ERROR_FILE_NOT_FOUND and the dispositions
// that would create a new file (CREATE_NEW, CREATE_ALWAYS, OPEN_ALWAYS)
// with ERROR_DEV_NOT_EXIST: nothing is created. A writable File whose
// path did not exist at NewFile is the file its first creating CreateFile
// makes, exclusively (O_CREAT|O_EXCL, so no link and no file someone else
// put there is opened); a file that appears at the path otherwise is not
// the device's and is refused with ERROR_ACCESS_DENIED.
//
// # Size limit
//
// FileOptions.MaxSize (the spec's maxsize=) bounds the file: a write that
// would end beyond it fails with ERROR_DISK_FULL and writes nothing.
// Without it the file grows as a local file would.
//
// # Device nodes
//
// FIFOs and character devices are opened non-blocking (and O_NOCTTY), so
// that a CreateFile never waits for a FIFO's peer or a slow device: open
// cannot be interrupted by a context. A FIFO opened for writing alone with
// no reader fails with ERROR_DEV_NOT_EXIST.
type File struct {
	path     string
	base     string    // the last element of path
	dir      dirHandle // path's directory, opened at NewFile
	readOnly bool
	maxSize  int64 // 0: no limit
	desc     Description
	share    Sharing

	mu sync.Mutex
	id os.FileInfo // the file the path named at NewFile (or first created); nil until known
}

// FileOptions are a File's settings beyond its path and description.
type FileOptions struct {
	// ReadOnly redirects the file write-protected (see File).
	ReadOnly bool
	// MaxSize bounds the file: a write that would end beyond MaxSize
	// bytes fails with ERROR_DISK_FULL and writes nothing. 0 means no
	// limit (the default: the file grows as a local file would). It
	// does not apply to FIFOs and character devices, which have no
	// offsets.
	MaxSize int64
}

// NewFile returns a device for path, made absolute and with its symbolic
// links resolved, so later changes of directory or of links do not
// matter. A read-only File's path must exist; a writable one's may be
// created by a CreateFile that asks. A directory is refused.
func NewFile(path string, readOnly bool, desc Description) (*File, error) {
	return NewFileOptions(path, FileOptions{ReadOnly: readOnly}, desc)
}

// NewFileOptions is NewFile with every option. The path's directory is
// opened here and kept open: every CreateFile opens the file through it
// (on Unix), so a directory swapped for a link later does not matter.
func NewFileOptions(path string, opts FileOptions, desc Description) (*File, error) {
	readOnly := opts.ReadOnly
	if opts.MaxSize < 0 {
		return nil, fmt.Errorf("device: %s: MaxSize %d is negative", path, opts.MaxSize)
	}
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
	dir, err := openDir(filepath.Dir(resolved))
	if err != nil {
		return nil, fmt.Errorf("device: %s: the directory: %w", abs, err)
	}
	return &File{path: resolved, base: filepath.Base(resolved), dir: dir, readOnly: readOnly, maxSize: opts.MaxSize, desc: desc, id: st}, nil
}

// MaxSize is the size the file may not grow beyond; 0: no limit.
func (f *File) MaxSize() int64 { return f.maxSize }

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
	truncate := disp == wire.CreateAlways || disp == wire.TruncateExisting
	if truncate && !write {
		return nil, errorf("CreateFile", ErrorAccessDenied, "truncating needs GENERIC_WRITE")
	}
	if req.FlagsAndAttributes&wire.FileFlagWriteThrough != 0 && !f.readOnly {
		flags |= os.O_SYNC
	}
	release, err := f.share.Acquire(req)
	if err != nil {
		return nil, err
	}
	fd, created, err := f.openFile(flags, disp)
	if err != nil {
		release()
		return nil, err
	}
	fail := func(err error) (Handle, error) {
		fd.Close()
		release()
		return nil, err
	}
	st, err := fd.Stat()
	if err != nil {
		return fail(wrap("CreateFile", err))
	}
	if st.IsDir() {
		return fail(errorf("CreateFile", ErrorAccessDenied, "%s is a directory", f.path))
	}
	// Only now, on the file verified to be the device's, is anything
	// changed. As with O_TRUNC, only a regular file is truncated.
	if truncate && !created && st.Mode().IsRegular() {
		if err := fd.Truncate(0); err != nil {
			return fail(wrap("CreateFile", err))
		}
	}
	stream := isStream(st.Mode())
	if stream {
		if err := streamOpened(fd); err != nil {
			return fail(wrap("CreateFile", err))
		}
	}
	return &fileHandle{
		f: fd, release: release, read: read, write: write, readOnly: f.readOnly,
		stream: stream || st.Mode()&os.ModeSocket != 0, maxSize: f.maxSize,
	}, nil
}

// openFile opens the device's file with flags (access and O_SYNC only)
// as disposition disp asks, without changing it: the caller truncates
// once it has the file. created reports that this call created it.
func (f *File) openFile(flags int, disp uint32) (fd *os.File, created bool, err error) {
	f.mu.Lock()
	if f.id == nil {
		defer f.mu.Unlock()
		return f.createLocked(flags, disp)
	}
	id := f.id
	f.mu.Unlock()
	if disp == wire.CreateNew {
		exists, err := f.exists()
		switch {
		case err != nil:
			return nil, false, wrap("CreateFile", err)
		case exists:
			return nil, false, errorf("CreateFile", ErrorFileExists, "CREATE_NEW: %s exists", f.path)
		}
		return nil, false, f.gone(disp)
	}
	fd, err = f.openAt(flags, 0)
	if err != nil {
		switch {
		case isSymlinkRefused(err):
			return nil, false, errorf("CreateFile", ErrorAccessDenied, "%s is now a symbolic link", f.path)
		case errors.Is(err, fs.ErrNotExist) && f.readOnly && disp == wire.OpenAlways:
			return nil, false, errorf("CreateFile", ErrorWriteProtect, "OPEN_ALWAYS would create %s, which is redirected read-only", f.path)
		case errors.Is(err, fs.ErrNotExist) && (disp == wire.OpenAlways || disp == wire.CreateAlways):
			return nil, false, f.gone(disp)
		}
		return nil, false, wrap("CreateFile", err)
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, false, wrap("CreateFile", err)
	}
	if !os.SameFile(id, st) {
		fd.Close()
		return nil, false, errorf("CreateFile", ErrorAccessDenied, "%s is no longer the file redirected", f.path)
	}
	return fd, false, nil
}

// gone is the refusal of a disposition that would create the device's
// file after it was deleted: the device is the file found at NewFile (or
// first created), and a new file at its path is not it.
func (f *File) gone(disp uint32) error {
	return errorf("CreateFile", ErrorDevNotExist, "disposition %d: %s, the file redirected, no longer exists and is not created again", disp, f.path)
}

// createLocked opens the path of a writable File that had no file when
// NewFile ran (f.mu held, f.id nil). A disposition that creates creates
// the file exclusively, never following a link or opening a file someone
// else put there, and records it as the device's; a file that appeared
// at the path meanwhile is not the device's and is refused.
func (f *File) createLocked(flags int, disp uint32) (*os.File, bool, error) {
	switch disp {
	case wire.CreateNew, wire.CreateAlways, wire.OpenAlways:
		fd, err := f.openAt(flags|os.O_CREATE|os.O_EXCL, 0o666)
		if err != nil {
			if errors.Is(err, fs.ErrExist) || isSymlinkRefused(err) {
				if disp == wire.CreateNew {
					return nil, false, errorf("CreateFile", ErrorFileExists, "CREATE_NEW: %s exists", f.path)
				}
				return nil, false, errorf("CreateFile", ErrorAccessDenied, "%s appeared after the device was set up, and is not a file it created", f.path)
			}
			return nil, false, wrap("CreateFile", err)
		}
		st, err := fd.Stat()
		if err != nil {
			fd.Close()
			return nil, false, wrap("CreateFile", err)
		}
		os.SameFile(st, st) // Windows: read the file index now (see NewFile)
		f.id = st
		return fd, true, nil
	}
	exists, err := f.exists()
	switch {
	case err != nil:
		return nil, false, wrap("CreateFile", err)
	case exists:
		return nil, false, errorf("CreateFile", ErrorAccessDenied, "%s appeared after the device was set up, and is not a file it created", f.path)
	}
	return nil, false, errorf("CreateFile", ErrorFileNotFound, "%s does not exist", f.path)
}

// isStream reports whether m is a FIFO or a character device: no
// offsets, and an open that may block.
func isStream(m os.FileMode) bool {
	return m&os.ModeCharDevice != 0 || m&os.ModeNamedPipe != 0
}

type fileHandle struct {
	f           *os.File
	release     func()
	read, write bool
	readOnly    bool
	// stream devices (character devices, FIFOs) have no offsets: pread
	// fails on them, so they get plain reads and writes.
	stream  bool
	maxSize int64 // writes may not end beyond it; 0: no limit
	once    sync.Once
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
	if h.maxSize > 0 && off+uint64(len(p)) > uint64(h.maxSize) {
		return 0, errorf("Write", ErrorDiskFull, "%d bytes at offset %d would end past the device's maximum size %d", len(p), off, h.maxSize)
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
