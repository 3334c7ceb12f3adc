package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
)

func init() { modes["xrdp"] = mode{open: openXRDP} }

// xrdpDetect reports whether we run inside an xrdp session.
var xrdpDetect = xrdp.Detect

// xrdpSource yields the one xrdp session this process runs in.
type xrdpSource struct {
	op   *xrdp.Opener
	used bool
}

func openXRDP(_ context.Context, o *options, log *slog.Logger, _ io.Writer) (source, error) {
	op, err := xrdp.New(xrdp.Options{Display: o.display})
	if err != nil {
		return nil, err
	}
	log.Info("using the xrdp session", "socket", op.SocketPath())
	return &xrdpSource{op: op}, nil
}

func (s *xrdpSource) Next(context.Context) (session, error) {
	if s.used {
		return session{}, io.EOF
	}
	s.used = true
	return session{opener: s.op, label: "xrdp " + s.op.SocketPath(), close: func() {}}, nil
}

func (s *xrdpSource) Close() error { return nil }
