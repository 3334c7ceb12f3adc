package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestStreamBothWays: bytes written to either socket come out of the
// other byte for byte, on unix and tcp sockets.
func TestStreamBothWays(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := newRig(t, rigOptions{framing: Stream, network: network})
			a := r.dial()
			up := randomBytes(3<<20+17, 1) // well over MaxChunk and the queue bound
			down := randomBytes(2<<20+5, 2)
			errc := make(chan error, 1)
			go func() { _, err := a.Write(up); errc <- err }()
			b := r.accept()
			deadline(a)
			deadline(b)
			got := make([]byte, len(up))
			if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, up) {
				t.Fatalf("server to client: %v, equal %v", err, bytes.Equal(got, up))
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			go func() { _, err := b.Write(down); errc <- err }()
			got = make([]byte, len(down))
			if _, err := io.ReadFull(a, got); err != nil || !bytes.Equal(got, down) {
				t.Fatalf("client to server: %v, equal %v", err, bytes.Equal(got, down))
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMessageBothWays: each message, empty and largest included, comes
// out of the other socket whole, with its header, in order.
func TestMessageBothWays(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := newRig(t, rigOptions{framing: Message, network: network})
			sizes := []int{0, 1, 4, MaxChunk, MaxChunk + 1, 100000, MaxMessage}
			var msgs [][]byte
			var wire []byte
			for i, n := range sizes {
				m := randomBytes(n, uint64(i+10))
				msgs = append(msgs, m)
				wire = append(wire, frame(m)...)
			}
			a := r.dial()
			errc := make(chan error, 1)
			go func() { _, err := a.Write(wire); errc <- err }()
			b := r.accept()
			deadline(a)
			deadline(b)
			// On the socket the bytes are the same as the sender's.
			got := make([]byte, len(wire))
			if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, wire) {
				t.Fatalf("server to client: %v, equal %v", err, bytes.Equal(got, wire))
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			go func() {
				for _, m := range msgs {
					if _, err := b.Write(frame(m)); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for i, m := range msgs {
				if p := readFrame(t, a); !bytes.Equal(p, m) {
					t.Fatalf("client to server: message %d: %d bytes, want %d", i, len(p), len(m))
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConcurrentConnections: each local connection gets its own channel
// instance, and none sees another's bytes.
func TestConcurrentConnections(t *testing.T) {
	for _, f := range []Framing{Stream, Message} {
		t.Run(f.String(), func(t *testing.T) {
			r := newRig(t, rigOptions{framing: f})
			r.echoTarget()
			const conns = 32
			var wg sync.WaitGroup
			for i := range conns {
				a := r.dial()
				deadline(a)
				wg.Go(func() {
					for j := range 4 {
						m := randomBytes(1000+i*300+j, uint64(i*10+j))
						if f == Message {
							m = frame(m)
						}
						if _, err := a.Write(m); err != nil {
							t.Error(err)
							return
						}
						got := make([]byte, len(m))
						if _, err := io.ReadFull(a, got); err != nil || !bytes.Equal(got, m) {
							t.Errorf("connection %d, round %d: %v, equal %v", i, j, err, bytes.Equal(got, m))
							return
						}
					}
				})
			}
			wg.Wait()
			if n := r.client.Conns(); n != conns {
				t.Errorf("client side has %d bridge connections, want %d", n, conns)
			}
			if n := r.server.Conns(); n != conns {
				t.Errorf("server side has %d bridge connections, want %d", n, conns)
			}
		})
	}
}

// TestRefusedWithoutTargetSocket: when the client side cannot connect to
// its socket it refuses the instance; the server's Open fails with
// STATUS_UNSUCCESSFUL and the local connection is closed.
func TestRefusedWithoutTargetSocket(t *testing.T) {
	r := newRig(t, rigOptions{noTarget: true})
	_, err := r.server.Opener.Open(context.Background(), testChannel)
	var oe *dvc.OpenError
	if !errors.As(err, &oe) || oe.Status != hresult.StatusUnsuccessful {
		t.Fatalf("Open: %v, want an OpenError with STATUS_UNSUCCESSFUL", err)
	}
	a := r.dial()
	deadline(a)
	if n, err := a.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("local connection: read %d, %v; want EOF", n, err)
	}
	for _, want := range []string{"cannot connect to the local socket; refusing the channel", "absent.sock", "cannot open the channel; closing the local connection"} {
		if !strings.Contains(r.logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}
}

// TestOversizeLength: a header over MaxMessage, from either program,
// closes that bridge connection with an error in the log, and only it.
func TestOversizeLength(t *testing.T) {
	r := newRig(t, rigOptions{framing: Message})
	good := r.dial()
	deadline(good)
	good.Write(frame([]byte("hello")))
	gb := r.accept()
	deadline(gb)
	if p := readFrame(t, gb); string(p) != "hello" {
		t.Fatalf("good connection: %q", p)
	}
	// From the server side's program.
	bad := r.dial()
	deadline(bad)
	bad.Write(AppendHeader(nil, MaxMessage+1))
	bb := r.accept()
	deadline(bb)
	if _, err := io.ReadAll(bad); err != nil {
		t.Logf("bad connection ended with %v", err) // a reset is fine too
	}
	if _, err := io.ReadAll(bb); err != nil {
		t.Logf("bad connection's client end ended with %v", err)
	}
	// From the client side's program, on another connection.
	bad2 := r.dial()
	deadline(bad2)
	bad2.Write(frame(nil))
	bb2 := r.accept()
	deadline(bb2)
	readFrame(t, bb2)
	bb2.Write(AppendHeader(nil, 0xFFFFFFFF))
	if _, err := io.ReadAll(bad2); err != nil {
		t.Logf("second bad connection ended with %v", err)
	}
	// The good one still carries messages both ways.
	gb.Write(frame([]byte("still here")))
	if p := readFrame(t, good); string(p) != "still here" {
		t.Fatalf("good connection after the bad ones: %q", p)
	}
	good.Write(frame([]byte("and back")))
	if p := readFrame(t, gb); string(p) != "and back" {
		t.Fatalf("good connection after the bad ones: %q", p)
	}
	// Each side logs as it ends the connection, which the program may
	// see first.
	for _, want := range []string{
		fmt.Sprintf("bridge: message header: length %d is over the %d-byte ceiling, from the local socket", MaxMessage+1, MaxMessage),
		fmt.Sprintf("bridge: message header: length %d is over the %d-byte ceiling, from the local socket", uint32(0xFFFFFFFF), MaxMessage),
	} {
		r.logs.waitFor(t, want)
	}
}

// TestHalfClose: a program that shuts down its write side has every byte
// it wrote delivered, then the other program sees the end; the same from
// the client side.
func TestHalfClose(t *testing.T) {
	for _, f := range []Framing{Stream, Message} {
		t.Run(f.String(), func(t *testing.T) {
			r := newRig(t, rigOptions{framing: f})
			data := randomBytes(200000, 7)
			if f == Message {
				data = frame(data)
			}
			// Server side's program half-closes.
			a := r.dial()
			deadline(a)
			if _, err := a.Write(data); err != nil {
				t.Fatal(err)
			}
			a.(interface{ CloseWrite() error }).CloseWrite()
			b := r.accept()
			deadline(b)
			got, err := io.ReadAll(b)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("after the server side's half-close: %d bytes, %v; want %d", len(got), err, len(data))
			}
			// Client side's program half-closes.
			a2 := r.dial()
			deadline(a2)
			a2.Write(data[:0:0]) // nothing: the client side connects when the channel opens
			b2 := r.accept()
			deadline(b2)
			if _, err := b2.Write(data); err != nil {
				t.Fatal(err)
			}
			b2.(interface{ CloseWrite() error }).CloseWrite()
			got, err = io.ReadAll(a2)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("after the client side's half-close: %d bytes, %v; want %d", len(got), err, len(data))
			}
		})
	}
}

// TestStalledProgram: a client-side program that stops reading ends its
// own bridge connection with a logged error, within the timeout, and
// holds up no other connection.
func TestStalledProgram(t *testing.T) {
	r := newRig(t, rigOptions{timeout: 200 * time.Millisecond})
	other := r.dial()
	deadline(other)
	other.Write([]byte("x"))
	ob := r.accept()
	deadline(ob)
	if _, err := io.ReadFull(ob, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	a := r.dial()
	deadline(a)
	r.accept() // and never read
	chunk := make([]byte, 1<<20)
	var err error
	for range 256 {
		if _, err = a.Write(chunk); err != nil {
			break
		}
	}
	if err == nil {
		t.Fatal("256 MiB went into a socket nobody reads")
	}
	// The client side logs it as it ends the connection, which the
	// server side's program may see first.
	r.logs.waitFor(t, "read nothing for 200ms", "unread for 200ms")
	other.Write([]byte("still here"))
	got := make([]byte, len("still here"))
	if _, err := io.ReadFull(ob, got); err != nil || string(got) != "still here" {
		t.Fatalf("the other connection: %q, %v", got, err)
	}
}

// TestOutboxBound: the client side's queue takes messages up to its bound
// (one larger message into an empty queue), and a put finding no room
// for the timeout fails; released bytes make room.
func TestOutboxBound(t *testing.T) {
	o := newOutbox(10)
	if err := o.put(make([]byte, 25), time.Hour); err != nil {
		t.Fatalf("a message over the bound into an empty queue: %v", err)
	}
	if err := o.put(make([]byte, 1), time.Millisecond); err == nil || !strings.Contains(err.Error(), "left 25 bytes unread for 1ms") {
		t.Fatalf("put into a full queue: %v", err)
	}
	bufs, ok := o.take()
	if !ok || len(bufs) != 1 || len(bufs[0]) != 25 {
		t.Fatalf("take: %v %v", len(bufs), ok)
	}
	o.done(20)
	if err := o.put(make([]byte, 5), time.Millisecond); err != nil {
		t.Fatalf("put with 5 bytes queued: %v", err)
	}
	if err := o.put(make([]byte, 1), time.Millisecond); err == nil {
		t.Fatal("put over the bound succeeded")
	}
	done := make(chan error, 1)
	go func() { done <- o.put(make([]byte, 6), time.Hour) }()
	o.done(10) // what the writer wrote: the rest of the 25, and the 5
	if err := <-done; err != nil {
		t.Fatalf("a put waiting for room: %v", err)
	}
	o.close()
	if bufs, ok := o.take(); !ok || len(bufs) != 2 {
		t.Fatalf("take after close: %d %v, want what was queued", len(bufs), ok)
	}
	if _, ok := o.take(); ok {
		t.Fatal("take after close and drain")
	}
	o.fail(errors.New("x"))
	if err := o.put([]byte{1}, time.Hour); err == nil {
		t.Fatal("put after fail")
	}
}

func TestListenUnixMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	ln, err := Listen(Addr{"unix", path})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if ln.Addr().String() != path {
		t.Errorf("Addr %s, want %s", ln.Addr(), path)
	}
	// A socket someone listens on is not replaced.
	if _, err := Listen(Addr{"unix", path}); err == nil || !strings.Contains(err.Error(), "another program is listening") {
		t.Errorf("second Listen: %v", err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left after Close: %v", err)
	}
	// A stale socket file (nobody listening) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	ln, err = Listen(Addr{"unix", path})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
	// A file that is not a socket is left alone.
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(Addr{"unix", path}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Error("the regular file was changed")
	}
}
