package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// allowOnly is a Client.Listen that allows one address, as -allow-listen
// does.
func allowOnly(addr string) func(host string, port uint16) (net.Listener, error) {
	return func(host string, port uint16) (net.Listener, error) {
		a := net.JoinHostPort(host, strconv.Itoa(int(port)))
		if a != addr {
			return nil, codeErr(wire.ReplyNotAllowed)
		}
		return net.Listen("tcp", a)
	}
}

// TestReverse: the client listens where the server asks (as allowed), and
// each connection accepted there reaches the server's target, both ways,
// with half-close.
func TestReverse(t *testing.T) {
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			addr := "127.0.0.1:" + strconv.Itoa(int(freePort(t)))
			p := mk(t, &Server{}, &Client{Listen: allowOnly(addr)})
			host, port := echoServer(t) // the target, on the server's side
			ctx := ctxT(t)
			r, err := p.srv.Reverse(ctx, addr, func(ctx context.Context) (net.Conn, error) {
				return plainDial(ctx, host, port)
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.Addr().String() != addr {
				t.Fatalf("listening on %v, want %s", r.Addr(), addr)
			}
			for i := range 3 {
				c, err := net.Dial("tcp", addr) // a program on the client's side
				if err != nil {
					t.Fatal(err)
				}
				want := bytes.Repeat([]byte(fmt.Sprint(i)), 300000)
				go func() {
					c.Write(want)
					c.(*net.TCPConn).CloseWrite()
				}()
				got, err := io.ReadAll(c)
				c.Close()
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("connection %d: %d bytes back of %d, %v", i, len(got), len(want), err)
				}
			}
			r.Close()
			waitFor(t, "the client's listener to close", func() bool {
				c, err := net.Dial("tcp", addr)
				if err == nil {
					c.Close()
				}
				return err != nil
			})
		})
	}
}

func TestReverseNotAllowed(t *testing.T) {
	p := newPortable(t, &Server{}, &Client{Listen: allowOnly("127.0.0.1:1")})
	ctx := ctxT(t)
	dial := func(ctx context.Context) (net.Conn, error) { return nil, errors.New("unused") }
	_, err := p.srv.Reverse(ctx, "127.0.0.1:2", dial)
	var de *DialError
	if !errors.As(err, &de) || de.Code != wire.ReplyNotAllowed {
		t.Fatalf("Reverse to an address not allowed: %v, want code 2", err)
	}
	// Without Listen, nothing is allowed.
	p2 := newPortable(t, &Server{}, &Client{})
	if _, err := p2.srv.Reverse(ctx, "127.0.0.1:1", dial); !errors.As(err, &de) || de.Code != wire.ReplyNotAllowed {
		t.Fatalf("Reverse with no Listen: %v, want code 2", err)
	}
}
