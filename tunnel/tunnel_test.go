package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

var backends = map[string]func(testing.TB, *Server, *Client) *pair{"portable": newPortable, "loopback": newLoopback}

func TestEcho(t *testing.T) {
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			p := mk(t, &Server{}, &Client{})
			host, port := echoServer(t)
			c, err := p.srv.Dial(ctxT(t), host, port)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			want := bytes.Repeat([]byte("0123456789abcdef"), 100000) // 1.6 MB: several windows each way
			go func() {
				c.Write(want)
				c.(*Stream).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

// TestHTTPGet fetches a file from an HTTP server on the client's side
// through the tunnel, byte for byte.
func TestHTTPGet(t *testing.T) {
	body := make([]byte, 3<<20+17)
	rand.Read(body)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer hs.Close()
	p := newPortable(t, &Server{}, &Client{})
	tr := &http.Transport{DialContext: p.srv.DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(hs.URL + "/file")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("got %d bytes, want %d (or they differ)", len(got), len(body))
	}
}

// answerAfterEOF is a target that reads until EOF and only then answers
// with the count: it answers only if the half-close was carried.
func answerAfterEOF(t testing.TB) (string, uint16) {
	return serveTCP(t, func(c net.Conn) {
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "read %d bytes", n)
	})
}

func TestHalfClose(t *testing.T) {
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			p := mk(t, &Server{}, &Client{})
			host, port := answerAfterEOF(t)
			c, err := p.srv.DialStream(ctxT(t), host, port)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(make([]byte, 700000)); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "read 700000 bytes" {
				t.Fatalf("answer %q", got)
			}
			if _, err := c.Write([]byte("x")); err == nil {
				t.Fatal("Write after CloseWrite succeeded")
			}
		})
	}
}

// freePort is a port on 127.0.0.1 nothing listens on (it did a moment ago).
func freePort(t testing.TB) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	return port
}

func TestConnectRefused(t *testing.T) {
	p := newPortable(t, &Server{}, &Client{})
	ctx := ctxT(t)
	_, err := p.srv.Dial(ctx, "127.0.0.1", freePort(t))
	var de *DialError
	if !errors.As(err, &de) || de.ReplyCode() != wire.ReplyConnectionRefused {
		t.Fatalf("Dial to a closed port: %v, want a DialError with code 5", err)
	}
	// The tunnel goes on: a stream works after it.
	host, port := echoServer(t)
	roundTrip(t, p.srv, host, port, 100000)
	if n := p.cli.Streams(); n != 1 && n != 0 {
		t.Fatalf("client counts %d streams", n)
	}
}

// roundTrip sends n bytes through a new stream to an echo target and
// checks they come back.
func roundTrip(t testing.TB, s *Server, host string, port uint16, n int) {
	t.Helper()
	c, err := s.DialStream(ctxT(t), host, port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := make([]byte, n)
	rand.Read(want)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if werr := <-errc; werr != nil {
		t.Fatal(werr)
	}
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("round trip: %d bytes back of %d, err %v", len(got), n, err)
	}
}

// TestWindowOverrun has a server that ignores the client's window: the
// client closes that stream (CLOSE with reason 1), and another stream on
// the same tunnel goes on.
func TestWindowOverrun(t *testing.T) {
	const window = 4096
	stuck := make(chan net.Conn, 1)
	cli := &Client{Window: window, Dial: func(ctx context.Context, host string, port uint16) (net.Conn, error) {
		if port == 1 {
			a, b := net.Pipe() // nobody reads b: the client holds what it receives
			stuck <- b
			return a, nil
		}
		return plainDial(ctx, host, port)
	}}
	p := newPortable(t, &Server{}, cli)
	ctx := ctxT(t)
	conn, err := p.srv.Opener.Open(ctx, wire.ChannelName, dvc.WithFramer(wire.Framer))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer func() { (<-stuck).Close() }()
	msg, _ := wire.Open{Window: 1 << 20, Target: wire.Addr{Host: "127.0.0.1", Port: 1}}.Append(nil)
	if err := conn.Write(ctx, msg); err != nil {
		t.Fatal(err)
	}
	rep := readMsg(t, ctx, conn)
	if r, ok := rep.(wire.Reply); !ok || r.Code != 0 || r.Window != window {
		t.Fatalf("reply %#v", rep)
	}
	for _, n := range []int{window, 1} {
		msg, _ = wire.Data{Payload: make([]byte, n)}.Append(nil)
		if err := conn.Write(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	if m := readMsg(t, ctx, conn); m != (wire.Close{Reason: wire.CloseProtocol}) {
		t.Fatalf("after the overrun: %#v, want CLOSE with reason 1", m)
	}
	if _, err := conn.Read(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after CLOSE: %v, want the channel closed (io.EOF)", err)
	}
	host, port := echoServer(t)
	roundTrip(t, p.srv, host, port, 50000)
}

func readMsg(t testing.TB, ctx context.Context, conn dvc.Conn) wire.Message {
	t.Helper()
	b, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// flooder is a target that writes to every connection until it fails.
func flooder(t testing.TB) (string, uint16) {
	return serveTCP(t, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 32<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
}

// waitFor polls cond until it holds (the test's deadline bounds it): for
// a state to be reached, never to decide that something did not happen.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *Stream) bufferedForTest() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rbytes
}

func (s *Stream) creditForTest() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.credit
}

// TestStoppedReader: one stream's reader stops with its window full; a
// second stream on the same connection completes a transfer of many
// windows meanwhile, and the first is still full afterwards.
func TestStoppedReader(t *testing.T) {
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			const window = 64 << 10
			p := mk(t, &Server{Window: window}, &Client{Window: window})
			fh, fp := flooder(t)
			a, err := p.srv.DialStream(ctxT(t), fh, fp)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			waitFor(t, "stream A's window to fill", func() bool { return a.bufferedForTest() == window })
			host, port := echoServer(t)
			roundTrip(t, p.srv, host, port, 8<<20) // 128 windows
			if n := a.bufferedForTest(); n != window {
				t.Fatalf("stream A holds %d bytes, want its window %d: its reader never read", n, window)
			}
			// The stopped writer's side too: A's target floods and
			// nothing reads; B's writes are unaffected (above), and A's
			// reader, once it reads, gets its bytes.
			buf := make([]byte, 1000)
			if _, err := io.ReadFull(a, buf); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStoppedWriterTarget: a target that reads nothing stalls the
// server's writes to its stream (credit 0) but not another stream's.
func TestStoppedWriterTarget(t *testing.T) {
	const window = 64 << 10
	stuck := make(chan net.Conn, 1)
	cli := &Client{Window: window, Dial: func(ctx context.Context, host string, port uint16) (net.Conn, error) {
		if port == 1 {
			a, b := net.Pipe()
			stuck <- b
			return a, nil
		}
		return plainDial(ctx, host, port)
	}}
	p := newPortable(t, &Server{Window: window}, cli)
	a, err := p.srv.DialStream(ctxT(t), "127.0.0.1", 1)
	if err != nil {
		t.Fatal(err)
	}
	b := <-stuck
	defer b.Close()
	wrote := make(chan error, 1)
	go func() {
		_, err := a.Write(make([]byte, 4*window))
		wrote <- err
	}()
	waitFor(t, "stream A's credit to run out", func() bool { return a.creditForTest() == 0 })
	host, port := echoServer(t)
	roundTrip(t, p.srv, host, port, 4<<20)
	select {
	case err := <-wrote:
		t.Fatalf("A's write returned (%v) though its target reads nothing", err)
	default:
	}
	a.Close()
	if err := <-wrote; err == nil {
		t.Fatal("A's write succeeded after Close")
	}
}

func TestMaxStreams(t *testing.T) {
	p := newPortable(t, &Server{}, &Client{MaxStreams: 2})
	host, port := echoServer(t)
	ctx := ctxT(t)
	var open []net.Conn
	for range 2 {
		c, err := p.srv.Dial(ctx, host, port)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	_, err := p.srv.Dial(ctx, host, port)
	var de *DialError
	if !errors.As(err, &de) || de.Code != wire.ReplyGeneralFailure {
		t.Fatalf("third stream: %v, want a DialError with code 1", err)
	}
	open[0].Close()
	waitFor(t, "the client to count the closed stream", func() bool { return p.cli.Streams() == 1 })
	roundTrip(t, p.srv, host, port, 1000)
	open[1].Close()

	// The server's own ceiling fails Dial locally.
	s := &Server{MaxStreams: 1}
	p2 := newPortable(t, s, &Client{})
	c, err := p2.srv.Dial(ctx, host, port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := p2.srv.Dial(ctx, host, port); !errors.As(err, &de) || de.Code != wire.ReplyGeneralFailure {
		t.Fatalf("over the server's MaxStreams: %v", err)
	}
}

// TestThousandStreams holds 1,000 streams open at once on one connection,
// each with a round trip, then closes them.
func TestThousandStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 streams")
	}
	const n = 1000
	p := newPortable(t, &Server{}, &Client{})
	host, port := echoServer(t)
	ctx := ctxT(t)
	conns := make([]*Stream, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.srv.DialStream(ctx, host, port)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			msg := []byte("stream " + strconv.Itoa(i))
			if _, err := c.Write(msg); err != nil {
				errs <- err
				return
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("stream %d: %q, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := p.srv.Streams(); got != n {
		t.Fatalf("server counts %d streams, want %d", got, n)
	}
	if got := p.cli.Streams(); got != n {
		t.Fatalf("client counts %d streams, want %d", got, n)
	}
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "every stream to end", func() bool { return p.srv.Streams() == 0 && p.cli.Streams() == 0 })
}

func TestDialDeniedCode(t *testing.T) {
	refuse := &Client{
		Dial: func(ctx context.Context, host string, port uint16) (net.Conn, error) {
			return nil, codeErr(wire.ReplyNotAllowed)
		},
	}
	p := newPortable(t, &Server{}, refuse)
	_, err := p.srv.Dial(ctxT(t), "example.com", 80)
	var de *DialError
	if !errors.As(err, &de) || de.Code != wire.ReplyNotAllowed {
		t.Fatalf("got %v, want code 2", err)
	}
}

type codeErr byte

func (c codeErr) Error() string   { return "refused by a rule" }
func (c codeErr) ReplyCode() byte { return byte(c) }

// TestBadPeer: a server that breaks the rules on one stream (credit it was
// never owed, a message that does not parse, a second OPEN) gets that
// stream closed with CLOSE reason 1, and the tunnel goes on.
func TestBadPeer(t *testing.T) {
	host, port := echoServer(t)
	p := newPortable(t, &Server{}, &Client{})
	ctx := ctxT(t)
	credit, _ := wire.Credit{Increment: 1}.Append(nil)
	open, _ := wire.Open{Window: 1000, Target: wire.Addr{Host: host, Port: port}}.Append(nil)
	for name, bad := range map[string][]byte{
		"credit beyond the window": credit,
		"garbage":                  {1, 0, 0, 0, 0x7f},
		"a second OPEN":            open,
	} {
		conn, err := p.srv.Opener.Open(ctx, wire.ChannelName, dvc.WithFramer(wire.Framer))
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Write(ctx, open); err != nil {
			t.Fatal(err)
		}
		if r, ok := readMsg(t, ctx, conn).(wire.Reply); !ok || r.Code != 0 {
			t.Fatalf("%s: reply %#v", name, r)
		}
		if err := conn.Write(ctx, bad); err != nil {
			t.Fatal(err)
		}
		if m := readMsg(t, ctx, conn); m != (wire.Close{Reason: wire.CloseProtocol}) {
			t.Fatalf("%s: %#v, want CLOSE with reason 1", name, m)
		}
		conn.Close()
	}
	roundTrip(t, p.srv, host, port, 10000)
}

func TestDeadlines(t *testing.T) {
	host, port := echoServer(t)
	p := newPortable(t, &Server{}, &Client{})
	c, err := p.srv.Dial(ctxT(t), host, port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	c.Write([]byte("x"))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'x' {
		t.Fatalf("after the deadline was cleared: %q, %v", b, err)
	}
}

// TestCloseWithReverse: Server.Close ends reverse forwards too.
func TestCloseWithReverse(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(int(freePort(t)))
	s := &Server{}
	p := newPortable(t, s, &Client{Listen: allowOnly(addr)})
	r, err := p.srv.Reverse(ctxT(t), addr, func(ctx context.Context) (net.Conn, error) { return nil, errors.New("unused") })
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	<-r.Done()
}

// TestCloseWakesEveryReader: two Reads wait; Close returns both.
func TestCloseWakesEveryReader(t *testing.T) {
	host, port := echoServer(t)
	p := newPortable(t, &Server{}, &Client{})
	c, err := p.srv.Dial(ctxT(t), host, port)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Read(make([]byte, 10))
			errs <- err
		}()
	}
	c.Close()
	for range 2 {
		if err := <-errs; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	}
}

// TestServerCloseDuringJoin: Server.Close while Join carries a busy stream
// on the server's side (as the SOCKS front-end does) ends Join.
func TestServerCloseDuringJoin(t *testing.T) {
	fh, fp := flooder(t)
	p := newPortable(t, &Server{}, &Client{})
	st, err := p.srv.DialStream(ctxT(t), fh, fp)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- Join(a, st) }()
	var got atomic.Int64
	go func() { // the local program reads what the target floods
		buf := make([]byte, 32<<10)
		for {
			n, err := b.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	waitFor(t, "bytes to flow", func() bool { return got.Load() > 1<<20 })
	p.srv.Close()
	<-done
	b.Close()
}
