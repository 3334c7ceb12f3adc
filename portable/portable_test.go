package portable

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/dvc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuf collects log output so tests can check that errors were logged.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func quietCfg() Config { return Config{Logger: slog.New(slog.DiscardHandler)} }

type echo struct{ ch dvc.Channel }

func (e echo) Received(m []byte) { e.ch.Write(context.Background(), m) }
func (e echo) Closed(error)      {}

var echoListener = dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) { return echo{ch}, nil })

// pair runs a client with an echo listener against a server over conns.
func pair(t *testing.T, sc, cc net.Conn) (*Server, *Client, <-chan error) {
	t.Helper()
	c := NewClient(cc, quietCfg())
	c.Listen("echo", echoListener)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(context.Background()) }()
	s := NewServer(sc, quietCfg())
	go s.Run(context.Background())
	return s, c, runErr
}

func roundTrip(t *testing.T, conn dvc.Conn, sizes ...int) {
	t.Helper()
	ctx := context.Background()
	for _, n := range sizes {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		if err := conn.Write(ctx, msg); err != nil {
			t.Fatal(err)
		}
		got, err := conn.Read(ctx)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("size %d: %v", n, err)
		}
	}
}

func TestEchoOverPipe(t *testing.T) {
	a, b := net.Pipe()
	s, _, runErr := pair(t, a, b)
	conn, err := s.Open(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, conn, 0, 1, 1590, 1591, 5140, 100000)
	s.Close()
	if err := <-runErr; !errors.Is(err, io.EOF) && !errors.Is(err, dvc.ErrConnectionLost) && err == nil {
		t.Fatalf("client Run returned %v", err)
	}
}

func TestEchoOverTCPAndServerOutlivesClient(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", quietCfg())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx := context.Background()
	for round := 0; round < 2; round++ {
		c, err := Dial(ctx, ln.Addr().String(), quietCfg())
		if err != nil {
			t.Fatal(err)
		}
		c.Listen("echo", echoListener)
		runErr := make(chan error, 1)
		go func() { runErr <- c.Run(ctx) }()
		s, err := ln.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		go s.Run(ctx)
		conn, err := s.Open(ctx, "echo")
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, conn, 5140)
		// The client dies: the server's channel reports the loss.
		c.Close()
		<-runErr
		if _, err := conn.Read(ctx); !errors.Is(err, dvc.ErrConnectionLost) {
			t.Fatalf("read after client died: %v", err)
		}
		s.Close()
	}
}

// Garbage ends only the connection it arrives on, with a logged error.
func TestGarbageEndsOnlyThatConnection(t *testing.T) {
	var logs logBuf
	cfg := Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	ln, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx := context.Background()

	// A healthy connection first.
	good, err := Dial(ctx, ln.Addr().String(), quietCfg())
	if err != nil {
		t.Fatal(err)
	}
	good.Listen("echo", echoListener)
	goodDone := make(chan error, 1)
	go func() { goodDone <- good.Run(ctx) }()
	gs, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gs.Close()
	go gs.Run(ctx)
	gconn, err := gs.Open(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, send, log string
	}{
		{"http request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "exceeds ceiling"},
		{"absurd length", "\xff\xff\xff\xff\x03\x00\x00\x00", "exceeds ceiling"},
		{"truncated header", "\x04\x00\x00", "inside a CHANNEL_PDU_HEADER"},
		{"middle chunk first", "\x04\x00\x00\x00\x00\x00\x00\x00abcd", "CHANNEL_PDU_HEADER"},
		{"bad caps response", "\x04\x00\x00\x00\x03\x00\x00\x00\x50\x00\x09\x00", "Version 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			s, err := ln.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			go s.Run(ctx)
			raw.Write([]byte(tc.send))
			if tc.name == "truncated header" {
				raw.(*net.TCPConn).CloseWrite()
			}
			s.Wait()
			// The server must have closed the socket: reading drains the
			// caps request, then ends.
			raw.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadAll(raw); err != nil {
				t.Fatalf("socket not closed by the server: %v", err)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Fatalf("log does not mention %q:\n%s", tc.log, logs.String())
			}
			roundTrip(t, gconn, 5140) // the healthy connection is unharmed
		})
	}
	good.Close()
	<-goodDone
}

// The bytes in docs/portable-transport.md are what the code sends.
func TestDocumentedBytes(t *testing.T) {
	a, b := net.Pipe()
	s := NewServer(a, quietCfg())
	defer s.Close()
	defer b.Close()
	go s.Run(context.Background())
	unhex := func(s string) []byte {
		x, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	read := func(n int) []byte {
		buf := make([]byte, n)
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(b, buf); err != nil {
			t.Fatal(err)
		}
		return buf
	}
	want := unhex("0c 00 00 00 03 00 00 00 50 00 02 00 a8 03 cc 0c 92 24 55 55")
	if got := read(len(want)); !bytes.Equal(got, want) {
		t.Fatalf("caps request\n got % x\nwant % x", got, want)
	}
	go b.Write(unhex("04 00 00 00 03 00 00 00 50 00 02 00"))
	opened := make(chan error, 1)
	go func() {
		_, err := s.Open(context.Background(), "dvc::sample::simpleplugin")
		opened <- err
	}()
	want = unhex("1c 00 00 00 03 00 00 00 10 01 64 76 63 3a 3a 73 61 6d 70 6c 65 3a 3a 73 69 6d 70 6c 65 70 6c 75 67 69 6e 00")
	if got := read(len(want)); !bytes.Equal(got, want) {
		t.Fatalf("create request\n got % x\nwant % x", got, want)
	}
	s.Close()
	<-opened
}

// A peer that never reads cannot hold a write for ever: the capabilities
// request the server sends first fails after WriteTimeout, and with it the
// connection (before, the write had no deadline).
func TestWriteTimeoutFailsAStalledConnection(t *testing.T) {
	ours, theirs := net.Pipe() // synchronous: nothing is written until read
	defer theirs.Close()
	srv := NewServer(ours, Config{WriteTimeout: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	defer srv.Close()
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(context.Background()) }()
	var err error
	select {
	case err = <-runErr:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection still waits on a peer that reads nothing")
	}
	if err == nil || !strings.Contains(err.Error(), "WriteTimeout") {
		t.Fatalf("connection ended with %v, want the write timeout", err)
	}
}
