package roundtrip

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// scriptChannel's writes succeed until stall is set; then they wait for
// their context, as a channel whose peer stopped reading does.
type scriptChannel struct {
	mu     sync.Mutex
	stall  bool
	writes int
	closed bool
	err    error // the stalled write's error
}

func (c *scriptChannel) Name() string { return "X" }
func (c *scriptChannel) ID() uint32   { return 1 }
func (c *scriptChannel) Write(ctx context.Context, _ []byte) error {
	c.mu.Lock()
	stall := c.stall
	c.writes++
	c.mu.Unlock()
	if !stall {
		return nil
	}
	<-ctx.Done()
	c.mu.Lock()
	c.err = context.Cause(ctx)
	c.mu.Unlock()
	return ctx.Err()
}
func (c *scriptChannel) Close() error { c.mu.Lock(); c.closed = true; c.mu.Unlock(); return nil }

// Replies that go through leave the Replier usable (the timer armed by the
// first is not a deadline for the later ones); a reply that stalls is
// cancelled by the same timer, whenever it fires, and the channel is
// closed. Nothing here measures time: 1 ms only makes the stall end soon.
func TestReplierTimesOutAStallAfterQuickReplies(t *testing.T) {
	ch := &scriptChannel{}
	r := NewReplier(ch, slog.New(slog.DiscardHandler), time.Millisecond, "reply")
	for range 3 {
		if !r.Send([]byte("ok")) {
			t.Fatal("a quick reply failed")
		}
	}
	ch.mu.Lock()
	ch.stall = true
	ch.mu.Unlock()
	if r.Send([]byte("stuck")) {
		t.Fatal("a stalled reply reported sent")
	}
	if r.Send([]byte("after")) || !r.Failed() {
		t.Fatal("a reply was attempted after the stall")
	}
	r.Closed(nil)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if !ch.closed || ch.writes != 4 || !errors.Is(ch.err, context.DeadlineExceeded) {
		t.Fatalf("closed %v, %d writes, cause %v", ch.closed, ch.writes, ch.err)
	}
}
