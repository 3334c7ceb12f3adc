package tunnel

import (
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/testnet"
	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/portable"
)

// pair is a tunnel's two sides joined by a carrier.
type pair struct {
	srv *Server
	cli *Client
}

// plainDial dials targets on 127.0.0.1 only: the tests' stand-in for
// tunnel/allow.
func plainDial(ctx context.Context, host string, port uint16) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
}

// newPortable joins srv and cli over the portable transport on real
// sockets on 127.0.0.1; everything is closed at the end of the test.
func newPortable(t testing.TB, srv *Server, cli *Client) *pair {
	t.Helper()
	ln, err := portable.Listen("127.0.0.1:0", portable.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pc, err := portable.Dial(ctx, ln.Addr().String(), portable.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := ln.Accept(ctx)
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	go ps.Run(ctx)
	if cli.Dial == nil {
		cli.Dial = plainDial
	}
	if err := cli.Register(pc); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { pc.Run(ctx); close(runDone) }()
	srv.Opener = ps
	t.Cleanup(func() {
		srv.Close()
		cancel()
		ps.Close()
		pc.Close()
		<-runDone
		cli.Close()
	})
	return &pair{srv: srv, cli: cli}
}

// newLoopback joins them through the in-process loopback backend.
func newLoopback(t testing.TB, srv *Server, cli *Client) *pair {
	t.Helper()
	hub := loopback.New()
	if cli.Dial == nil {
		cli.Dial = plainDial
	}
	if err := cli.Register(hub); err != nil {
		t.Fatal(err)
	}
	srv.Opener = hub
	t.Cleanup(func() {
		srv.Close()
		hub.Close()
		cli.Close()
	})
	return &pair{srv: srv, cli: cli}
}

var _ dvc.Listener = (*Client)(nil)

// serveTCP accepts on 127.0.0.1 until the test ends, each connection
// handled on a goroutine; the cleanup waits for the handlers.
func serveTCP(t testing.TB, handle func(net.Conn)) (string, uint16) {
	t.Helper()
	ln := testnet.Serve(t, handle)
	return "127.0.0.1", uint16(ln.Addr().(*net.TCPAddr).Port)
}

// echoServer is a target that echoes until EOF, then half-closes.
func echoServer(t testing.TB) (string, uint16) {
	return serveTCP(t, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
