package tunnel

import (
	"context"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// splitOpener cuts every message the server writes into pieces (the first
// inside the header), as chansrv may deliver a server's stream to a
// FreeRDP client: the client, registered through kit.Reframe with
// wire.Framer, sees whole messages again.
type splitOpener struct{ dvc.Opener }

func (o splitOpener) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	c, err := o.Opener.Open(ctx, name, opts...)
	if err != nil {
		return nil, err
	}
	return splitConn{c}, nil
}

type splitConn struct{ dvc.Conn }

func (c splitConn) Write(ctx context.Context, msg []byte) error {
	for first := true; len(msg) > 0; first = false {
		n := min(len(msg), 1000)
		if first {
			n = min(len(msg), 3)
		}
		if err := c.Conn.Write(ctx, msg[:n]); err != nil {
			return err
		}
		msg = msg[n:]
	}
	return nil
}

func TestSplitMessagesReframed(t *testing.T) {
	hub := loopback.New()
	cli := &Client{Dial: plainDial}
	if err := hub.Listen(wire.ChannelName, kit.Reframe(cli, wire.Framer, wire.MaxMessage)); err != nil {
		t.Fatal(err)
	}
	srv := &Server{Opener: splitOpener{hub}}
	defer func() {
		srv.Close()
		hub.Close()
		cli.Close()
	}()
	host, port := echoServer(t)
	roundTrip(t, srv, host, port, 500000)
}

// streamOpener stands in for a stream-only server backend (xrdp's
// xrdpapi socket): what the client writes reaches the server's Read as a
// byte stream, cut anywhere and joined, which the backend recovers with
// the Framer given at Open, as backend/xrdp does with kit.Stream.
type streamOpener struct {
	dvc.Opener
	t *testing.T
}

func (o streamOpener) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	f := dvc.ApplyOpenOptions(opts).Framer
	if f == nil {
		o.t.Error("Open without a Framer: a stream-only backend could not recover messages")
	}
	c, err := o.Opener.Open(ctx, name, opts...)
	if err != nil {
		return nil, err
	}
	return &streamConn{Conn: c, s: kit.Stream{Framer: f, Max: wire.MaxMessage}}, nil
}

type streamConn struct {
	dvc.Conn
	s       kit.Stream
	pending []byte // bytes "read from the socket" not yet given to s
}

func (c *streamConn) Read(ctx context.Context) ([]byte, error) {
	for {
		m, err := c.s.Next()
		if err != nil {
			return nil, err
		}
		if m != nil {
			return append([]byte(nil), m...), nil
		}
		if len(c.pending) == 0 {
			msg, err := c.Conn.Read(ctx)
			if err != nil {
				return nil, err
			}
			c.pending = msg
		}
		// 7 bytes at a time: headers and bodies cut anywhere.
		n := min(len(c.pending), 7)
		c.s.Write(c.pending[:n])
		c.pending = c.pending[n:]
	}
}

func TestStreamBackendFramer(t *testing.T) {
	hub := loopback.New()
	cli := &Client{Dial: plainDial}
	if err := cli.Register(hub); err != nil {
		t.Fatal(err)
	}
	srv := &Server{Opener: streamOpener{hub, t}}
	defer func() {
		srv.Close()
		hub.Close()
		cli.Close()
	}()
	host, port := echoServer(t)
	roundTrip(t, srv, host, port, 300000)
}
