package client

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// stalledChannel is a FileRedirectorChannel whose server stops reading
// after the first pass messages: every later Write blocks until the test
// calls unstall, ignoring both its context and Close, as a write stuck in
// a carrier with no deadline does. It records every message Write was
// given, once that Write returns.
type stalledChannel struct {
	name    string
	pass    int
	mu      sync.Mutex
	offered int      // Writes started
	msgs    [][]byte // messages whose Write returned
	wrote   chan struct{}
	entered chan struct{} // closed when the first Write blocks
	release chan struct{}
	closed  chan struct{}
	once    sync.Once
	relOnce sync.Once
	entOnce sync.Once
}

func newStalledChannel(pass int) *stalledChannel {
	return &stalledChannel{
		name: wire.ChannelFileRedirector, pass: pass, wrote: make(chan struct{}, 1024),
		entered: make(chan struct{}), release: make(chan struct{}), closed: make(chan struct{}),
	}
}

func (s *stalledChannel) Name() string { return s.name }
func (s *stalledChannel) ID() uint32   { return 7 }
func (s *stalledChannel) Write(_ context.Context, m []byte) error {
	s.mu.Lock()
	s.offered++
	stall := s.offered > s.pass
	s.mu.Unlock()
	if stall {
		s.entOnce.Do(func() { close(s.entered) })
		<-s.release
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, append([]byte(nil), m...))
	s.mu.Unlock()
	s.wrote <- struct{}{}
	return nil
}
func (s *stalledChannel) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}
func (s *stalledChannel) unstall() { s.relOnce.Do(func() { close(s.release) }) }

// waitWrites waits until n Writes have returned.
func (s *stalledChannel) waitWrites(t *testing.T, n int) [][]byte {
	t.Helper()
	timeout := time.After(guard)
	for {
		s.mu.Lock()
		got := len(s.msgs)
		msgs := append([][]byte(nil), s.msgs...)
		s.mu.Unlock()
		if got >= n {
			return msgs
		}
		select {
		case <-s.wrote:
		case <-timeout:
			t.Fatalf("%d messages written, want %d", got, n)
		}
	}
}

// stalledHandle starts a client with cfg redirecting dev, and opens a
// handle on it over a stalledChannel that lets the Capabilities and
// CreateFile Replies through.
func stalledHandle(t *testing.T, cfg Config, dev device.Device) (*Client, *stalledChannel, func([]byte)) {
	t.Helper()
	cfg.Logger = quietLogger()
	c, err := New(cfg, dev)
	if err != nil {
		t.Fatal(err)
	}
	ph, _ := c.PNPDRListener().Accept(&fakeChannel{name: wire.ChannelPNPDR})
	ph.Received(serverVersion)
	ph.Received(authenticated)
	ch := newStalledChannel(2)
	t.Cleanup(func() {
		ch.unstall() // lets a Write that never returned finish, so Close can
		c.Close()
	})
	h, err := c.FileRedirectorListener().Accept(ch)
	if err != nil {
		t.Fatal(err)
	}
	h.Received(capsReq(0))
	h.Received(createReq(1, 1))
	msgs := ch.waitWrites(t, 2)
	if r, err := wire.ParseCreateFileReply(msgs[1]); err != nil || r.Result != hresult.S_OK {
		t.Fatalf("CreateFile reply %+v, %v", r, err)
	}
	return c, ch, h.Received
}

// TestStalledServerMemoryCeiling is the hostile server of issue 10 item
// 2, scaled down: it stops reading and sends 40 Read requests of 4 MiB on
// one handle. The client holds a reply's buffer until the reply is
// written, so it may accept only MaxBufferedBytes/4 MiB of them; the rest
// are answered ERROR_NO_SYSTEM_RESOURCES without touching the device.
// Before the fix the budget came back before the reply was written, so
// every request was accepted and 160 MiB of replies piled up.
func TestStalledServerMemoryCeiling(t *testing.T) {
	const (
		size    = 4 << 20
		ceiling = 32 << 20
		n       = 40
	)
	mem, _ := device.NewMemory(4096, device.Description{})
	dev := &spy{Device: mem}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, ch, received := stalledHandle(t, Config{MaxBufferedBytes: ceiling, WriteTimeout: guard}, dev)
	feed(t, received, n, size)
	// Accepted requests reach the device on their own goroutines; none
	// can be accepted beyond the ceiling while no reply is written.
	want := ceiling / size
	if got := int(dev.reads.Load()); got > want {
		t.Fatalf("the device serviced %d reads of %d bytes (%d MiB held for replies the server does not read); the ceiling allows %d",
			got, size, got*size>>20, want)
	}
	// Wait for the accepted ones to have their buffers, then measure.
	<-ch.entered
	eventually(t, "the accepted reads reach the device", func() bool { return dev.reads.Load() >= int32(want) })
	var during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&during)
	held := int64(during.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("stalled: %d reads serviced, budget %d bytes reserved, heap +%.1f MiB", dev.reads.Load(), c.buffered.Load(), float64(held)/(1<<20))
	if c.buffered.Load() > ceiling {
		t.Fatalf("%d bytes reserved, over the ceiling %d", c.buffered.Load(), ceiling)
	}
	if held > ceiling+8<<20 {
		t.Fatalf("the heap grew by %d bytes while stalled; the ceiling is %d", held, ceiling)
	}

	// The server reads again: every request is answered exactly once.
	ch.unstall()
	msgs := ch.waitWrites(t, 2+n)
	served, refused := 0, 0
	for _, m := range msgs[2:] {
		r, err := wire.ParseReadReply(m)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case r.Result == hresult.S_OK && len(r.Data) == 4096:
			served++
		case r.Result == device.ErrorNoSystemResources && len(r.Data) == 0:
			refused++
		default:
			t.Fatalf("unexpected reply %+v", r)
		}
	}
	if served != want || refused != n-want {
		t.Fatalf("%d served, %d refused; want %d and %d", served, refused, want, n-want)
	}
	c.Close()
	if got := c.buffered.Load(); got != 0 {
		t.Fatalf("%d bytes still reserved after Close", got)
	}
}

// TestStalledWriteTimesOut: a reply whose Write does not return within
// Config.WriteTimeout — here the channel ignores the context altogether —
// has its instance closed; the replies queued behind it give their
// budget back, and another handle of the same client keeps working.
// Before the fix the write waited for ever and the instance stayed open.
func TestStalledWriteTimesOut(t *testing.T) {
	const size = 1 << 20
	mem, _ := device.NewMemory(4096, device.Description{})
	c, ch, received := stalledHandle(t, Config{WriteTimeout: 100 * time.Millisecond}, mem)

	// A healthy handle on the same device.
	ok := &fakeChannel{name: wire.ChannelFileRedirector}
	oh, _ := c.FileRedirectorListener().Accept(ok)
	oh.Received(capsReq(0))
	oh.Received(createReq(1, 1))

	feed(t, received, 3, size)
	select {
	case <-ch.closed:
	case <-time.After(guard):
		t.Fatal("the instance was not closed although its write never returned")
	}
	// Only the reply stuck in Write still holds its buffer.
	eventually(t, "only the stuck write's bytes stay reserved", func() bool { return c.buffered.Load() == size })

	eventually(t, "the other handle opens", func() bool { return len(ok.sent()) >= 2 })
	oh.Received(readReq(2, 16, 0))
	eventually(t, "the other handle answers", func() bool { return len(ok.sent()) >= 3 })
	if r, err := wire.ParseReadReply(ok.sent()[2]); err != nil || r.Result != hresult.S_OK || len(r.Data) != 16 {
		t.Fatalf("the other handle: %+v, %v", r, err)
	}
	ch.unstall()
	c.Close()
	if got := c.buffered.Load(); got != 0 {
		t.Fatalf("%d bytes still reserved after Close", got)
	}
}

// eventually waits, yielding, until cond holds; guard bounds it.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		runtime.Gosched()
	}
}

// feed hands n Read requests of size bytes to a handler, as the server
// sends them. Received must not wait for the network: a client that
// blocks there stops reading the server's messages.
func feed(t *testing.T, received func([]byte), n int, size uint32) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			received(readReq(uint32(2+i), size, 0))
		}
	}()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatal("Received blocked on a write to the stalled server")
	}
}

// TestStalledPNPDRWriteTimesOut: the same for PNPDR: a Client Version
// whose Write never returns has PNPDR closed after Config.WriteTimeout.
func TestStalledPNPDRWriteTimesOut(t *testing.T) {
	c, err := New(Config{Logger: quietLogger(), WriteTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ch := newStalledChannel(0)
	ch.name = wire.ChannelPNPDR
	defer func() {
		ch.unstall()
		c.Close()
	}()
	h, err := c.PNPDRListener().Accept(ch)
	if err != nil {
		t.Fatal(err)
	}
	h.Received(serverVersion)
	select {
	case <-ch.closed:
	case <-time.After(guard):
		t.Fatal("PNPDR was not closed although its write never returned")
	}
}

// TestRefusalFloodClosesInstance: refusals are queued rather than written
// from Received; a server that sends requests past the limits while it
// reads nothing would grow that queue, so once Config.MaxOutstanding
// refusals wait the instance is closed.
func TestRefusalFloodClosesInstance(t *testing.T) {
	mem, _ := device.NewMemory(4096, device.Description{})
	_, ch, received := stalledHandle(t, Config{MaxOutstanding: 4, WriteTimeout: guard}, mem)
	feed(t, received, 4+4+1, 16) // 4 accepted, 4 refusals queued, then one too many
	select {
	case <-ch.closed:
	case <-time.After(guard):
		t.Fatal("the instance stayed open under a flood of unread refusals")
	}
}
