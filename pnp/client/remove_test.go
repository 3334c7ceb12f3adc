package client

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// stuckOpen is a device whose Open ignores its context and waits for
// release, then opens; it records whether that handle got closed.
type stuckOpen struct {
	device.Device
	entered chan struct{}
	release chan struct{}
	closed  atomic.Bool
}

func (d *stuckOpen) Open(ctx context.Context, req device.OpenRequest) (device.Handle, error) {
	close(d.entered)
	<-d.release
	h, err := d.Device.Open(context.Background(), req)
	if err != nil {
		return nil, err
	}
	return &closeSpy{Handle: h, closed: &d.closed}, nil
}

type closeSpy struct {
	device.Handle
	closed *atomic.Bool
}

func (h *closeSpy) Close() error {
	h.closed.Store(true)
	return h.Handle.Close()
}

// TestRemoveDeviceWaitsForOpen: RemoveDevice during a CreateFile whose
// Open is stuck, then the server closing the instance, does not return
// until that Open has returned and its handle is closed.
func TestRemoveDeviceWaitsForOpen(t *testing.T) {
	mem, err := device.NewMemory(16, device.Description{Text: "stuck"})
	if err != nil {
		t.Fatal(err)
	}
	d := &stuckOpen{Device: mem, entered: make(chan struct{}), release: make(chan struct{})}
	s := newServer(t, Config{}, d)
	var once sync.Once
	release := func() { once.Do(func() { close(d.release) }) }
	t.Cleanup(release) // before the client's Close, which waits for Open
	s.pnpdrReady()
	conn := s.fileChannel(wire.IOVersionCustomEvents)
	send(t, conn, createReq(1, 1))
	<-d.entered
	s.c.mu.Lock()
	var fc *fileChan
	for f := range s.c.files {
		fc = f
	}
	s.c.mu.Unlock()

	removed := make(chan error, 1)
	go func() { removed <- s.c.RemoveDevice(context.Background(), 1) }()
	// Wait until RemoveDevice has revoked the instance, then close it.
	for {
		fc.mu.Lock()
		st := fc.state
		fc.mu.Unlock()
		if st == fileGone {
			break
		}
		runtime.Gosched()
	}
	conn.Close()
	for {
		s.c.mu.Lock()
		n := len(s.c.files)
		s.c.mu.Unlock()
		if n == 0 {
			break
		}
		runtime.Gosched()
	}
	select {
	case <-fc.handleDone:
		t.Fatal("the instance says its handle is done while Open is still in progress")
	default:
	}
	release()
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if !d.closed.Load() {
		t.Fatal("RemoveDevice returned before the handle Open produced was closed")
	}
}
