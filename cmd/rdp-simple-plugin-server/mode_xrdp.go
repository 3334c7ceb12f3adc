package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
	"github.com/rdpdvc/rdpdvc/dvc"
)

func init() { modes["xrdp"] = mode{open: openXRDP} }

// xrdpDetect reports whether we run inside an xrdp session.
var xrdpDetect = xrdp.Detect

// xrdpSource yields the xrdp session this process runs in: once, and again
// each time its RDP client disconnects and a client reconnects to the same
// session (xrdp keeps a session whose client went away). The second and
// later sessions open through Opener.OpenWhenConnected, which waits for
// the client.
type xrdpSource struct {
	op  *xrdp.Opener
	log *slog.Logger
	n   int       // sessions yielded
	gap time.Time // when the last session's client went away; zero if it ended otherwise
}

func openXRDP(_ context.Context, o *options, log *slog.Logger, _ io.Writer) (source, error) {
	op, err := xrdp.New(xrdp.Options{Display: o.display})
	if err != nil {
		return nil, err
	}
	log.Info("using the xrdp session", "socket", op.SocketPath())
	return &xrdpSource{op: op, log: log}, nil
}

func (s *xrdpSource) Next(context.Context) (session, error) {
	var op dvc.Opener = s.op
	if s.n > 0 {
		if s.gap.IsZero() {
			return session{}, io.EOF
		}
		s.log.Warn("the RDP client went away; waiting for a client to reconnect to this session")
		op = s.op.WhenConnected()
	}
	s.n++
	gap := s.gap
	s.gap = time.Time{}
	return session{opener: op, label: "xrdp " + s.op.SocketPath(), close: func() {}, ended: s.ended, gapSince: gap}, nil
}

// ended keeps waiting for a client only when this one's connection was
// lost while the session itself lives on: a refused open, or the end of
// the session, ends the program as before.
func (s *xrdpSource) ended(err error) {
	if errors.Is(err, dvc.ErrConnectionLost) && !errors.Is(err, xrdp.ErrSessionEnded) {
		s.gap = time.Now()
	}
}

func (s *xrdpSource) Close() error { return nil }
