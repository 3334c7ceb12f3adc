package xrdp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

func TestConnectV1Golden(t *testing.T) {
	got, err := AppendOpenRequest(nil, ProtocolV1, "ECHO")
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 384)
	copy(want, []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'E', 'C', 'H', 'O'})
	if !bytes.Equal(got, want) {
		t.Fatalf("version-1 request\n got % x\nwant % x", got, want)
	}
}

// Probe must name each chansrv's protocol from its answer alone, and an
// Open must then use that protocol.
func TestProbeAndOpenBothProtocols(t *testing.T) {
	for _, proto := range []Protocol{ProtocolV0, ProtocolV1} {
		t.Run(proto.String(), func(t *testing.T) {
			f := startFakeProto(t, proto, 7, echo)
			got, err := Probe(context.Background(), f.path)
			if err != nil || got != proto {
				t.Fatalf("Probe = %v, %v; want %v", got, err, proto)
			}
			op := f.opener(t, Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := op.Open(ctx, "ECHO", dvc.WithFramer(lenPrefixed))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if o := f.lastOpen(); o.name != "ECHO" || o.flags != flagDynamic {
				t.Fatalf("fake saw %+v", o)
			}
			if err := c.Write(ctx, msg(1, 10)); err != nil {
				t.Fatal(err)
			}
			if m, err := c.Read(ctx); err != nil || !bytes.Equal(m, msg(1, 10)) {
				t.Fatalf("Read = %x, %v", m, err)
			}
		})
	}
}

// A chansrv that closes on both requests answers neither handshake.
func TestProbeNeither(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "xrdpapi_7")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()
	_, err = Probe(context.Background(), path)
	if !errors.Is(err, ErrUnknownProtocol) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "0.10.5") {
		t.Fatalf("Probe = %v", err)
	}
}

// A chansrv that reads and never answers: the probe ends at its deadline
// with an error naming the request and the path.
func TestProbeSilent(t *testing.T) {
	f := startFake(t, 7, nil)
	f.mu.Lock()
	f.silent = true
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := f.opener(t, Options{}).Open(ctx, "ECHO")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), f.path) || !strings.Contains(err.Error(), "version 0") {
		t.Fatalf("Open = %v", err)
	}
}

// A socket file nobody listens on: the session has ended.
func TestOpenRefusedSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "xrdpapi_7")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	op, err := New(Options{Display: ":7", SocketDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = op.Open(context.Background(), "ECHO")
	if !errors.Is(err, ErrSessionEnded) || !errors.Is(err, dvc.ErrConnectionLost) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v", err)
	}
}

// The client goes away in the middle of a message, on both protocols.
func TestDisconnectMidMessage(t *testing.T) {
	for _, proto := range []Protocol{ProtocolV0, ProtocolV1} {
		t.Run(proto.String(), func(t *testing.T) {
			f := startFakeProto(t, proto, 7, func(_ string, c *net.UnixConn) {
				c.Write(msg(1, 100)[:50])
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := f.opener(t, Options{}).Open(ctx, "X", dvc.WithFramer(lenPrefixed))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Read(ctx)
			if !errors.Is(err, dvc.ErrConnectionLost) || !strings.Contains(err.Error(), "incomplete message") {
				t.Fatalf("Read = %v", err)
			}
		})
	}
}

func TestWatchSession(t *testing.T) {
	f := startFakeProto(t, ProtocolV1, 7, nil)
	op := f.opener(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := op.WatchSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if on, err := w.Connected(); !on || err != nil {
		t.Fatalf("initial state %v, %v", on, err)
	}
	f.setConnected(false)
	if err := w.Wait(ctx, false); err != nil {
		t.Fatal(err)
	}
	f.setConnected(true)
	if err := w.Wait(ctx, true); err != nil {
		t.Fatal(err)
	}
	f.sendRaw(binary.LittleEndian.AppendUint32(nil, 7))
	err = w.Wait(ctx, false)
	if err == nil || !strings.Contains(err.Error(), "is_connected is 7") {
		t.Fatalf("bad state: %v", err)
	}
}

func TestWatchSessionOldChansrv(t *testing.T) {
	f := startFake(t, 7, nil)
	if _, err := f.opener(t, Options{}).WatchSession(context.Background()); !errors.Is(err, ErrNoSessionEvents) {
		t.Fatalf("WatchSession = %v", err)
	}
}

func TestOpenWhenConnectedWaitsForClient(t *testing.T) {
	f := startFakeProto(t, ProtocolV1, 7, echo)
	f.mu.Lock()
	f.connected = 0
	f.mu.Unlock()
	op := f.opener(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type res struct {
		c   dvc.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := op.OpenWhenConnected(ctx, "ECHO"); ch <- res{c, err} }()
	for f.watcherCount() == 0 {
		select {
		case r := <-ch:
			t.Fatalf("opened before a client connected: %v", r.err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	f.setConnected(true)
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.c.Close()
}
