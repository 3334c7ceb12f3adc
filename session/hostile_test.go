package session

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
)

// Peers that stall or flood (issue: hostile and stuck peers). Each test
// fails on the code before its limit existed.

// A client that answers the capabilities but never DYNVC_CREATE_REQ no
// longer holds Open for ever: it fails with ErrOpenTimeout, and the id is
// left to be closed if the answer ever comes.
func TestOpenTimesOutWithoutCreateResponse(t *testing.T) {
	r := newRecorder()
	s := NewServer(r, Config{Logger: quiet, OpenTimeout: 20 * time.Millisecond})
	defer s.Shutdown(nil)
	s.Start()
	r.next(t) // caps request
	if err := s.Receive(hexb(t, "50 00 02 00")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Open(context.Background(), "x")
		done <- err
	}()
	req, err := drdynvc.ParseCreateRequest(r.next(t))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrOpenTimeout) {
			t.Fatalf("Open: %v, want ErrOpenTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open still waiting for a DYNVC_CREATE_RSP that never comes")
	}
	// A late success is answered with a close: nobody owns the channel.
	if err := s.Receive(drdynvc.CreateResponse{ChannelID: req.ChannelID}.Append(nil)); err != nil {
		t.Fatal(err)
	}
	if p, err := drdynvc.ParseClose(r.next(t)); err != nil || p.ChannelID != req.ChannelID {
		t.Fatalf("late success not closed: %+v %v", p, err)
	}
}

// DYNVC_CAPS_RSP is 4 bytes (MS-RDPEDYC 2.2.1.2); 64 KiB after its Version
// field make it malformed, which ends the connection (3.1.5.2.4).
func TestCapsResponseWithTrailingBytesIsRefused(t *testing.T) {
	r := newRecorder()
	s := NewServer(r, Config{Logger: quiet})
	defer s.Shutdown(nil)
	s.Start()
	r.next(t)
	err := s.Receive(append(hexb(t, "50 00 02 00"), make([]byte, 64<<10)...))
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.PDU != "DYNVC_CAPS_RSP" || !strings.Contains(err.Error(), "after the Version field") {
		t.Fatalf("Receive: %v, want a DYNVC_CAPS_RSP error naming the Version field", err)
	}
	if s.Version() != 0 {
		t.Fatal("the padded answer was taken as the capabilities")
	}
}

// A server that floods DYNVC_CREATE_REQ for a name nobody listens on and
// reads none of the refusals: the queue of refusals stops at MaxCtrlBytes
// and the connection ends, instead of growing with every request (issue:
// 3,000,000 requests, 266-320 MiB).
func TestRefusalFloodAgainstStalledCarrierIsBounded(t *testing.T) {
	w := &stalled{release: make(chan struct{}), started: make(chan struct{})}
	c := NewClient(w, Config{Logger: quiet, MaxCtrlBytes: 4096})
	if err := c.Receive(hexb(t, "58 00 02 00 33 33 11 11 3d 0a a7 04")); err != nil { // caps v2: the answer stalls
		t.Fatal(err)
	}
	<-w.started
	var err error
	n := 0
	for ; n < 100000 && err == nil; n++ {
		err = c.Receive(drdynvc.CreateRequest{ChannelID: uint32(n + 1), ChannelName: "nobody"}.Append(nil))
	}
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "MaxCtrlBytes") {
		t.Fatalf("after %d refused requests: %v, want the connection dropped for MaxCtrlBytes", n, err)
	}
	c.ctrlMu.Lock()
	queued := c.ctrlBytes
	c.ctrlMu.Unlock()
	if queued > 4096 {
		t.Fatalf("%d bytes of control PDUs queued, cap 4096", queued)
	}
	close(w.release)
	c.Shutdown(nil)
}

// Refusals are logged a few times per window, then counted: a peer cannot
// make each 13-byte request a log line.
func TestRefusalLogIsRateLimited(t *testing.T) {
	var logs bytes.Buffer
	r := newRecorder()
	c := NewClient(r, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := c.Receive(hexb(t, "58 00 02 00 33 33 11 11 3d 0a a7 04")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 500; i++ {
		if err := c.Receive(drdynvc.CreateRequest{ChannelID: uint32(i), ChannelName: "nobody"}.Append(nil)); err != nil {
			t.Fatal(err)
		}
		r.next(t) // caps response first, then each refusal
	}
	lines := strings.Count(logs.String(), "no listener; refusing channel")
	if lines == 0 || lines > 20 {
		t.Fatalf("%d log lines for 500 refusals:\n%s", lines, logs.String())
	}
	c.Shutdown(nil)
	if !strings.Contains(logs.String(), "repeats suppressed") {
		t.Fatalf("Shutdown did not report the suppressed count:\n%s", logs.String())
	}
}

// Unread data on many channels is bounded per connection, not only per
// channel: with each inbox under its own limit, the receiving side waits
// once the connection's ConnInboxBytes are unread, and a read on any
// channel lets it go on (issue: 48 channels x 15 MiB unread, 858 MiB).
func TestUnreadDataBoundedPerConnection(t *testing.T) {
	s, a, b := twoChannels(t, Config{Logger: quiet, InboxBytes: 1000, ConnInboxBytes: 1500})
	msg := make([]byte, 900)
	if err := s.Receive(drdynvc.Data{ChannelID: a.ID(), Data: msg}.Append(nil)); err != nil {
		t.Fatal(err)
	}
	// b's inbox is empty and far under its 1000, but the connection has
	// only 600 left.
	done := make(chan error, 1)
	go func() { done <- s.Receive(drdynvc.Data{ChannelID: b.ID(), Data: msg}.Append(nil)) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.pool.Waiters() == 0 {
		select {
		case err := <-done:
			t.Fatalf("Receive took a second 900 bytes past ConnInboxBytes 1500 (err %v)", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Receive neither returned nor waited for the connection's inbox bytes")
		}
		runtime.Gosched()
	}
	if got := s.pool.Used(); got != 900 {
		t.Fatalf("connection holds %d unread bytes, want 900", got)
	}
	if _, err := a.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m, err := b.Read(context.Background()); err != nil || len(m) != 900 {
		t.Fatalf("b: %d bytes, %v", len(m), err)
	}
}

// Messages being reassembled on several channels are bounded together by
// MaxHeldBytes: the DATA_FIRST that would pass it closes its own channel,
// and the connection and the other channel go on.
func TestReassemblyHeldBytesBoundedPerConnection(t *testing.T) {
	// The up-front budget is small, so buffers grow with the data; the
	// hard cap is what is tested.
	s, a, b := twoChannels(t, Config{Logger: quiet, ReassemblyBudget: 1, MaxMessage: 100 << 10, MaxHeldBytes: 150 << 10})
	// more sends DYNVC_DATA from byte from to byte to of a message.
	more := func(id uint32, from, to int) error {
		for sent := from; sent < to; sent += 1000 {
			if err := s.Receive(drdynvc.Data{ChannelID: id, Data: make([]byte, min(1000, to-sent))}.Append(nil)); err != nil {
				return err
			}
		}
		return nil
	}
	feed := func(id uint32, length uint32, n int) error {
		if err := s.Receive(drdynvc.DataFirst{ChannelID: id, Length: length, Data: make([]byte, 1000)}.Append(nil)); err != nil {
			return err
		}
		return more(id, 1000, n)
	}
	if err := feed(a.ID(), 100<<10, 90<<10); err != nil { // a holds ~90-100 KiB, unfinished
		t.Fatal(err)
	}
	if err := feed(b.ID(), 100<<10, 90<<10); err != nil { // b cannot also: closed, not fatal
		t.Fatalf("over the connection's held bytes: %v, want only the channel closed", err)
	}
	if _, err := b.Read(context.Background()); !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("b: %v, want ErrTooLarge", err)
	}
	if got := s.held.used.Load(); got > 150<<10 {
		t.Fatalf("%d bytes held, cap %d", got, 150<<10)
	}
	// a completes.
	if err := more(a.ID(), 90<<10, 100<<10); err != nil {
		t.Fatal(err)
	}
	if m, err := a.Read(context.Background()); err != nil || len(m) != 100<<10 {
		t.Fatalf("a: %d bytes, %v", len(m), err)
	}
	if got := s.held.used.Load(); got != 0 {
		t.Fatalf("%d bytes still held after the message completed and the other channel closed", got)
	}
}

// twoChannels is a scripted server with capabilities done and two
// channels open; the test is the only caller of Receive.
func twoChannels(t *testing.T, cfg Config) (*Server, dvc.Conn, dvc.Conn) {
	t.Helper()
	r := newRecorder()
	s := NewServer(r, cfg)
	t.Cleanup(func() { s.Shutdown(nil) })
	s.Start()
	r.next(t)
	s.Receive(hexb(t, "50 00 02 00"))
	return s, openScripted(t, s, r), openScripted(t, s, r)
}
