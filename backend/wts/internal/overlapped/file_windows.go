package overlapped

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sys/windows"
)

// ErrClosed is returned by I/O on a File after Close.
var ErrClosed = errors.New("overlapped: file closed")

// quitKey is the completion key of the packet that stops the collector.
const quitKey = 1

// File is a handle opened with FILE_FLAG_OVERLAPPED. Reads and writes may
// run concurrently; each is one ReadFile or WriteFile.
type File struct {
	h    windows.Handle
	port windows.Handle

	mu      sync.Mutex
	closed  bool
	pending sync.WaitGroup
	done    chan struct{}
}

// op is one overlapped operation. Overlapped comes first so that the
// pointer the port hands back is the op's; the op lives on the Go heap,
// which does not move, and is referenced by its waiter until the packet
// has been collected.
type op struct {
	ov  windows.Overlapped
	n   uint32
	err error
	ch  chan struct{}
}

// New takes ownership of h (Close closes it) and binds it to a new
// completion port.
func New(h windows.Handle) (*File, error) {
	port, err := windows.CreateIoCompletionPort(h, 0, 0, 1)
	if err != nil {
		return nil, err
	}
	f := &File{h: h, port: port, done: make(chan struct{})}
	go f.collect()
	return f, nil
}

func (f *File) collect() {
	defer close(f.done)
	for {
		var n uint32
		var key uintptr
		var ov *windows.Overlapped
		err := windows.GetQueuedCompletionStatus(f.port, &n, &key, &ov, windows.INFINITE)
		if ov == nil {
			// The quit packet, or the port failed: nothing more will
			// complete through it either way.
			return
		}
		o := (*op)(unsafePointer(ov))
		o.n, o.err = n, err
		close(o.ch)
	}
}

// do runs one operation. start issues it with o's OVERLAPPED; a
// completion packet follows unless it failed at once. When ctx ends
// first, the operation is cancelled (CancelIoEx) and ctx's error
// returned.
func (f *File) do(ctx context.Context, start func(ov *windows.Overlapped) error) (int, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return 0, ErrClosed
	}
	f.pending.Add(1)
	f.mu.Unlock()
	defer f.pending.Done()

	o := &op{ch: make(chan struct{})}
	// ERROR_MORE_DATA (a message longer than the buffer) completes the
	// operation with a warning status: its packet is queued like a
	// success's, and must be collected before o may go.
	if err := start(&o.ov); err != nil && !errors.Is(err, windows.ERROR_IO_PENDING) && !errors.Is(err, windows.ERROR_MORE_DATA) {
		return 0, err
	}
	// A Close that ran between the check above and start cancelled
	// nothing of this operation: cancel it here, or Close waits for it
	// forever. (Close sets closed before its CancelIoEx, so one of the
	// two sees the other.)
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		windows.CancelIoEx(f.h, &o.ov)
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { windows.CancelIoEx(f.h, &o.ov) })
		defer stop()
	}
	<-o.ch
	if o.err != nil {
		if errors.Is(o.err, windows.ERROR_OPERATION_ABORTED) {
			f.mu.Lock()
			closed := f.closed
			f.mu.Unlock()
			if closed {
				return int(o.n), ErrClosed
			}
			if ctx.Err() != nil {
				return int(o.n), ctx.Err()
			}
		}
		return int(o.n), o.err
	}
	return int(o.n), nil
}

// Read is one overlapped ReadFile into b. On a message-mode pipe or a
// virtual channel it returns one message (or chunk).
func (f *File) Read(b []byte) (int, error) { return f.ReadContext(context.Background(), b) }

// ReadContext is Read, cancelled when ctx ends.
func (f *File) ReadContext(ctx context.Context, b []byte) (int, error) {
	// The byte count is taken from the completion packet; this one only
	// keeps x/sys's race-detector hooks, which read it, from a nil pointer.
	var n uint32
	return f.do(ctx, func(ov *windows.Overlapped) error { return windows.ReadFile(f.h, b, &n, ov) })
}

// Write is one overlapped WriteFile of b.
func (f *File) Write(b []byte) (int, error) { return f.WriteContext(context.Background(), b) }

// WriteContext is Write, cancelled when ctx ends.
func (f *File) WriteContext(ctx context.Context, b []byte) (int, error) {
	var n uint32
	return f.do(ctx, func(ov *windows.Overlapped) error { return windows.WriteFile(f.h, b, &n, ov) })
}

// Close cancels pending I/O, waits for it to complete, closes the handle
// and the port, and stops the collector. It is idempotent.
func (f *File) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	f.mu.Unlock()
	windows.CancelIoEx(f.h, nil)
	f.pending.Wait()
	err := windows.CloseHandle(f.h)
	windows.PostQueuedCompletionStatus(f.port, 0, quitKey, nil)
	<-f.done
	windows.CloseHandle(f.port)
	return err
}
