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
