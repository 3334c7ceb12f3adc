package simple

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// stuckChannel's Write blocks until ctx is done, like a peer that stopped
// reading.
type stuckChannel struct {
	mu     sync.Mutex
	closed bool
}

func (c *stuckChannel) Name() string { return ChannelName }
func (c *stuckChannel) ID() uint32   { return 1 }
func (c *stuckChannel) Write(ctx context.Context, msg []byte) error {
	<-ctx.Done()
	return ctx.Err()
}
func (c *stuckChannel) Close() error { c.mu.Lock(); c.closed = true; c.mu.Unlock(); return nil }

func TestEchoerGivesUpOnStalledPeer(t *testing.T) {
	e := &Echoer{Timeout: time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	ch := &stuckChannel{}
	h, err := e.Accept(ch)
	if err != nil {
		t.Fatal(err)
	}
	h.Received(goldenPing)
	h.Received(goldenPing) // not attempted: the channel was given up
	h.Closed(nil)
	if !ch.closed || e.Counts().Messages != 0 {
		t.Fatalf("closed %v counts %+v", ch.closed, e.Counts())
	}
}

// recordChannel records writes.
type recordChannel struct {
	stuckChannel
	got [][]byte
	err error
}

func (c *recordChannel) Write(_ context.Context, msg []byte) error {
	c.got = append(c.got, append([]byte(nil), msg...))
	return c.err
}

func TestEchoerEchoesAnyBytes(t *testing.T) {
	e := &Echoer{Logger: slog.New(slog.DiscardHandler)}
	ch := &recordChannel{}
	h, _ := e.Accept(ch)
	for _, m := range [][]byte{goldenPing, []byte("Hello world!"), {0}} {
		h.Received(m)
	}
	if len(ch.got) != 3 || string(ch.got[1]) != "Hello world!" || string(ch.got[0]) != string(goldenPing) {
		t.Fatalf("echoed %q", ch.got)
	}
	if c := e.Counts(); c.Messages != 3 || c.Bytes != int64(len(goldenPing)+13) || c.Channels != 1 {
		t.Fatalf("%+v", c)
	}
	// A closed channel stops the echoes quietly, without Close.
	ch2 := &recordChannel{err: dvc.ErrClosed}
	h, _ = e.Accept(ch2)
	h.Received(goldenPing)
	h.Received(goldenPing)
	if len(ch2.got) != 1 || ch2.closed {
		t.Fatalf("%d writes after ErrClosed, closed %v", len(ch2.got), ch2.closed)
	}
}
