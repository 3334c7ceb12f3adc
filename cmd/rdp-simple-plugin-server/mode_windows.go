package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/sys/windows"

	"github.com/rdpdvc/rdpdvc/backend/wts"
)

// On Windows the server runs inside an RDP session on an RD Session Host,
// as the sample's does: WTS API mode by default, -filehandle for
// overlapped I/O on the channel's file handle. -listen still selects the
// portable transport.
func init() {
	modes["wts"] = mode{open: openWTS(false)}
	modes["filehandle"] = mode{open: openWTS(true)}
	defaultMode = func(*options) string { return "wts" }
}

// wtsSource yields the one RDP session this process runs in.
type wtsSource struct {
	op    *wts.Opener
	label string
	used  bool
}

func openWTS(fileHandle bool) func(context.Context, *options, *slog.Logger, io.Writer) (source, error) {
	return func(_ context.Context, _ *options, log *slog.Logger, _ io.Writer) (source, error) {
		var sid uint32
		label := "this session"
		if err := windows.ProcessIdToSessionId(windows.GetCurrentProcessId(), &sid); err == nil {
			label = fmt.Sprintf("session %d", sid)
		}
		how := "WTSVirtualChannelRead/Write"
		if fileHandle {
			how = "overlapped ReadFile/WriteFile on the channel's file handle"
		}
		log.Info("using the RDP session's virtual channels", "session", label, "io", how)
		return &wtsSource{op: &wts.Opener{FileHandle: fileHandle}, label: label}, nil
	}
}

func (s *wtsSource) Next(context.Context) (session, error) {
	if s.used {
		return session{}, io.EOF
	}
	s.used = true
	return session{opener: s.op, label: s.label, close: func() {}}, nil
}

func (s *wtsSource) Close() error { return nil }
