package device

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// IoctlFunc services one I/O control code of an Emulated device: given the
// input buffer (DataIn, valid only during the call) and cbOut, it returns
// the output (at most outMax bytes; more is reported to the server as
// ERROR_INSUFFICIENT_BUFFER with no data) or an error (see HRESULTOf). It
// may take its time, but must return soon after ctx is done, with ctx.Err()
// if it gave up: that is how a Specific IoCancel Request reaches it.
// Handlers run concurrently.
type IoctlFunc func(ctx context.Context, in []byte, outMax uint32) ([]byte, error)

// Emulated is a device whose I/O controls are Go functions and which can
// raise custom events (2.2.2.3.10): for tests and demos, and for devices
// that exist only in software. It may have storage for Read and Write, as
// Memory has; without it, Read and Write fail with ERROR_INVALID_FUNCTION,
// as does an IoCode with no handler. Dispositions, access and share modes
// apply as for Memory; an I/O control whose CTL_CODE RequiredAccess bits
// ask for read or write access needs a handle opened with it.
type Emulated struct {
	desc  Description
	store *store
	share Sharing

	mu      sync.Mutex
	ioctls  map[uint32]IoctlFunc
	handles map[*emuHandle]struct{}
}

// NewEmulated returns an emulated device with size bytes of zeroed storage
// (0 for none) and no I/O controls yet.
func NewEmulated(desc Description, size int64) (*Emulated, error) {
	if size < 0 || size > MaxMemorySize {
		return nil, fmt.Errorf("device: storage size %d out of range 0..%d", size, int64(MaxMemorySize))
	}
	if err := desc.Validate(); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	e := &Emulated{desc: desc, ioctls: map[uint32]IoctlFunc{}, handles: map[*emuHandle]struct{}{}}
	if size > 0 {
		e.store = &store{data: make([]byte, size)}
	}
	return e, nil
}

// SetIoctl makes f service IoCode code on every handle, open or to come;
// a nil f removes the code.
func (e *Emulated) SetIoctl(code uint32, f IoctlFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f == nil {
		delete(e.ioctls, code)
		return
	}
	e.ioctls[code] = f
}

// RaiseEvent hands ev to every open handle whose opener asked for events
// (OpenRequest.Events: the client sends a Client Device Custom Event on
// each such handle's channel) and returns how many that was. No handle
// gets an event after its Close has returned.
func (e *Emulated) RaiseEvent(ev Event) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for h := range e.handles {
		if h.events != nil {
			h.events(ev)
			n++
		}
	}
	return n
}

// Describe implements Device.
func (e *Emulated) Describe() Description { return e.desc }

// OpenHandles reports how many handles are open.
func (e *Emulated) OpenHandles() int { return e.share.Open() }

// Snapshot copies n bytes of storage at off (nil without storage).
func (e *Emulated) Snapshot(off int64, n int) []byte {
	if e.store == nil {
		return nil
	}
	return e.store.snapshot(off, n)
}

// Open implements Device.
func (e *Emulated) Open(ctx context.Context, req OpenRequest) (Handle, error) {
	if err := openDevice(ctx, req); err != nil {
		return nil, err
	}
	release, err := e.share.Acquire(req)
	if err != nil {
		return nil, err
	}
	h := &emuHandle{e: e, release: release, read: req.WantsRead(), write: req.WantsWrite(), events: req.Events}
	e.mu.Lock()
	e.handles[h] = struct{}{}
	e.mu.Unlock()
	return h, nil
}

type emuHandle struct {
	e           *Emulated
	release     func()
	read, write bool
	events      func(Event)
	once        sync.Once
}

func (h *emuHandle) ReadAt(ctx context.Context, p []byte, off uint64) (int, error) {
	if h.e.store == nil {
		return 0, errorf("Read", ErrorInvalidFunction, "the device has no storage")
	}
	if !h.read {
		return 0, errorf("Read", ErrorAccessDenied, "the handle was opened without read access")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return h.e.store.readAt(p, off), nil
}

func (h *emuHandle) WriteAt(ctx context.Context, p []byte, off uint64) (int, error) {
	if h.e.store == nil {
		return 0, errorf("Write", ErrorInvalidFunction, "the device has no storage")
	}
	if !h.write {
		return 0, errorf("Write", ErrorAccessDenied, "the handle was opened without write access")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return h.e.store.writeAt(p, off)
}

// CTL_CODE RequiredAccess bits (bits 14-15 of an I/O control code).
const (
	fileReadAccess  = 1 // FILE_READ_ACCESS
	fileWriteAccess = 2 // FILE_WRITE_ACCESS
)

func (h *emuHandle) IoControl(ctx context.Context, code uint32, in []byte, outMax uint32) ([]byte, error) {
	h.e.mu.Lock()
	f := h.e.ioctls[code]
	h.e.mu.Unlock()
	if f == nil {
		return nil, errorf("IOControl", ErrorInvalidFunction, "IoCode 0x%08X is not handled", code)
	}
	access := code >> 14 & 3
	if (access&fileReadAccess != 0 && !h.read) || (access&fileWriteAccess != 0 && !h.write) {
		return nil, errorf("IOControl", ErrorAccessDenied, "IoCode 0x%08X needs access the handle lacks", code)
	}
	return f(ctx, in, outMax)
}

func (h *emuHandle) Close() error {
	h.once.Do(func() {
		h.e.mu.Lock()
		delete(h.e.handles, h)
		h.e.mu.Unlock()
		h.release()
	})
	return nil
}

// I/O control codes of the demo device (NewDemo), each
// CTL_CODE(FILE_DEVICE_UNKNOWN, function, METHOD_BUFFERED, FILE_ANY_ACCESS).
const (
	// IoctlDemoEcho (function 0x800) returns its input, cut to cbOut.
	IoctlDemoEcho uint32 = 0x00222000
	// IoctlDemoSlow (function 0x801) waits the number of milliseconds in
	// its input (a little-endian uint32; no input: until cancelled), then
	// returns its input cut to cbOut. Cancelled, it fails with
	// ERROR_OPERATION_ABORTED.
	IoctlDemoSlow uint32 = 0x00222004
	// IoctlDemoRaise (function 0x802) raises a custom event with
	// DemoEventGUID and its input as data on every handle that negotiated
	// events, and returns how many that was (a little-endian uint32, if
	// cbOut allows).
	IoctlDemoRaise uint32 = 0x00222008
)

// DemoEventGUID is the CustomEventGUID of the demo device's events.
var DemoEventGUID = wire.MustParseGUID("{7D3E4C1A-5B2F-4E8D-9A61-0C2B3D4E5F60}")

// NewDemo returns an Emulated device with size bytes of storage and the
// demo I/O controls (IoctlDemoEcho, IoctlDemoSlow, IoctlDemoRaise): what
// `rdpdvc pnp-client -device emu:NAME` redirects, and what the demo drives.
func NewDemo(desc Description, size int64) (*Emulated, error) {
	e, err := NewEmulated(desc, size)
	if err != nil {
		return nil, err
	}
	e.SetIoctl(IoctlDemoEcho, func(_ context.Context, in []byte, outMax uint32) ([]byte, error) {
		return cut(in, outMax), nil
	})
	e.SetIoctl(IoctlDemoSlow, func(ctx context.Context, in []byte, outMax uint32) ([]byte, error) {
		var wait <-chan time.Time
		if len(in) >= 4 {
			t := time.NewTimer(time.Duration(binary.LittleEndian.Uint32(in)) * time.Millisecond)
			defer t.Stop()
			wait = t.C
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait:
			return cut(in, outMax), nil
		}
	})
	e.SetIoctl(IoctlDemoRaise, func(_ context.Context, in []byte, outMax uint32) ([]byte, error) {
		n := e.RaiseEvent(Event{GUID: DemoEventGUID, Data: in})
		return cut(binary.LittleEndian.AppendUint32(nil, uint32(n)), outMax), nil
	})
	return e, nil
}

func cut(b []byte, max uint32) []byte {
	if uint64(len(b)) > uint64(max) {
		b = b[:max]
	}
	return append([]byte(nil), b...)
}
