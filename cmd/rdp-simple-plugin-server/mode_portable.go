package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/portable"
)

func init() { modes["portable"] = mode{open: openPortable} }

// portableSource serves each portable client that connects, in turn.
type portableSource struct {
	ln  *portable.Listener
	log *slog.Logger
	n   int
}

func openPortable(_ context.Context, o *options, log *slog.Logger, stderr io.Writer) (source, error) {
	ln, err := portable.Listen(cli.ListenAddr(o.listen, stderr), portable.Config{Logger: log})
	if err != nil {
		return nil, err
	}
	log.Info("listening (portable transport); start rdp-simple-plugin-client -connect "+cli.DialAddr(ln.Addr()), "addr", ln.Addr().String())
	return &portableSource{ln: ln, log: log}, nil
}

func (s *portableSource) Next(ctx context.Context) (session, error) {
	srv, err := s.ln.Accept(ctx)
	if err != nil {
		return session{}, err
	}
	s.n++
	return session{opener: srv, label: fmt.Sprintf("#%d", s.n), close: func() { srv.Close() }}, nil
}

func (s *portableSource) Close() error { return s.ln.Close() }
