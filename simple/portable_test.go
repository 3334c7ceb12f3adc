package simple_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/simple"
)

// pipePair joins a portable server and client over net.Pipe, with l
// listening on the client for name, and opens name from the server.
func pipePair(t *testing.T, name string, l dvc.Listener) (*portable.Server, *portable.Client, dvc.Conn) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	a, b := net.Pipe()
	cl := portable.NewClient(b, portable.Config{Logger: quiet})
	if err := cl.Listen(name, l); err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { cl.Run(context.Background()); close(runDone) }()
	srv := portable.NewServer(a, portable.Config{Logger: quiet})
	go srv.Run(context.Background())
	t.Cleanup(func() {
		srv.Close()
		cl.Close()
		<-runDone
	})
	conn, err := srv.Open(context.Background(), name, dvc.WithFramer(simple.FrameLen))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return srv, cl, conn
}

func TestPingerOverPortablePipe(t *testing.T) {
	e := &simple.Echoer{Logger: slog.New(slog.DiscardHandler)}
	_, _, conn := pipePair(t, simple.ChannelName, e)
	// 20000 bytes: every ping is a DYNVC_DATA_FIRST and a dozen DYNVC_DATA.
	p := &simple.Pinger{Interval: time.Millisecond, Count: 10, Payload: 20000, Logger: slog.New(slog.DiscardHandler)}
	s, err := p.Run(context.Background(), conn)
	if err != nil || s.Received != 10 || !s.OK() {
		t.Fatalf("%+v %v", s, err)
	}
}

// dropAfter echoes n messages, then swallows the rest.
type dropAfter struct{ n int }

func (d *dropAfter) Accept(ch dvc.Channel) (dvc.Handler, error) {
	seen := 0
	return handlerFunc(func(msg []byte) {
		seen++
		if seen <= d.n {
			_ = ch.Write(context.Background(), msg)
		}
	}), nil
}

type handlerFunc func([]byte)

func (f handlerFunc) Received(m []byte) { f(m) }
func (handlerFunc) Closed(error)        {}

func TestPingerOverPortableConnectionDies(t *testing.T) {
	_, cl, conn := pipePair(t, simple.ChannelName, &dropAfter{n: 2})
	var replies []simple.Reply
	p := &simple.Pinger{Interval: time.Millisecond, Logger: slog.New(slog.DiscardHandler), OnReply: func(r simple.Reply) {
		replies = append(replies, r)
		if len(replies) == 2 {
			// Ping#3 is or will soon be swallowed; then the RDP
			// connection drops.
			go func() { time.Sleep(5 * time.Millisecond); cl.Close() }()
		}
	}}
	s, err := p.Run(context.Background(), conn)
	if !errors.Is(err, dvc.ErrConnectionLost) || s.Received != 2 || s.Lost < 1 || s.Sent != s.Received+s.Lost {
		t.Fatalf("%+v %v", s, err)
	}
}
