package bridge

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/lograte"
)

// Server is the server side of a bridge: each connection accepted on the
// local socket opens one instance of Channel and is joined to it. In
// Message framing it opens with Framer, so that stream-only backends
// recover frames; over xrdp, make the Opener with SplitLarge, since a
// frame may be larger than chansrv forwards whole (the client side joins
// the pieces).
type Server struct {
	Opener  dvc.Opener
	Channel string
	Framing Framing
	// Timeout bounds Open (on the portable transport, the wait for an
	// RDP client to connect included) and each write to the socket or
	// the channel (DefaultTimeout if 0).
	Timeout time.Duration
	// MaxConns bounds the bridge connections at once (DefaultMaxConns if
	// 0); a connection beyond it is closed at once.
	MaxConns int
	Logger   *slog.Logger // nil: slog.Default()

	lim   *lograte.Limiter
	conns atomic.Int64
}

// Serve accepts connections on ln until ctx is done or ln fails, closes
// ln, ends every bridge connection still open and returns once all are
// gone: nil for ctx done, else the Accept error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.MaxConns <= 0 {
		s.MaxConns = DefaultMaxConns
	}
	s.lim = lograte.New(0, 0)
	defer s.lim.Flush(s.Logger)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			ln.Close()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if s.conns.Add(1) > int64(s.MaxConns) {
			s.conns.Add(-1)
			s.lim.Log(s.Logger, slog.LevelWarn, "bridge: too many connections", "bridge: too many connections; closing the new one", "channel", s.Channel, "max", s.MaxConns)
			c.Close()
			continue
		}
		wg.Go(func() {
			defer s.conns.Add(-1)
			s.serveConn(ctx, c)
		})
	}
}

// Conns is the number of bridge connections open now.
func (s *Server) Conns() int { return int(s.conns.Load()) }

func (s *Server) serveConn(ctx context.Context, sc net.Conn) {
	defer sc.Close()
	var opts []dvc.OpenOption
	if s.Framing == Message {
		// Backends that keep no boundaries (xrdp) cut the channel's
		// bytes into frames; the others ignore it.
		opts = append(opts, dvc.WithFramer(Framer))
	}
	octx, cancel := context.WithTimeout(ctx, s.Timeout)
	conn, err := s.Opener.Open(octx, s.Channel, opts...)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.lim.Log(s.Logger, slog.LevelWarn, "bridge: open failed", "bridge: cannot open the channel; closing the local connection", "channel", s.Channel, "err", err)
		}
		return
	}
	log := s.Logger.With("channel", s.Channel, "id", conn.ID())
	log.Debug("bridge connection open", "local", sc.RemoteAddr().String())
	stop := context.AfterFunc(ctx, func() { conn.Close(); sc.Close() })
	defer stop()
	var toSock, toChan atomic.Int64
	var wg sync.WaitGroup
	var downErr error
	// The channel to the socket. Read pulls, so nothing queues here
	// beyond the backend's own bounded inbox.
	wg.Go(func() {
		defer sc.Close()
		for {
			msg, err := conn.Read(ctx)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, dvc.ErrClosed) {
					downErr = err
				}
				return // the channel is gone: the socket closes, all written
			}
			if s.Framing == Message {
				if _, err := CheckFrame(msg); err != nil {
					downErr = err
					conn.Close()
					return
				}
			}
			if err := writeSocket(sc, net.Buffers{msg}, s.Timeout, func(n int) { toSock.Add(int64(n)) }); err != nil {
				downErr = err
				conn.Close()
				return
			}
		}
	})
	// The socket to the channel. Each Write returns once the message is
	// queued in order, so the Close after the last one follows it.
	upErr := readMessages(sc, s.Framing, func(m []byte) error {
		wctx, cancel := context.WithTimeout(ctx, s.Timeout)
		defer cancel()
		if err := conn.Write(wctx, m); err != nil {
			return err
		}
		toChan.Add(int64(len(m)))
		return nil
	})
	conn.Close()
	wg.Wait()
	if errors.Is(upErr, errHalf) || errors.Is(upErr, dvc.ErrClosed) || errors.Is(upErr, net.ErrClosed) {
		upErr = nil
	}
	if err := errors.Join(upErr, downErr); err != nil && ctx.Err() == nil {
		log.Error("bridge connection failed", "err", err, "to_channel", toChan.Load(), "to_socket", toSock.Load())
		return
	}
	log.Debug("bridge connection closed", "to_channel", toChan.Load(), "to_socket", toSock.Load())
}
