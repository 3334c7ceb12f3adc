package session

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/hresult"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// recorder is a Carrier that keeps what was sent, for scripted tests.
type recorder struct {
	mu    sync.Mutex
	pdus  [][]byte
	added chan struct{}
}

func newRecorder() *recorder { return &recorder{added: make(chan struct{}, 1024)} }

func (r *recorder) WritePDU(p []byte) error {
	r.mu.Lock()
	r.pdus = append(r.pdus, append([]byte(nil), p...))
	r.mu.Unlock()
	r.added <- struct{}{}
	return nil
}
func (r *recorder) Flush() error { return nil }

// next waits for the next sent PDU.
func (r *recorder) next(t *testing.T) []byte {
	t.Helper()
	select {
	case <-r.added:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing was sent")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pdus[0]
	r.pdus = r.pdus[1:]
	return p
}

func hexb(t *testing.T, s string) []byte { return mustHex(t, s) }

// memPair joins a Server and a Client with goroutines moving PDUs, as a
// transport would.
type pipeCarrier struct {
	ch chan []byte
}

func (p *pipeCarrier) WritePDU(b []byte) error { p.ch <- append([]byte(nil), b...); return nil }
func (p *pipeCarrier) Flush() error            { return nil }

func memPair(t *testing.T, scfg, ccfg Config) (*Server, *Client) {
	t.Helper()
	s2c := &pipeCarrier{ch: make(chan []byte, 4096)}
	c2s := &pipeCarrier{ch: make(chan []byte, 4096)}
	scfg.Logger, ccfg.Logger = quiet, quiet
	s := NewServer(s2c, scfg)
	c := NewClient(c2s, ccfg)
	var wg sync.WaitGroup
	pump := func(from chan []byte, to interface{ Receive([]byte) error }, done <-chan struct{}) {
		defer wg.Done()
		for {
			select {
			case p := <-from:
				if to.Receive(p) != nil {
					return
				}
			case <-done:
				return
			}
		}
	}
	wg.Add(2)
	go pump(s2c.ch, c, c.Done())
	go pump(c2s.ch, s, s.Done())
	t.Cleanup(func() {
		s.Shutdown(nil)
		c.Shutdown(nil)
		wg.Wait()
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s, c
}

type echo struct {
	ch     dvc.Channel
	closed chan error
}

func (e *echo) Received(m []byte) { e.ch.Write(context.Background(), m) }
func (e *echo) Closed(err error)  { e.closed <- err }

func echoListener(handlers chan *echo) dvc.Listener {
	return dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		e := &echo{ch: ch, closed: make(chan error, 1)}
		if handlers != nil {
			handlers <- e
		}
		return e, nil
	})
}

func TestEchoAllSizes(t *testing.T) {
	s, c := memPair(t, Config{}, Config{})
	c.Listen("echo", echoListener(nil))
	ctx := context.Background()
	conn, err := s.Open(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	// Sizes around every boundary of 2.2.3.1/2.2.3.2: single DATA up to
	// 1590, DATA_FIRST holding everything, DATA_FIRST + DATA.
	for _, n := range []int{0, 1, 1589, 1590, 1591, 1594, 1595, 1596, 1597, 1600, 3190, 5140, 65536, 1 << 20} {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i*7 + n)
		}
		if err := conn.Write(ctx, msg); err != nil {
			t.Fatal(err)
		}
		got, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("size %d: echo differs", n)
		}
	}
	if s.Version() != 2 || c.Version() != 2 {
		t.Fatalf("versions %d/%d, want 2", s.Version(), c.Version())
	}
}

func TestManyInstancesSameName(t *testing.T) {
	s, c := memPair(t, Config{}, Config{})
	hs := make(chan *echo, 2000)
	c.Listen("FileRedirectorChannel", echoListener(hs))
	ctx := context.Background()
	var conns []dvc.Conn
	ids := map[uint32]bool{}
	for i := 0; i < 1000; i++ {
		conn, err := s.Open(ctx, "FileRedirectorChannel")
		if err != nil {
			t.Fatal(err)
		}
		if ids[conn.ID()] {
			t.Fatalf("ChannelId %d handed out twice", conn.ID())
		}
		ids[conn.ID()] = true
		conns = append(conns, conn)
	}
	for i, conn := range conns {
		if err := conn.Write(ctx, []byte{byte(i), byte(i >> 8)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, conn := range conns {
		got, err := conn.Read(ctx)
		if err != nil || got[0] != byte(i) || got[1] != byte(i>>8) {
			t.Fatalf("instance %d got %v %v", i, got, err)
		}
	}
	for _, conn := range conns {
		conn.Close()
	}
	for i := 0; i < 1000; i++ {
		if err := <-(<-hs).closed; err != nil {
			t.Fatalf("handler closed with %v, want nil", err)
		}
	}
}

func TestRefusals(t *testing.T) {
	s, c := memPair(t, Config{}, Config{})
	c.Listen("deny", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) {
		return nil, hresult.New("policy", hresult.E_ACCESSDENIED)
	}))
	ctx := context.Background()
	var oe *dvc.OpenError
	if _, err := s.Open(ctx, "nobody"); !errors.As(err, &oe) || oe.Status != hresult.StatusUnsuccessful {
		t.Fatalf("no listener: %v", err)
	}
	if _, err := s.Open(ctx, "deny"); !errors.As(err, &oe) || oe.Status != hresult.E_ACCESSDENIED {
		t.Fatalf("refused: %v", err)
	}
}

func TestCloseBothWays(t *testing.T) {
	s, c := memPair(t, Config{}, Config{})
	hs := make(chan *echo, 2)
	c.Listen("x", echoListener(hs))
	ctx := context.Background()

	// Server closes: handler sees Closed(nil), reads say ErrClosed.
	a, err := s.Open(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	ha := <-hs
	a.Close()
	if err := <-ha.closed; err != nil {
		t.Fatalf("Closed(%v), want nil", err)
	}
	if _, err := a.Read(ctx); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := a.Write(ctx, []byte("x")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}

	// Client closes after a last message: the server reads it, then EOF.
	b, err := s.Open(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	hb := <-hs
	hb.ch.Write(ctx, []byte("last"))
	hb.ch.Close()
	if m, err := b.Read(ctx); err != nil || string(m) != "last" {
		t.Fatalf("%q %v", m, err)
	}
	if _, err := b.Read(ctx); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
	if err := <-hb.closed; err != nil {
		t.Fatalf("Closed(%v) after own close, want nil", err)
	}
}

func TestShutdownFailsEverything(t *testing.T) {
	s, c := memPair(t, Config{}, Config{})
	hs := make(chan *echo, 1)
	c.Listen("x", echoListener(hs))
	ctx := context.Background()
	a, err := s.Open(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	h := <-hs
	s.Shutdown(errors.New("cable cut"))
	if _, err := a.Read(ctx); !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("read: %v", err)
	}
	if _, err := s.Open(ctx, "x"); !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("open after shutdown: %v", err)
	}
	c.Shutdown(errors.New("cable cut"))
	if err := <-h.closed; !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("handler: %v", err)
	}
}

func TestOversizedMessageClosesOnlyThatChannel(t *testing.T) {
	s, c := memPair(t, Config{MaxMessage: 4096}, Config{})
	hs := make(chan *echo, 2)
	c.Listen("x", echoListener(hs))
	ctx := context.Background()
	big, _ := s.Open(ctx, "x")
	hbig := <-hs
	small, _ := s.Open(ctx, "x")
	<-hs
	// The client sends a message over the server's ceiling.
	hbig.ch.Write(ctx, make([]byte, 5000))
	if _, err := big.Read(ctx); !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("big channel: %v, want ErrTooLarge", err)
	}
	if err := <-hbig.closed; err != nil {
		t.Fatalf("client side of the big channel closed with %v", err)
	}
	small.Write(ctx, []byte("still here"))
	if m, err := small.Read(ctx); err != nil || string(m) != "still here" {
		t.Fatalf("other channel harmed: %q %v", m, err)
	}
}

func TestCapsTimeout(t *testing.T) {
	r := newRecorder()
	s := NewServer(r, Config{CapsTimeout: time.Millisecond, Logger: quiet})
	defer s.Shutdown(nil)
	_, err := s.Open(context.Background(), "x")
	if !errors.Is(err, errCapsTimeout) {
		t.Fatalf("err = %v", err)
	}
}

// Scripted exchanges: exact bytes in, exact bytes out.

func TestClientScript(t *testing.T) {
	r := newRecorder()
	c := NewClient(r, Config{Logger: quiet})
	defer c.Shutdown(nil)
	hs := make(chan *echo, 1)
	c.Listen("testdvc", echoListener(hs))
	// MS-RDPEDYC 4.1.1 capabilities request (v2) → caps response v2 (4.1.2).
	if err := c.Receive(hexb(t, "58 00 02 00 33 33 11 11 3d 0a a7 04")); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); !bytes.Equal(got, hexb(t, "50 00 02 00")) {
		t.Fatalf("caps response % x", got)
	}
	// 4.2.1 create request → 4.2.2 create response.
	if err := c.Receive(hexb(t, "10 03 74 65 73 74 64 76 63 00")); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); !bytes.Equal(got, hexb(t, "10 03 00 00 00 00")) {
		t.Fatalf("create response % x", got)
	}
	<-hs
	// Data is echoed on the same channel.
	c.Receive(hexb(t, "30 03 01 02 03"))
	if got := r.next(t); !bytes.Equal(got, hexb(t, "30 03 01 02 03")) {
		t.Fatalf("echo % x", got)
	}
	// No listener: STATUS_UNSUCCESSFUL, little-endian.
	c.Receive(hexb(t, "10 04 6e 6f 00"))
	if got := r.next(t); !bytes.Equal(got, hexb(t, "10 04 01 00 00 c0")) {
		t.Fatalf("refusal % x", got)
	}
	// Close from the server is answered. (That a close for an unknown id
	// is not is TestMachineClientScript's: the machine's output says so
	// directly.)
	c.Receive(hexb(t, "40 03"))
	if got := r.next(t); !bytes.Equal(got, hexb(t, "40 03")) {
		t.Fatalf("close reply % x", got)
	}
}

func TestClientCapsReplyNeverOffersCompression(t *testing.T) {
	r := newRecorder()
	c := NewClient(r, Config{Logger: quiet})
	defer c.Shutdown(nil)
	if err := c.Receive(hexb(t, "50 00 03 00 00 00 00 00 00 00 00 00")); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); !bytes.Equal(got, hexb(t, "50 00 02 00")) {
		t.Fatalf("caps response % x, want version 2", got)
	}
}

// A terminating error from the machine (each case is in
// TestMachine*BadInputTerminates) fails the manager: Receive returns it,
// Done is closed, open channels see dvc.ErrConnectionLost.
func TestBadInputFailsTheManager(t *testing.T) {
	r := newRecorder()
	c := NewClient(r, Config{Logger: quiet})
	defer c.Shutdown(nil)
	hs := make(chan *echo, 1)
	c.Listen("x", echoListener(hs))
	if err := c.Receive(hexb(t, "50 00 02 00 00 00 00 00 00 00 00 00")); err != nil {
		t.Fatal(err)
	}
	r.next(t) // caps response
	if err := c.Receive(hexb(t, "10 03 78 00")); err != nil {
		t.Fatal(err)
	}
	r.next(t) // create response
	h := <-hs
	err := c.Receive(hexb(t, "f0 00"))
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "unknown Cmd") {
		t.Fatalf("err = %v, want a *ProtocolError naming the Cmd", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("manager still running after a terminating error")
	}
	if err := <-h.closed; !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("handler closed with %v", err)
	}

	s := NewServer(newRecorder(), Config{Logger: quiet})
	defer s.Shutdown(nil)
	if err := s.Receive(hexb(t, "30 03 00")); !errors.As(err, &pe) {
		t.Fatalf("server: err = %v, want a *ProtocolError", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("server manager still running after a terminating error")
	}
	if _, err := s.Open(context.Background(), "x"); !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("open after the error: %v", err)
	}
}

func TestServerSpeaksFirstWithVersion2(t *testing.T) {
	r := newRecorder()
	s := NewServer(r, Config{Logger: quiet})
	defer s.Shutdown(nil)
	s.Start()
	want := drdynvc.CapsRequest{Version: 2, PriorityCharges: DefaultPriorityCharges}.Append(nil)
	if got := r.next(t); !bytes.Equal(got, want) {
		t.Fatalf("first PDU % x, want % x", got, want)
	}
}

// The up-front reassembly budget is returned when a message completes and
// when a channel dies mid-message, and messages over it still arrive.
func TestReassemblyBudget(t *testing.T) {
	s, c := memPair(t, Config{ReassemblyBudget: 10000}, Config{})
	hs := make(chan *echo, 2)
	c.Listen("x", echoListener(hs))
	ctx := context.Background()
	conn, err := s.Open(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	<-hs
	for _, n := range []int{8000, 8000, 20000} { // the last is over the budget
		msg := bytes.Repeat([]byte{7}, n)
		conn.Write(ctx, msg)
		if got, err := conn.Read(ctx); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if r := s.reserved.used.Load(); r != 0 {
			t.Fatalf("after a %d-byte message %d bytes stay reserved", n, r)
		}
	}
}

// A DATA_FIRST whose message never completes holds its reservation until
// the channel closes. Scripted: this test is the only caller of Receive.
func TestReassemblyBudgetReleasedOnClose(t *testing.T) {
	r := newRecorder()
	s := NewServer(r, Config{Logger: quiet, ReassemblyBudget: 10000})
	defer s.Shutdown(nil)
	s.Start()
	r.next(t) // caps request
	s.Receive(hexb(t, "50 00 02 00"))
	conn := openScripted(t, s, r)
	s.Receive(drdynvc.DataFirst{ChannelID: conn.ID(), Length: 9000, Data: []byte{1}}.Append(nil))
	if got := s.reserved.used.Load(); got != 9000 {
		t.Fatalf("reserved %d, want 9000", got)
	}
	conn.Close()
	if got := s.reserved.used.Load(); got != 0 {
		t.Fatalf("closing mid-message left %d bytes reserved", got)
	}
}

// openScripted opens a channel on a scripted server, answering its
// DYNVC_CREATE_REQ with success.
func openScripted(t *testing.T, s *Server, r *recorder) dvc.Conn {
	t.Helper()
	type res struct {
		c   dvc.Conn
		err error
	}
	done := make(chan res, 1)
	go func() {
		c, err := s.Open(context.Background(), "x")
		done <- res{c, err}
	}()
	req, err := drdynvc.ParseCreateRequest(r.next(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Receive(drdynvc.CreateResponse{ChannelID: req.ChannelID}.Append(nil))
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	return got.c
}

// Closing a channel inside Accept still answers the create request, with
// a refusal: the server's Open must not hang (MS-RDPEDYC 3.2.3.2.1).
func TestCloseDuringAcceptRefuses(t *testing.T) {
	s, c := memPair(t, Config{}, Config{})
	c.Listen("x", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		ch.Close()
		return &echo{ch: ch, closed: make(chan error, 1)}, nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var oe *dvc.OpenError
	if _, err := s.Open(ctx, "x"); !errors.As(err, &oe) || oe.Status != hresult.StatusUnsuccessful {
		t.Fatalf("Open = %v, want a refusal", err)
	}
}

// A listener that returns (nil, nil) refuses rather than crashing.
func TestNilHandlerRefuses(t *testing.T) {
	s, c := memPair(t, Config{}, Config{})
	c.Listen("x", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, nil }))
	var oe *dvc.OpenError
	if _, err := s.Open(context.Background(), "x"); !errors.As(err, &oe) {
		t.Fatalf("Open = %v, want a refusal", err)
	}
}

// After the peer closed a channel, writes on it fail on both ends instead
// of sending data for a freed ChannelId.
func TestWriteAfterPeerCloseFails(t *testing.T) {
	s, c := memPair(t, Config{}, Config{})
	hs := make(chan *echo, 2)
	c.Listen("x", echoListener(hs))
	ctx := context.Background()

	a, _ := s.Open(ctx, "x")
	ha := <-hs
	ha.ch.Close()
	if _, err := a.Read(ctx); err != io.EOF {
		t.Fatalf("read: %v", err)
	}
	if err := a.Write(ctx, []byte("late")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("server write after client close: %v, want ErrClosed", err)
	}

	b, _ := s.Open(ctx, "x")
	hb := <-hs
	b.Close()
	<-hb.closed
	if err := hb.ch.Write(ctx, []byte("late")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("client write after server close: %v, want ErrClosed", err)
	}
}

// stalled is a carrier whose writes block until released, like a peer
// that stopped reading.
type stalled struct {
	release chan struct{}
	started chan struct{}
	once    sync.Once
}

func (w *stalled) WritePDU([]byte) error {
	w.once.Do(func() { close(w.started) })
	<-w.release
	return errors.New("carrier gone")
}
func (w *stalled) Flush() error { return nil }

// A Write waiting for a carrier that another Write has stalled gives up
// when its context ends, and Close does not wait at all.
func TestWriteHonoursContextBehindStalledCarrier(t *testing.T) {
	r := newRecorder()
	s := NewServer(r, Config{Logger: quiet})
	s.Start()
	r.next(t)
	s.Receive(hexb(t, "50 00 02 00"))
	first := openScripted(t, s, r)
	second := openScripted(t, s, r)
	// Swap in a stalled carrier now that both channels are open.
	w := &stalled{release: make(chan struct{}), started: make(chan struct{})}
	s.carrier, s.parts = w, nil
	go first.Write(context.Background(), []byte("stuck"))
	<-w.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := second.Write(ctx, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write behind a stalled carrier: %v, want DeadlineExceeded", err)
	}
	if err := first.Close(); err != nil { // must return, not wait for the carrier
		t.Fatal(err)
	}
	close(w.release)
	s.Shutdown(nil)
}

// An Open cancelled just as the client's success arrives never leaves an
// open channel without an owner: either Open returns it, or it is closed.
func TestCancelledOpenLeavesNoOrphan(t *testing.T) {
	for i := 0; i < 200; i++ {
		r := newRecorder()
		s := NewServer(r, Config{Logger: quiet})
		s.Start()
		r.next(t)
		s.Receive(hexb(t, "50 00 02 00"))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			c, err := s.Open(ctx, "x")
			if err == nil {
				c.Close()
			}
			done <- err
		}()
		req, _ := drdynvc.ParseCreateRequest(r.next(t))
		go cancel()
		s.Receive(drdynvc.CreateResponse{ChannelID: req.ChannelID}.Append(nil))
		<-done
		// Whatever won, the channel is closed (or closing): a DYNVC_CLOSE
		// went out and nothing is left open.
		s.mu.Lock()
		for _, ch := range s.channels {
			if ch.state == stateOpen {
				s.mu.Unlock()
				t.Fatalf("round %d: channel %d left open with no owner", i, ch.id)
			}
		}
		s.mu.Unlock()
		s.Shutdown(nil)
	}
}

// Beyond the up-front budget, announcing a large message costs only a
// small buffer, not the announced length.
func TestAnnouncingIsCheapBeyondBudget(t *testing.T) {
	r := newRecorder()
	s := NewServer(r, Config{Logger: quiet, ReassemblyBudget: 1})
	defer s.Shutdown(nil)
	s.Start()
	r.next(t)
	s.Receive(hexb(t, "50 00 02 00"))
	conn := openScripted(t, s, r)
	s.Receive(drdynvc.DataFirst{ChannelID: conn.ID(), Length: 60 << 20, Data: []byte{1, 2, 3}}.Append(nil))
	s.mu.Lock()
	ch := s.channels[conn.ID()]
	s.mu.Unlock()
	if c := cap(ch.rx.buf); c > firstAlloc {
		t.Fatalf("an 8-byte DATA_FIRST announcing 60 MiB allocated %d bytes", c)
	}
}

// A name no DYNVC_CREATE_REQ can carry fails Open with an error naming the
// field, and nothing goes out: the client would otherwise end the whole
// connection on the malformed PDU (MS-RDPEDYC 2.2.2.1, 3.1.5.2.4).
func TestOpenRefusesBadNames(t *testing.T) {
	r := newRecorder()
	s := NewServer(r, Config{Logger: quiet})
	defer s.Shutdown(nil)
	s.Start()
	r.next(t) // caps request
	if err := s.Receive(hexb(t, "50 00 02 00")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", string(bytes.Repeat([]byte{'a'}, 300)), "a\x00b"} {
		_, err := s.Open(context.Background(), name)
		var pe *drdynvc.ParseError
		if !errors.As(err, &pe) || pe.Field != "ChannelName" || !strings.HasPrefix(err.Error(), "session: open ") {
			t.Fatalf("Open(%.20q) = %v, want a session: error wrapping a ChannelName *drdynvc.ParseError", name, err)
		}
	}
	// Open writes its DYNVC_CREATE_REQ itself before it returns, so an
	// empty recorder now is a direct observation (and
	// TestMachineOpenRefusesBadNames asserts it on the machine's output).
	r.mu.Lock()
	sent := len(r.pdus)
	r.mu.Unlock()
	if sent != 0 {
		t.Fatalf("%d PDUs sent for refused names", sent)
	}
	// The longest legal name still opens.
	go s.Open(context.Background(), string(bytes.Repeat([]byte{'a'}, drdynvc.MaxChannelNameLen)))
	req, err := drdynvc.ParseCreateRequest(r.next(t))
	if err != nil || len(req.ChannelName) != drdynvc.MaxChannelNameLen {
		t.Fatalf("create request for a 256-byte name: %v", err)
	}
}

// Listen applies the rule Open does, so a listener can always be reached.
func TestListenRefusesBadNames(t *testing.T) {
	c := NewClient(newRecorder(), Config{Logger: quiet})
	defer c.Shutdown(nil)
	for _, name := range []string{"", string(bytes.Repeat([]byte{'a'}, 257)), "a\x00b"} {
		err := c.Listen(name, echoListener(nil))
		var pe *drdynvc.ParseError
		if !errors.As(err, &pe) || pe.Field != "ChannelName" || !strings.HasPrefix(err.Error(), "session: listen ") {
			t.Fatalf("Listen(%.20q) = %v, want a session: error wrapping a ChannelName *drdynvc.ParseError", name, err)
		}
	}
	if err := c.Listen(string(bytes.Repeat([]byte{'a'}, 256)), echoListener(nil)); err != nil {
		t.Fatal(err)
	}
	if err := c.Listen("x", echoListener(nil)); err != nil {
		t.Fatal(err)
	}
	if err := c.Listen("x", echoListener(nil)); err == nil || !strings.HasPrefix(err.Error(), "session: ") {
		t.Fatalf("second Listen(x) = %v", err)
	}
}

// A quick handler is promoted to inline delivery (its goroutine exits once
// its inbox is empty), and the contract still holds after: messages in
// order, Closed once after the last Received.
func TestQuickHandlerDeliveredInline(t *testing.T) {
	s, c := memPair(t, Config{}, Config{})
	hs := make(chan *echo, 1)
	c.Listen("x", echoListener(hs))
	ctx := context.Background()
	conn, err := s.Open(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	h := <-hs
	c.mu.Lock()
	ch := c.channels[conn.ID()]
	c.mu.Unlock()
	// Promotion takes kit.PromoteAfter quick calls in a row, and "quick"
	// is a wall-clock budget (kit.InlineBudget) that a loaded machine can
	// blow for any one call: echo until the handler is promoted, with a
	// ceiling far above PromoteAfter that only a handler never promoted
	// reaches. After each echo the worker may still be finishing its
	// call, so a few rounds pass before Inline reports it.
	promoted := false
	for i := 0; i < 100*kit.PromoteAfter && !promoted; i++ {
		if err := conn.Write(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if m, err := conn.Read(ctx); err != nil || m[0] != byte(i) {
			t.Fatalf("echo %d: % x %v", i, m, err)
		}
		promoted = ch.up.d.s.Inline()
	}
	if !promoted {
		t.Fatalf("still delivering through a goroutine after %d quick-enough echoes", 100*kit.PromoteAfter)
	}
	for i := range 100 {
		if err := conn.Write(ctx, []byte{byte(i), 1}); err != nil {
			t.Fatal(err)
		}
		if m, err := conn.Read(ctx); err != nil || m[0] != byte(i) {
			t.Fatalf("inline echo %d: % x %v", i, m, err)
		}
	}
	conn.Close()
	if err := <-h.closed; err != nil {
		t.Fatalf("Closed(%v), want nil", err)
	}
}
