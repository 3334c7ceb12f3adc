package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/pnp/server"
)

// TestStalledClientDoesNotHangCalls: a client that stops reading fills
// the channel's inbox, and the server's Write of a request blocks. A call
// queued behind it must still end with its context, and once the blocked
// writers' contexts end too, Config.CancelTimeout must close the handle
// rather than leave them stuck. Before the fix every such call hung.
func TestStalledClientDoesNotHangCalls(t *testing.T) {
	s, c, p := start(t, server.Config{CancelTimeout: 200 * time.Millisecond})
	addDevices(t, s, p, 1)
	h, f := openHandle(t, s, c, 1, 6)
	entered := make(chan struct{}, 1)
	f.stall(entered)
	t.Cleanup(func() { f.unstall() })

	// The first request is taken by the stalled handler, the second fills
	// the loopback inbox (16 MiB), the third blocks in the backend's Write
	// holding the handle's write turn.
	data := make([]byte, 9<<20)
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	const writers = 3
	werrs := make(chan error, writers)
	for range writers {
		go func() { _, err := h.Write(wctx, 0, data); werrs <- err }()
	}
	select {
	case <-entered:
	case <-time.After(patience):
		t.Fatal("the fake client never got the first request")
	}

	// A call behind the stuck write ends with its own context.
	rctx, rcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer rcancel()
	rerr := make(chan error, 1)
	go func() { _, err := h.Read(rctx, 0, 1); rerr <- err }()
	select {
	case err := <-rerr:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Read behind a stalled write: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(patience):
		t.Fatal("Read behind a stalled write did not end with its context")
	}

	// The writers give up: the one stuck in the backend's Write cannot be
	// abandoned halfway, so after CancelTimeout the handle is closed.
	wcancel()
	for range writers {
		select {
		case err := <-werrs:
			if err == nil {
				continue // delivered before the stall took hold
			}
			if !errors.Is(err, context.Canceled) && !errors.Is(err, server.ErrCancelTimeout) {
				t.Errorf("Write: %v, want context.Canceled or ErrCancelTimeout", err)
			}
		case <-time.After(patience):
			t.Fatal("a Write stuck behind a stalled client did not end after its context and CancelTimeout")
		}
	}
	select {
	case <-h.Done():
	case <-time.After(patience):
		t.Fatal("the handle was not closed after CancelTimeout")
	}
	if err := h.Err(); !errors.Is(err, server.ErrCancelTimeout) {
		t.Errorf("handle ended with %v, want ErrCancelTimeout", err)
	}
}
