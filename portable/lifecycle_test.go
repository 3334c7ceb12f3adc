package portable

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// hangGuard fails the test if ch is not closed in a time no healthy run
// comes near; it decides nothing about speed.
func hangGuard(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s hangs", what)
	}
}

// A cancelled Accept returns ctx.Err() and leaves the listener open: the
// next Accept still gets a connection.
func TestAcceptCancelLeavesListenerOpen(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", quietCfg())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	accepted := make(chan error, 1)
	go func() {
		_, err := ln.Accept(ctx)
		accepted <- err
	}()
	cancel()
	if err := <-accepted; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Accept = %v, want context.Canceled", err)
	}
	// Already cancelled: no wait at all.
	if _, err := ln.Accept(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Accept with a done ctx = %v", err)
	}

	c, err := Dial(context.Background(), ln.Addr().String(), quietCfg())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Listen("echo", echoListener)
	go c.Run(context.Background())
	s, err := ln.Accept(context.Background())
	if err != nil {
		t.Fatalf("Accept after a cancelled one: %v", err)
	}
	defer s.Close()
	go s.Run(context.Background())
	conn, err := s.Open(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, conn, 10)
}

// Constructors start nothing: a Server that never ran sends nothing, and
// Close ends it (Wait returns) without Run.
func TestNothingBeforeRun(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	got := make(chan []byte, 1)
	go func() { all, _ := io.ReadAll(b); got <- all }()
	s := NewServer(a, quietCfg())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if all := <-got; len(all) != 0 {
		t.Fatalf("a Server that was never run sent % x", all)
	}
	if err := s.Wait(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close without Run = %v, want ErrClosed", err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
}

func TestRunTwice(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := NewClient(a, quietCfg())
	done := make(chan struct{})
	go func() { c.Run(context.Background()); close(done) }()
	c.Close()
	hangGuard(t, done, "Run after Close")
	// Whether the first Run started before Close or not, it was called.
	if err := c.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
}

// stuck is a Handler whose Received does not return until released.
type stuck struct {
	in      chan struct{}
	release chan struct{}
}

func (s stuck) Received([]byte) {
	select {
	case s.in <- struct{}{}:
	default:
	}
	<-s.release
}
func (s stuck) Closed(error) {}

// Close is bounded: a Handler stuck in Received does not hold it (nor
// Run, nor Wait) past Config.CloseTimeout.
func TestCloseDoesNotWaitForAStuckHandler(t *testing.T) {
	h := stuck{in: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(h.release) // let it go only after Close has returned
	sc, cc := net.Pipe()
	cfg := quietCfg()
	cfg.CloseTimeout = 10 * time.Millisecond
	c := NewClient(cc, cfg)
	c.Listen("stuck", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return h, nil }))
	go c.Run(context.Background())
	s := NewServer(sc, quietCfg())
	defer s.Close()
	go s.Run(context.Background())
	conn, err := s.Open(context.Background(), "stuck")
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Write(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	<-h.in // the Handler is inside Received now
	closed := make(chan struct{})
	go func() { c.Close(); c.Wait(); close(closed) }()
	hangGuard(t, closed, "Close with a stuck Handler")
}

// recorder is a Handler that blocks in its first Received until release
// is closed, then keeps every message.
type recorder struct {
	release chan struct{}
	got     chan []byte
}

func (r recorder) Received(m []byte) {
	<-r.release
	r.got <- m
}
func (r recorder) Closed(error) {}

// A Write whose context ends while the carrier is blocked on a peer that
// does not read returns ctx.Err() at once, not after Config.WriteTimeout;
// the message it had begun is finished behind it, whole, and the stream
// stays intact: once the peer reads again, every message arrives, in
// order, and the channel still carries the next one.
func TestWriteInterruptedMidMessage(t *testing.T) {
	sc, cc := net.Pipe() // synchronous: a write waits for the peer to read
	ccfg := quietCfg()
	ccfg.Session.InboxBytes = 1 // the second queued message stops the client's reading
	r := recorder{release: make(chan struct{}), got: make(chan []byte, 8)}
	c := NewClient(cc, ccfg)
	c.Listen("rec", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return r, nil }))
	go c.Run(context.Background())
	defer c.Close()
	s := NewServer(sc, quietCfg())
	defer s.Close()
	go s.Run(context.Background())
	conn, err := s.Open(context.Background(), "rec")
	if err != nil {
		t.Fatal(err)
	}
	msgs := [][]byte{
		bytes.Repeat([]byte{1}, 10),
		bytes.Repeat([]byte{2}, 10),
		bytes.Repeat([]byte{3}, 10),
		bytes.Repeat([]byte{4}, 300<<10), // more than the link buffers
	}
	// The first three fill the handler, its inbox and the client's read
	// loop (blocked putting the third); from then on the pipe does not
	// move, so the fourth must give up.
	for _, m := range msgs[:3] {
		if err := conn.Write(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err = conn.Write(short, msgs[3])
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write to a stalled peer = %v, want DeadlineExceeded", err)
	}
	// The next message on the channel waits for the finished one.
	last := []byte("after")
	wrote := make(chan error, 1)
	go func() { wrote <- conn.Write(context.Background(), last) }()
	close(r.release)
	for i, want := range append(msgs, last) {
		select {
		case got := <-r.got:
			if !bytes.Equal(got, want) {
				t.Fatalf("message %d: %d bytes, want %d bytes of %d", i, len(got), len(want), want[0])
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("message %d never arrived", i)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatalf("Write after the interrupted one: %v", err)
	}
}
