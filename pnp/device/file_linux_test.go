package device

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
)

// TestStreamReadCancelled: a read on a FIFO with no writer blocks until
// its context is cancelled, then fails with ERROR_OPERATION_ABORTED, and
// the handle still works afterwards.
func TestStreamReadCancelled(t *testing.T) {
	p := filepath.Join(tempDir(t), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	d, err := NewFile(p, false, Description{})
	if err != nil {
		t.Fatal(err)
	}
	// Linux opens a FIFO read-write without waiting for a peer.
	h, err := d.Open(context.Background(), rw)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.ReadAt(ctx, make([]byte, 4), 0)
		done <- err
	}()
	cancel()
	wantCode(t, <-done, ErrorOperationAborted)
	bg := context.Background()
	if n, err := h.WriteAt(bg, []byte("ping"), 0); n != 4 || err != nil {
		t.Fatalf("write after the cancel: %d, %v", n, err)
	}
	buf := make([]byte, 4)
	if n, err := h.ReadAt(bg, buf, 0); n != 4 || err != nil || string(buf) != "ping" {
		t.Fatalf("read after the cancel: %d, %v, %q", n, err, buf)
	}
}
