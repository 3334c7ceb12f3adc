package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/internal/lograte"
	"github.com/rdpdvc/rdpdvc/portable"
	dvcsession "github.com/rdpdvc/rdpdvc/session"
)

func init() { modes["portable"] = mode{open: openPortable} }

// portableSource yields each portable client as it connects; serve runs
// them at once. Past -max-clients served at once, a new connection is
// closed as soon as it is accepted, so that held connections cost a
// bounded amount.
type portableSource struct {
	ln     *portable.Listener
	log    *slog.Logger
	max    int
	active atomic.Int64
	n      int
	busy   *lograte.Limiter
}

func openPortable(_ context.Context, o *options, log *slog.Logger, stderr io.Writer) (source, error) {
	cfg := portable.Config{
		Logger:       log,
		WriteTimeout: o.limits.write,
		Session:      dvcsession.Config{CapsTimeout: o.limits.caps, OpenTimeout: o.limits.open},
	}
	ln, err := portable.Listen(cli.ListenAddr(o.listen, stderr), cfg)
	if err != nil {
		return nil, err
	}
	log.Info("listening (portable transport); start rdp-simple-plugin-client -connect "+ln.Addr().String(), "addr", ln.Addr().String())
	return &portableSource{ln: ln, log: log, max: o.maxClients, busy: lograte.New(0, 0)}, nil
}

func (s *portableSource) Next(ctx context.Context) (session, error) {
	for {
		srv, err := s.ln.Accept(ctx)
		if err != nil {
			s.busy.Flush(s.log)
			return session{}, err
		}
		s.n++
		label := fmt.Sprintf("#%d(%s)", s.n, srv.RemoteAddr())
		if s.active.Add(1) > int64(s.max) {
			s.active.Add(-1)
			s.busy.Log(s.log, slog.LevelWarn, "busy", "refusing a client: -max-clients already connected", "client", label, "max", s.max)
			srv.Close()
			continue
		}
		var once sync.Once
		return session{opener: srv, label: label, close: func() {
			once.Do(func() {
				srv.Close()
				s.active.Add(-1)
			})
		}}, nil
	}
}

func (s *portableSource) Close() error { return s.ln.Close() }
