package bridge

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/portable"
)

const testChannel = "rdpdvc::test::bridge"

// syncBuffer is the rig's log, written by every goroutine; waitFor wakes
// at each write.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced at each write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// waitFor waits until the log holds one of wants: each side logs as it
// ends a connection, which the programs may see first.
func (s *syncBuffer) waitFor(t testing.TB, wants ...string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		text, changed := s.b.String(), s.changed
		s.mu.Unlock()
		for _, w := range wants {
			if strings.Contains(text, w) {
				return
			}
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("the log never showed %q", wants)
		}
	}
}

// rig is a bridge over the portable transport on loopback: Server's
// socket (dial it with dialServer) on one end, target, a socket the
// test serves, on the other.
type rig struct {
	t       testing.TB
	srvAddr Addr
	target  net.Listener // nil with noTarget
	client  *Client
	server  *Server
	logs    *syncBuffer
}

type rigOptions struct {
	framing  Framing
	network  string // unix (default) or tcp, for both sockets
	noTarget bool   // the client side's socket does not exist
	timeout  time.Duration
}

func newRig(t testing.TB, o rigOptions) *rig {
	t.Helper()
	logs := newSyncBuffer()
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := &rig{t: t, logs: logs}
	dir := t.TempDir()
	addr := func(name string) Addr {
		if o.network == "tcp" {
			return Addr{"tcp", "127.0.0.1:0"}
		}
		return Addr{"unix", filepath.Join(dir, name)}
	}
	// The client side: its target socket, and the bridge as the listener.
	tAddr := addr("target.sock")
	if o.noTarget {
		tAddr = Addr{"unix", filepath.Join(dir, "absent.sock")}
	} else {
		ln, err := Listen(tAddr)
		if err != nil {
			t.Fatal(err)
		}
		r.target = ln
		tAddr = Addr{ln.Addr().Network(), ln.Addr().String()}
		t.Cleanup(func() { ln.Close() })
	}
	r.client = NewClient(ClientConfig{Addr: tAddr, Framing: o.framing, Logger: log, Timeout: o.timeout})
	pl, err := portable.Listen("127.0.0.1:0", portable.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	pc, err := portable.Dial(ctx, pl.Addr().String(), portable.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Listen(testChannel, r.client.Listener()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { pc.Run(ctx) })
	ps, err := pl.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { ps.Run(ctx) })
	// The server side.
	sln, err := Listen(addr("server.sock"))
	if err != nil {
		t.Fatal(err)
	}
	r.srvAddr = Addr{sln.Addr().Network(), sln.Addr().String()}
	r.server = &Server{Opener: ps, Channel: testChannel, Framing: o.framing, Logger: log, Timeout: o.timeout}
	wg.Go(func() {
		if err := r.server.Serve(ctx, sln); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		ps.Close()
		pc.Close()
		wg.Wait()
		r.client.Wait()
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	return r
}

// dial connects to the server side's socket, as a program in the session.
func (r *rig) dial() net.Conn {
	r.t.Helper()
	c, err := net.Dial(r.srvAddr.Network, r.srvAddr.Address)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	return c
}

// accept takes the client side's next connection to the target, as the
// program on the client.
func (r *rig) accept() net.Conn {
	r.t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := r.target.Accept(); ch <- res{c, err} }()
	select {
	case x := <-ch:
		if x.err != nil {
			r.t.Fatal(x.err)
		}
		r.t.Cleanup(func() { x.c.Close() })
		return x.c
	case <-time.After(10 * time.Second):
		r.t.Fatal("the client side never connected to its socket")
	}
	return nil
}

// echoTarget echoes every connection to the target until it closes.
func (r *rig) echoTarget() {
	var wg sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := r.target.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { io.Copy(c, c); c.Close() })
		}
	}()
	r.t.Cleanup(func() { r.target.Close(); <-done; wg.Wait() })
}

func frame(p []byte) []byte { return append(AppendHeader(nil, len(p)), p...) }

// readFrame reads one Message framing frame from c and returns its payload.
func readFrame(t *testing.T, c io.Reader) []byte {
	t.Helper()
	var h [HeaderLen]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatalf("reading a header: %v", err)
	}
	p := make([]byte, binary.LittleEndian.Uint32(h[:]))
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatalf("reading a %d-byte message: %v", len(p), err)
	}
	return p
}

// deadline bounds a test's reads and writes, so a failure shows as an
// error instead of a hang.
func deadline(c net.Conn) { c.SetDeadline(time.Now().Add(20 * time.Second)) }
