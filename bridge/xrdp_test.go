//go:build linux

package bridge

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
	"github.com/rdpdvc/rdpdvc/dvc"
)

// streamChansrv stands in for xrdp-chansrv and the RDP client behind it:
// it answers backend/xrdp's version-0 open request and then, on the
// socket, carries the channel as a byte stream the way chansrv does, in
// pieces that match no message: what the server writes is handed to the
// client side's Listener 5 bytes at a time, and what the client side
// writes goes to the socket as bytes. The Listener's verdict is the open's
// status.
type streamChansrv struct {
	ln *net.UnixListener
	l  dvc.Listener
	wg sync.WaitGroup
}

func startStreamChansrv(t *testing.T, dir string, l dvc.Listener) *streamChansrv {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "xrdpapi_77"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f := &streamChansrv{ln: ln, l: l}
	f.wg.Go(func() {
		for id := uint32(1); ; id++ {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			f.wg.Go(func() { f.serve(c, id) })
		}
	})
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *streamChansrv) serve(c *net.UnixConn, id uint32) {
	defer c.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	rest := make([]byte, binary.LittleEndian.Uint32(hdr[:])-8)
	if _, err := io.ReadFull(c, rest); err != nil {
		return
	}
	name := string(rest[4 : 4+binary.LittleEndian.Uint32(rest)])
	ch := &socketChannel{c: c, name: name, id: id}
	h, err := f.l.Accept(ch)
	status := uint32(0)
	if err != nil {
		status = uint32(dvc.StatusOf(err))
	}
	if _, err := c.Write(binary.LittleEndian.AppendUint32(nil, status)); err != nil || status != 0 {
		if h != nil {
			h.Closed(nil)
		}
		return
	}
	buf := make([]byte, 5)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			h.Received(buf[:n])
		}
		if err != nil {
			h.Closed(nil)
			return
		}
	}
}

// socketChannel is the client side's channel: its writes are bytes on the
// server's socket.
type socketChannel struct {
	mu   sync.Mutex
	c    *net.UnixConn
	name string
	id   uint32
}

func (s *socketChannel) Name() string { return s.name }
func (s *socketChannel) ID() uint32   { return s.id }
func (s *socketChannel) Write(_ context.Context, msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.c.Write(msg)
	return err
}
func (s *socketChannel) Close() error { return s.c.Close() }

// TestMessageOverStreamBackend: message framing keeps every boundary on a
// backend that keeps none, with backend/xrdp itself on the server side:
// its Framer cuts the socket's bytes into frames, and the client side's
// Reframe joins the 5-byte pieces, a frame over chansrv's 32768 bytes
// included.
func TestMessageOverStreamBackend(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	target, err := Listen(Addr{"unix", filepath.Join(dir, "target.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	bc := NewClient(ClientConfig{Addr: Addr{"unix", target.Addr().String()}, Framing: Message, Logger: log})
	defer bc.Wait()
	startStreamChansrv(t, dir, bc.Listener())
	op, err := xrdp.New(xrdp.Options{Display: ":77", SocketDir: dir, Protocol: xrdp.ProtocolV0, SplitLarge: true})
	if err != nil {
		t.Fatal(err)
	}
	sln, err := Listen(Addr{"unix", filepath.Join(dir, "server.sock")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	srv := &Server{Opener: op, Channel: testChannel, Framing: Message, Logger: log}
	wg.Go(func() { srv.Serve(ctx, sln) })

	a, err := net.Dial("unix", sln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	deadline(a)
	var msgs [][]byte
	for i, n := range []int{0, 5, 40000, 3, MaxChunk - HeaderLen, 1} {
		msgs = append(msgs, randomBytes(n, uint64(100+i)))
	}
	go func() {
		for _, m := range msgs {
			a.Write(frame(m))
		}
	}()
	b, err := target.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	deadline(b)
	for i, m := range msgs {
		if p := readFrame(t, b); !bytes.Equal(p, m) {
			t.Fatalf("server to client, message %d: %d bytes, want %d", i, len(p), len(m))
		}
	}
	go func() {
		for _, m := range msgs {
			b.Write(frame(m))
		}
	}()
	for i, m := range msgs {
		if p := readFrame(t, a); !bytes.Equal(p, m) {
			t.Fatalf("client to server, message %d: %d bytes, want %d", i, len(p), len(m))
		}
	}
	// The server side's program closes: the client side's socket ends.
	a.Close()
	if rest, err := io.ReadAll(b); err != nil || len(rest) != 0 {
		t.Fatalf("after the close: %d bytes, %v", len(rest), err)
	}
}
