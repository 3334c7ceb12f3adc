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
// session (xrdp keeps a session whose client went away). Next waits for
// the session it yielded before to end; the second and later sessions
// open through Opener.WhenConnected, which waits for the client.
type xrdpSource struct {
	op    *xrdp.Opener
	log   *slog.Logger
	n     int        // sessions yielded
	ended chan error // the last session's end, once
	gap   time.Time  // when the last session's client went away
}

func openXRDP(_ context.Context, o *options, log *slog.Logger, _ io.Writer) (source, error) {
	op, err := xrdp.New(xrdp.Options{Display: o.display})
	if err != nil {
		return nil, err
	}
	log.Info("using the xrdp session", "socket", op.SocketPath())
	return &xrdpSource{op: op, log: log}, nil
}

func (s *xrdpSource) Next(ctx context.Context) (session, error) {
	var op dvc.Opener = s.op
	var gap time.Time
	if s.n > 0 {
		var err error
		select {
		case err = <-s.ended:
		case <-ctx.Done():
			return session{}, io.EOF
		}
		// Only a connection lost while the session itself lives on is
		// waited for: a refused open, the end of the session, or the
		// -count reached ends the program as before.
		if !errors.Is(err, dvc.ErrConnectionLost) || errors.Is(err, xrdp.ErrSessionEnded) {
			return session{}, io.EOF
		}
		gap = time.Now()
		s.log.Warn("the RDP client went away; waiting for a client to reconnect to this session")
		op = s.op.WhenConnected()
	}
	s.n++
	ended := make(chan error, 1)
	s.ended = ended
	return session{opener: op, label: "xrdp " + s.op.SocketPath(), close: func() {},
		ended: func(err error) { ended <- err }, gapSince: gap}, nil
}

func (s *xrdpSource) Close() error { return nil }
