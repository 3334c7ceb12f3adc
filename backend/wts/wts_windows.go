package wts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/rdpdvc/rdpdvc/backend/wts/internal/overlapped"
	"github.com/rdpdvc/rdpdvc/dvc"
)

// The wtsapi32 functions, loaded from System32 only (never from the
// program's directory, where a planted DLL could sit).
var (
	modwtsapi32 = windows.NewLazySystemDLL("wtsapi32.dll")

	procOpenEx     = modwtsapi32.NewProc("WTSVirtualChannelOpenEx")
	procClose      = modwtsapi32.NewProc("WTSVirtualChannelClose")
	procRead       = modwtsapi32.NewProc("WTSVirtualChannelRead")
	procWrite      = modwtsapi32.NewProc("WTSVirtualChannelWrite")
	procQuery      = modwtsapi32.NewProc("WTSVirtualChannelQuery")
	procFreeMemory = modwtsapi32.NewProc("WTSFreeMemory")

	moduser32            = windows.NewLazySystemDLL("user32.dll")
	procGetSystemMetrics = moduser32.NewProc("GetSystemMetrics")
)

const (
	wtsCurrentSession        = 0xFFFFFFFF // WTS_CURRENT_SESSION ((DWORD)-1)
	wtsChannelOptionDynamic  = 0x00000001 // WTS_CHANNEL_OPTION_DYNAMIC
	wtsChannelOptionPriShift = 1          // WTS_CHANNEL_OPTION_DYNAMIC_PRI_LOW/MED/HIGH/REAL = 0,2,4,6
	wtsVirtualFileHandle     = 1          // WTS_VIRTUAL_CLASS WTSVirtualFileHandle
	smRemoteSession          = 0x1000     // SM_REMOTESESSION
	infinite                 = 0xFFFFFFFF // INFINITE
)

// inRemoteSession reports whether this process runs in a remote (RDP)
// session. A variable so that tests under Wine, which has no remote
// sessions, can reach the "client has no listener" path.
var inRemoteSession = func() bool {
	r, _, _ := procGetSystemMetrics.Call(smRemoteSession)
	return r != 0
}

// Opener opens dynamic virtual channels of the RDP session this program
// runs in. The zero value uses WTS API mode.
type Opener struct {
	// FileHandle selects file-handle mode (--filehandle): overlapped
	// ReadFile/WriteFile on the channel's file handle instead of
	// WTSVirtualChannelRead/Write.
	FileHandle bool
	// MaxMessage is the largest message accepted either way;
	// DefaultMaxMessage if 0.
	MaxMessage int
}

var _ dvc.Opener = (*Opener)(nil)

// Open implements dvc.Opener. WTSVirtualChannelOpenEx waits for the
// client's answer (DYNVC_CREATE_RSP); if ctx ends first, Open returns
// ctx.Err() and closes the channel once the call returns. The priority
// option maps onto WTS_CHANNEL_OPTION_DYNAMIC_PRI_*; a Framer is not
// needed, channels keep message boundaries.
func (o *Opener) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return nil, fmt.Errorf("wts: open %q: the name must be non-empty and contain no NUL", name)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := modwtsapi32.Load(); err != nil {
		return nil, fmt.Errorf("wts: open %q: %w", name, err)
	}
	oo := dvc.ApplyOpenOptions(opts)
	flags := uintptr(wtsChannelOptionDynamic | uint32(oo.Priority)<<wtsChannelOptionPriShift)
	cname := append([]byte(name), 0)

	type result struct {
		h   windows.Handle
		err error
	}
	res := make(chan result, 1)
	go func() {
		h, _, err := procOpenEx.Call(wtsCurrentSession, uintptr(unsafe.Pointer(&cname[0])), flags)
		res <- result{windows.Handle(h), err}
	}()
	var r result
	select {
	case r = <-res:
	case <-ctx.Done():
		go func() {
			if r := <-res; r.h != 0 {
				procClose.Call(uintptr(r.h))
			}
		}()
		return nil, ctx.Err()
	}
	if r.h == 0 {
		var errno windows.Errno
		errors.As(r.err, &errno)
		return nil, &OpenError{Name: name, Errno: uint32(errno), InSession: inRemoteSession()}
	}
	var t transport
	if o.FileHandle {
		ft, err := openFileTransport(r.h)
		if err != nil {
			return nil, fmt.Errorf("wts: open %q in file-handle mode: %w", name, err)
		}
		t = ft
	} else {
		t = &apiTransport{h: r.h}
	}
	return newConn(name, t, o.MaxMessage), nil
}

// apiTransport is WTS API mode. WTSVirtualChannelRead and
// WTSVirtualChannelWrite are not thread-safe (their documentation says so),
// so every call on h holds mu, and reads wait APIPollInterval at most.
type apiTransport struct {
	mu     sync.Mutex
	h      windows.Handle
	closed bool
	// writers counts Writes waiting for mu. The reader steps aside for
	// them between slices: sync.Mutex is not fair, and a reader that
	// relocks at once would keep a writer waiting several slices.
	writers atomic.Int32
}

func (t *apiTransport) readPDU(buf []byte) (int, error) {
	timeout := uintptr(APIPollInterval / time.Millisecond)
	for {
		for t.writers.Load() > 0 {
			runtime.Gosched()
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return 0, errTransportClosed
		}
		var n uint32
		ok, _, err := procRead.Call(uintptr(t.h), timeout, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&n)))
		t.mu.Unlock()
		if done, n, err := apiReadResult(ok != 0, n, err); done {
			return n, err
		}
	}
}

// apiReadResult interprets one WTSVirtualChannelRead. Its documentation
// does not say what a timeout looks like; both shapes seen in the wild
// (success with no bytes, and failure with a timeout code) mean "try
// again".
func apiReadResult(ok bool, n uint32, err error) (done bool, _ int, _ error) {
	if ok {
		if n == 0 {
			return false, 0, nil
		}
		return true, int(n), nil
	}
	switch {
	case errors.Is(err, windows.WAIT_TIMEOUT), errors.Is(err, windows.ERROR_SEM_TIMEOUT), errors.Is(err, windows.ERROR_IO_INCOMPLETE):
		return false, 0, nil
	case isEOF(err):
		return true, 0, io.EOF
	}
	return true, 0, fmt.Errorf("WTSVirtualChannelRead: %w", err)
}

// isEOF tells the errors with which a channel's handle reports that the
// client closed the channel.
func isEOF(err error) bool {
	return errors.Is(err, windows.ERROR_BROKEN_PIPE) || errors.Is(err, windows.ERROR_PIPE_NOT_CONNECTED) ||
		errors.Is(err, windows.ERROR_NO_DATA) || errors.Is(err, windows.ERROR_HANDLE_EOF) || errors.Is(err, io.EOF)
}

func (t *apiTransport) write(_ context.Context, msg []byte) error {
	t.writers.Add(1)
	t.mu.Lock()
	t.writers.Add(-1)
	defer t.mu.Unlock()
	if t.closed {
		return errTransportClosed
	}
	var p *byte
	if len(msg) > 0 {
		p = &msg[0]
	}
	var n uint32
	ok, _, err := procWrite.Call(uintptr(t.h), uintptr(unsafe.Pointer(p)), uintptr(len(msg)), uintptr(unsafe.Pointer(&n)))
	if ok == 0 {
		if isEOF(err) {
			return io.EOF
		}
		return fmt.Errorf("WTSVirtualChannelWrite: %w", err)
	}
	if int(n) != len(msg) {
		return fmt.Errorf("WTSVirtualChannelWrite: wrote %d of %d bytes", n, len(msg))
	}
	return nil
}

func (t *apiTransport) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	if ok, _, err := procClose.Call(uintptr(t.h)); ok == 0 {
		return fmt.Errorf("WTSVirtualChannelClose: %w", err)
	}
	return nil
}

// fileTransport is file-handle mode: the duplicated handle driven with
// overlapped ReadFile/WriteFile on an I/O completion port.
type fileTransport struct {
	f *overlapped.File
}

// openFileTransport takes the channel's file handle, duplicates it (the
// queried handle belongs to the WTS channel handle and dies with it),
// then closes the WTS handle, as Microsoft's DVC server sample does: the
// duplicate keeps the channel open until it is closed.
func openFileTransport(h windows.Handle) (_ *fileTransport, err error) {
	defer procClose.Call(uintptr(h))
	var p unsafe.Pointer
	var n uint32
	if ok, _, err := procQuery.Call(uintptr(h), wtsVirtualFileHandle, uintptr(unsafe.Pointer(&p)), uintptr(unsafe.Pointer(&n))); ok == 0 {
		return nil, fmt.Errorf("WTSVirtualChannelQuery(WTSVirtualFileHandle): %w", err)
	}
	defer procFreeMemory.Call(uintptr(p))
	if p == nil || n != uint32(unsafe.Sizeof(windows.Handle(0))) {
		return nil, fmt.Errorf("WTSVirtualChannelQuery(WTSVirtualFileHandle) returned %d bytes, want a HANDLE", n)
	}
	fh := *(*windows.Handle)(p)
	self := windows.CurrentProcess()
	var dup windows.Handle
	if err := windows.DuplicateHandle(self, fh, self, &dup, 0, false, windows.DUPLICATE_SAME_ACCESS); err != nil {
		return nil, fmt.Errorf("DuplicateHandle: %w", err)
	}
	f, err := overlapped.New(dup)
	if err != nil {
		windows.CloseHandle(dup)
		return nil, fmt.Errorf("binding the channel's file handle to an I/O completion port: %w", err)
	}
	return &fileTransport{f: f}, nil
}

// readPDU reads one CHANNEL_PDU. A read of zero bytes is taken as the end
// of the channel, as for a pipe.
func (t *fileTransport) readPDU(buf []byte) (int, error) {
	n, err := t.f.Read(buf)
	switch {
	case errors.Is(err, overlapped.ErrClosed):
		return 0, errTransportClosed
	case err != nil && isEOF(err), err == nil && n == 0:
		return 0, io.EOF
	case err != nil:
		return 0, fmt.Errorf("ReadFile: %w", err)
	}
	return n, nil
}

// write is one WriteFile of the whole message; ctx ending cancels it.
func (t *fileTransport) write(ctx context.Context, msg []byte) error {
	n, err := t.f.WriteContext(ctx, msg)
	switch {
	case errors.Is(err, overlapped.ErrClosed):
		return errTransportClosed
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil && isEOF(err):
		return io.EOF
	case err != nil:
		return fmt.Errorf("WriteFile: %w", err)
	case n != len(msg):
		return fmt.Errorf("WriteFile: wrote %d of %d bytes", n, len(msg))
	}
	return nil
}

// close cancels pending I/O (CancelIoEx), waits for it and closes the
// handle.
func (t *fileTransport) close() error { return t.f.Close() }
