package portable

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// A Read waiting on a channel whose peer is silent returns dvc.ErrClosed
// when another goroutine closes that channel, whoever is reading the
// socket at the time (the pump may have lent it to this very Read).
func TestCloseUnblocksAWaitingRead(t *testing.T) {
	for _, name := range []string{"pipe", "tcp", "no-deadlines"} {
		t.Run(name, func(t *testing.T) {
			var a, b net.Conn
			if name == "pipe" {
				a, b = net.Pipe()
			} else {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				if b, err = net.Dial("tcp", ln.Addr().String()); err != nil {
					t.Fatal(err)
				}
				if a, err = ln.Accept(); err != nil {
					t.Fatal(err)
				}
				if name == "no-deadlines" {
					a = noDeadlines{a}
				}
			}
			s, c, _ := pair(t, a, b)
			defer c.Close()
			defer s.Close()
			conn, err := s.Open(context.Background(), "echo")
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, conn, 10, 10, 10) // the reading is lent to Read from now on
			closeEndsRead(t, conn)
		})
	}
}

// noDeadlines is a net.Conn that cannot take read deadlines (a user's
// conn may not): the server then never lends its reading, and every
// message goes through Run's goroutine.
type noDeadlines struct{ net.Conn }

func (noDeadlines) SetReadDeadline(time.Time) error { return errors.New("no read deadlines here") }

// A channel closed here ends its own Read even when the peer then sends
// nothing at all, not even the answer to the DYNVC_CLOSE: the Read may be
// the one reading the socket for the connection.
func TestCloseUnblocksReadWithASilentPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// The client: answers the capabilities and accepts the channel (a
	// real portable.Client), then goes silent: from then on its output is
	// held back by a gate the test never opens.
	gate := &gatedWriter{Conn: b}
	s, c, _ := pair(t, a, gate)
	defer c.Close()
	defer s.Close()
	conn, err := s.Open(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, conn, 10, 10, 10)
	gate.shut() // the client writes nothing more
	closeEndsRead(t, conn)
}

// closeEndsRead closes conn while a Read waits on it, and checks that the
// Read ends with dvc.ErrClosed.
func closeEndsRead(t *testing.T, conn dvc.Conn) {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := conn.Read(context.Background()); done <- err }()
	time.Sleep(50 * time.Millisecond) // let the Read start waiting (not deciding anything: the result below is)
	conn.Close()
	select {
	case err := <-done:
		if !errors.Is(err, dvc.ErrClosed) {
			t.Fatalf("Read = %v, want dvc.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stuck: Close did not end a Read waiting on the channel")
	}
}

// gatedWriter holds every Write after shut until the conn closes.
type gatedWriter struct {
	net.Conn
	mu     sync.Mutex
	shutCh chan struct{}
}

func (g *gatedWriter) shut() {
	g.mu.Lock()
	g.shutCh = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	ch := g.shutCh
	g.mu.Unlock()
	if ch != nil {
		<-ch // never closed: the peer is silent until Close
		return 0, net.ErrClosed
	}
	return g.Conn.Write(p)
}

func (g *gatedWriter) Close() error {
	g.mu.Lock()
	if g.shutCh != nil {
		select {
		case <-g.shutCh:
		default:
			close(g.shutCh)
		}
	}
	g.mu.Unlock()
	return g.Conn.Close()
}
