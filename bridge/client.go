package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/internal/lograte"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	Addr    Addr // the local socket each channel instance connects to
	Framing Framing
	// Timeout bounds the dial of Addr, each write to the socket or the
	// channel, and a Received waiting for room in the queue
	// (DefaultTimeout if 0).
	Timeout time.Duration
	// QueueBytes bounds the bytes received from the channel and not yet
	// written to the socket, per connection (DefaultQueueBytes if 0).
	QueueBytes int
	// MaxConns bounds the bridge connections open at once
	// (DefaultClientMaxConns if 0); the server's instances beyond it are
	// refused, so that a server cannot make this side dial its program
	// and queue for it without end.
	MaxConns int
	Logger   *slog.Logger // nil: slog.Default()
}

// Client is the client side of a bridge: the Listener of its channel.
// Each instance the server opens connects once to the local socket; if
// that fails the instance is refused (the server's Open fails with
// STATUS_UNSUCCESSFUL).
type Client struct {
	cfg   ClientConfig
	lim   *lograte.Limiter
	wg    sync.WaitGroup
	conns atomic.Int64
}

// NewClient returns a Client; nothing is dialled before a channel opens.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	cfg.QueueBytes = max(cfg.QueueBytes, HeaderLen+MaxMessage)
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultClientMaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Client{cfg: cfg, lim: lograte.New(0, 0)}
}

// Listener is what to register for the bridge's channel. In Message
// framing it reassembles frames (kit.Reframe with Framer), which a
// server behind xrdp may have sent merged or split.
func (c *Client) Listener() dvc.Listener {
	l := dvc.ListenerFunc(c.accept)
	if c.cfg.Framing == Message {
		return kit.Reframe(l, Framer, HeaderLen+MaxMessage)
	}
	return l
}

// Conns is the number of bridge connections open now.
func (c *Client) Conns() int { return int(c.conns.Load()) }

// Wait returns once every connection's goroutines have ended: after each
// channel's Closed, once its queue is written (or has failed).
func (c *Client) Wait() { c.wg.Wait() }

func (c *Client) accept(ch dvc.Channel) (dvc.Handler, error) {
	if c.conns.Add(1) > int64(c.cfg.MaxConns) {
		c.conns.Add(-1)
		c.lim.Log(c.cfg.Logger, slog.LevelWarn, "bridge: too many connections", "bridge: too many connections; refusing the channel", "channel", ch.Name(), "id", ch.ID(), "max", c.cfg.MaxConns)
		return nil, fmt.Errorf("bridge: %d connections open, the most allowed (MaxConns)", c.cfg.MaxConns)
	}
	d := net.Dialer{Timeout: c.cfg.Timeout}
	sc, err := d.Dial(c.cfg.Addr.Network, c.cfg.Addr.Address)
	if err != nil {
		c.conns.Add(-1)
		c.lim.Log(c.cfg.Logger, slog.LevelWarn, "bridge: refused", "bridge: cannot connect to the local socket; refusing the channel", "channel", ch.Name(), "id", ch.ID(), "socket", c.cfg.Addr.String(), "err", err)
		return nil, fmt.Errorf("bridge: %s: %w", c.cfg.Addr, err)
	}
	if tc, ok := sc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	h := &clientConn{c: c, ch: ch, sc: sc, q: newOutbox(c.cfg.QueueBytes), log: c.cfg.Logger.With("channel", ch.Name(), "id", ch.ID())}
	c.wg.Add(2)
	go h.writeLoop()
	go h.readLoop()
	h.log.Debug("bridge connection open", "socket", c.cfg.Addr.String())
	return h, nil
}

// clientConn joins one channel instance to one socket connection.
type clientConn struct {
	c   *Client
	ch  dvc.Channel
	sc  net.Conn
	q   *outbox
	log *slog.Logger

	toSock, toChan atomic.Int64
	once           sync.Once
	reported       atomic.Bool
}

// Received queues msg for the socket. A full queue makes it wait for room,
// at most the Timeout (the backend's flow control then holds the
// sender); past that, the bridge connection is ended.
func (h *clientConn) Received(msg []byte) {
	if err := h.q.put(msg, h.c.cfg.Timeout); err != nil {
		h.fail(err)
	}
}

// Closed lets the writer finish what is queued; it then closes the socket.
func (h *clientConn) Closed(err error) {
	if err != nil {
		h.report(fmt.Errorf("bridge: channel: %w", err))
	}
	h.q.close()
}

// fail ends the connection at once: the queue is dropped.
func (h *clientConn) fail(err error) {
	h.report(err)
	h.q.fail(err)
	h.ch.Close()
	h.sc.Close()
}

func (h *clientConn) report(err error) {
	if h.reported.CompareAndSwap(false, true) {
		h.log.Error("bridge connection failed", "err", err, "to_channel", h.toChan.Load(), "to_socket", h.toSock.Load())
	}
}

func (h *clientConn) writeLoop() {
	defer h.c.wg.Done()
	defer h.c.conns.Add(-1)
	defer h.sc.Close()
	for {
		bufs, ok := h.q.take()
		if !ok {
			if !h.reported.Load() {
				h.log.Debug("bridge connection closed", "to_channel", h.toChan.Load(), "to_socket", h.toSock.Load())
			}
			return
		}
		err := writeSocket(h.sc, bufs, h.c.cfg.Timeout, func(n int) {
			h.toSock.Add(int64(n))
			h.q.done(n)
		})
		if err != nil {
			h.fail(fmt.Errorf("bridge: write to the local socket: %w", err))
			return
		}
	}
}

func (h *clientConn) readLoop() {
	defer h.c.wg.Done()
	opened := false
	err := readMessages(h.sc, h.c.cfg.Framing, func(m []byte) error {
		err := h.write(m, !opened)
		opened = opened || err == nil
		if err == nil {
			h.toChan.Add(int64(len(m)))
		}
		return err
	})
	switch {
	case errors.Is(err, errHalf), errors.Is(err, net.ErrClosed), errors.Is(err, dvc.ErrClosed):
		// The program shut down its side, or the writer closed the
		// socket after the channel went: everything read is written.
		h.ch.Close()
	default:
		h.fail(err)
	}
}

// openGrace is how long the first write retries a channel that is not
// open yet. The backends send the create response after Accept returns
// and tell the handler nothing, so a program that writes at once may beat
// it by a moment; later writes never retry.
const openGrace = 2 * time.Second

func (h *clientConn) write(m []byte, first bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), h.c.cfg.Timeout)
	defer cancel()
	pause, deadline := time.Millisecond, time.Now().Add(openGrace)
	for {
		err := h.ch.Write(ctx, m)
		if err == nil || !first || errors.Is(err, dvc.ErrClosed) || errors.Is(err, dvc.ErrTooLarge) || time.Now().After(deadline) || h.q.ended() {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}
