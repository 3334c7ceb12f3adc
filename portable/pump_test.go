package portable

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// pumpPair is a server and an echoing client over TCP on 127.0.0.1 (the
// pump needs a socket to be the only reader of), with cfg for the server.
func pumpPair(t *testing.T, cfg Config) *Server {
	t.Helper()
	sc, cc := loopbackConns(t)
	c := NewClient(cc, quietCfg())
	c.Listen("echo", echoListener)
	go c.Run(context.Background())
	s := NewServer(sc, cfg)
	go s.Run(context.Background())
	t.Cleanup(func() { s.Close(); c.Close() })
	return s
}

// waitLent echoes on conn until Run's goroutine has lent the reading
// out, which it does once a Read has had to wait for a message and nothing
// else needs the stream.
func waitLent(t *testing.T, s *Server, conn dvc.Conn) {
	t.Helper()
	p := s.c.pump
	for range 10000 { // a hang guard only
		roundTrip(t, conn, 5140)
		p.mu.Lock()
		st := p.state
		p.mu.Unlock()
		if st == lent {
			return
		}
	}
	t.Fatal("the reading was never lent to a reader")
}

func pumpGen(s *Server) uint64 {
	p := s.c.pump
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// loopbackConns is both ends of a TCP connection on 127.0.0.1.
func loopbackConns(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		cc.Close()
		t.Fatal(err)
	}
	return sc, cc
}

// A Read that reads the socket itself still returns ctx.Err() when its
// context ends, and the stream is intact afterwards.
func TestPumpReadHonoursContext(t *testing.T) {
	s := pumpPair(t, quietCfg())
	conn, err := s.Open(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	waitLent(t, s, conn)
	gen := pumpGen(s)
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err = conn.Read(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with nothing sent = %v, want DeadlineExceeded", err)
	}
	if pumpGen(s) == gen {
		t.Fatal("the Read did not read the socket itself: the test tested nothing")
	}
	roundTrip(t, conn, 0, 1590, 1591, 100000)
}

// A reader reading the socket never waits for room in another channel's
// inbox (it has its own context to honour): the delivery is left to Run's
// goroutine, which waits as the inbox limit says, and nothing is lost or
// reordered.
func TestPumpLeavesFullInboxToRun(t *testing.T) {
	cfg := quietCfg()
	cfg.Session.InboxBytes = 1 // a second unread message waits for room
	s := pumpPair(t, cfg)
	a, err := s.Open(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Open(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	waitLent(t, s, a)
	msgs := [][]byte{bytes.Repeat([]byte{1}, 10), bytes.Repeat([]byte{2}, 10), bytes.Repeat([]byte{3}, 10)}
	for _, m := range msgs {
		if err := b.Write(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	// a reads the socket: b's echoes arrive, the second finds b's inbox
	// full. a must still give up at its deadline.
	gen := pumpGen(s)
	read := make(chan struct{})
	go func() {
		defer close(read)
		short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err = a.Read(short)
	}()
	hangGuard(t, read, "a Read reading for a channel whose inbox is full")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a.Read = %v, want DeadlineExceeded", err)
	}
	if pumpGen(s) == gen {
		t.Fatal("a did not read the socket itself: the test tested nothing")
	}
	for i, want := range msgs {
		got, err := b.Read(ctxStuck(t))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("b message %d = %v %v, want %v", i, got, err, want)
		}
	}
	roundTrip(t, a, 5140)
	roundTrip(t, b, 5140)
}

func ctxStuck(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
