package device

import (
	"context"
	"fmt"
	"sync"
)

// MaxMemorySize bounds a Memory device (and an Emulated device's storage):
// the bytes are allocated up front.
const MaxMemorySize = 4 << 30

// Memory is a device backed by a byte array of a fixed size, zeroed at
// first: a RAM disk. Reads past the end are short (the end of the device,
// as ReadFile reports it); a write that does not fit writes what fits and
// fails with ERROR_DISK_FULL. It takes no I/O controls.
//
// It is a device, not a file: CREATE_NEW fails with ERROR_FILE_EXISTS, and
// CREATE_ALWAYS and TRUNCATE_EXISTING with ERROR_INVALID_PARAMETER, since
// a fixed-size device cannot be truncated; OPEN_EXISTING and OPEN_ALWAYS
// open it. Handle access and share modes apply as for File.
type Memory struct {
	desc  Description
	store store
	share Sharing
}

// NewMemory returns a zeroed memory device of size bytes.
func NewMemory(size int64, desc Description) (*Memory, error) {
	if size < 0 || size > MaxMemorySize {
		return nil, fmt.Errorf("device: memory size %d out of range 0..%d", size, int64(MaxMemorySize))
	}
	if err := desc.Validate(); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	return &Memory{desc: desc, store: store{data: make([]byte, size)}}, nil
}

// Describe implements Device.
func (m *Memory) Describe() Description { return m.desc }

// Size is the device's size in bytes.
func (m *Memory) Size() int64 { return int64(len(m.store.data)) }

// OpenHandles reports how many handles are open.
func (m *Memory) OpenHandles() int { return m.share.Open() }

// Snapshot copies n bytes at off out of the device (fewer at its end), for
// tests and demos.
func (m *Memory) Snapshot(off int64, n int) []byte { return m.store.snapshot(off, n) }

// Open implements Device.
func (m *Memory) Open(ctx context.Context, req OpenRequest) (Handle, error) {
	if err := openDevice(ctx, req); err != nil {
		return nil, err
	}
	release, err := m.share.Acquire(req)
	if err != nil {
		return nil, err
	}
	return &memHandle{store: &m.store, release: release, read: req.WantsRead(), write: req.WantsWrite()}, nil
}

func openDevice(ctx context.Context, req OpenRequest) error {
	if err := CheckOpen(req); err != nil {
		return err
	}
	if err := checkDeviceDisposition(req); err != nil {
		return err
	}
	return ctx.Err()
}

type memHandle struct {
	store       *store
	release     func()
	read, write bool
	once        sync.Once
}

func (h *memHandle) ReadAt(ctx context.Context, p []byte, off uint64) (int, error) {
	if !h.read {
		return 0, errorf("Read", ErrorAccessDenied, "the handle was opened without read access")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return h.store.readAt(p, off), nil
}

func (h *memHandle) WriteAt(ctx context.Context, p []byte, off uint64) (int, error) {
	if !h.write {
		return 0, errorf("Write", ErrorAccessDenied, "the handle was opened without write access")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return h.store.writeAt(p, off)
}

func (h *memHandle) IoControl(ctx context.Context, code uint32, in []byte, outMax uint32) ([]byte, error) {
	return nil, errorf("IOControl", ErrorInvalidFunction, "IoCode 0x%08X: a memory device takes no I/O controls", code)
}

func (h *memHandle) Close() error {
	h.once.Do(h.release)
	return nil
}

// store is the byte array behind Memory and Emulated.
type store struct {
	mu   sync.RWMutex
	data []byte
}

func (s *store) readAt(p []byte, off uint64) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if off >= uint64(len(s.data)) {
		return 0
	}
	return copy(p, s.data[off:])
}

func (s *store) writeAt(p []byte, off uint64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if off < uint64(len(s.data)) {
		n = copy(s.data[off:], p)
	}
	if n < len(p) {
		return n, errorf("Write", ErrorDiskFull, "%d bytes at %d do not fit in a %d-byte device", len(p), off, len(s.data))
	}
	return n, nil
}

func (s *store) snapshot(off int64, n int) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if off < 0 || off >= int64(len(s.data)) || n <= 0 {
		return nil
	}
	end := int64(len(s.data))
	if int64(n) < end-off {
		end = off + int64(n)
	}
	return append([]byte(nil), s.data[off:end]...)
}
