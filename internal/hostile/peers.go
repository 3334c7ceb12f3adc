package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/chanpdu"
	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
)

// chunk is pdu as the portable transport carries it: one chunk, a
// CHANNEL_PDU_HEADER with FIRST|LAST (MS-RDPBCGR 2.2.6.1).
func chunk(pdu []byte) []byte {
	h := chanpdu.Header{Length: uint32(len(pdu)), Flags: chanpdu.FlagFirst | chanpdu.FlagLast}
	return append(h.Append(nil), pdu...)
}

// capsRsp is a client's DYNVC_CAPS_RSP, version 2 (MS-RDPEDYC 2.2.1.2).
var capsRsp = chunk(drdynvc.CapsResponse{Version: 2}.Append(nil))

// silent connects and says nothing.
func silent(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }

// stuckAtCreate answers the capabilities and then never answers
// DYNVC_CREATE_REQ, reading and dropping whatever comes.
func stuckAtCreate(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(capsRsp); err != nil {
		c.Close()
		return nil, err
	}
	go io.Copy(io.Discard, c)
	return c, nil
}

// gated is a net.Conn whose reads stop once stop is called: the peer
// then sees a connection that reads nothing, while writes go on. A
// stopped read still keeps the read deadline, as a net.Conn must (the
// portable server cuts a lent read short with one).
type gated struct {
	net.Conn
	once   sync.Once
	gate   chan struct{}
	closed chan struct{}
	cmu    sync.Once

	dmu      sync.Mutex
	deadline time.Time
	changed  chan struct{} // closed and replaced at each new deadline
}

func newGated(c net.Conn) *gated {
	return &gated{Conn: c, gate: make(chan struct{}), closed: make(chan struct{}), changed: make(chan struct{})}
}

func (g *gated) stop() { g.once.Do(func() { close(g.gate) }) }

func (g *gated) setDeadline(t time.Time) {
	g.dmu.Lock()
	g.deadline = t
	close(g.changed)
	g.changed = make(chan struct{})
	g.dmu.Unlock()
}

func (g *gated) SetReadDeadline(t time.Time) error {
	g.setDeadline(t)
	return g.Conn.SetReadDeadline(t)
}

func (g *gated) SetDeadline(t time.Time) error {
	g.setDeadline(t)
	return g.Conn.SetDeadline(t)
}

func (g *gated) Read(b []byte) (int, error) {
	select {
	case <-g.gate:
	default:
		return g.Conn.Read(b)
	}
	for {
		g.dmu.Lock()
		d, changed := g.deadline, g.changed
		g.dmu.Unlock()
		var expired <-chan time.Time
		if !d.IsZero() {
			left := time.Until(d)
			if left <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(left)
			expired = t.C
			defer t.Stop()
		}
		select {
		case <-g.closed:
			return 0, net.ErrClosed
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		case <-changed:
		}
	}
}

func (g *gated) Close() error {
	g.cmu.Do(func() { close(g.closed) })
	return g.Conn.Close()
}

// ignore accepts a channel and drops whatever comes on it; accepted is
// closed once it has accepted one.
type ignore struct {
	once     sync.Once
	accepted chan struct{}
	onAccept func()
}

func newIgnore(onAccept func()) *ignore {
	return &ignore{accepted: make(chan struct{}), onAccept: onAccept}
}

func (l *ignore) Accept(dvc.Channel) (dvc.Handler, error) {
	l.once.Do(func() {
		if l.onAccept != nil {
			l.onAccept()
		}
		close(l.accepted)
	})
	return ignored{}, nil
}

type ignored struct{}

func (ignored) Received([]byte) {}
func (ignored) Closed(error)    {}

// waitClosed reads c until the peer closes it (or d passes) and reports
// how long that took.
func waitClosed(c net.Conn, d time.Duration) (time.Duration, bool) {
	t := time.Now()
	c.SetReadDeadline(t.Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return 0, false
	}
	return time.Since(t), true
}

// until waits for ctx or d.
func until(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
