package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/internal/lograte"
	"github.com/rdpdvc/rdpdvc/portable"
	dvcsession "github.com/rdpdvc/rdpdvc/session"
)

func init() { modes["portable"] = mode{open: openPortable} }

// portableSource yields each portable client as it connects; serve runs
// them at once. At most -max-clients are connected at a time, so held
// connections cost a bounded amount; when a new one would pass that, the
// oldest still in its handshake is dropped for it (a silent connection
// must not keep a real client out), and if none is, the new one is closed.
type portableSource struct {
	ln   *portable.Listener
	log  *slog.Logger
	max  int
	n    int
	busy *lograte.Limiter

	mu      sync.Mutex
	clients []*portableClient // connected, oldest first
}

type portableClient struct {
	srv    *portable.Server
	label  string
	opened bool // guarded by portableSource.mu
	once   sync.Once
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
	log.Info("listening (portable transport); start rdp-simple-plugin-client -connect "+cli.DialAddr(ln.Addr()), "addr", ln.Addr().String())
	return &portableSource{ln: ln, log: log, max: o.maxClients, busy: lograte.New(0, 0)}, nil
}

func (s *portableSource) Next(ctx context.Context) (session, error) {
	for {
		srv, err := s.ln.Accept(ctx)
		if err != nil {
			s.busy.Flush(s.log)
			return session{}, err
		}
		go srv.Run(context.Background())
		s.n++
		c := &portableClient{srv: srv, label: fmt.Sprintf("#%d(%s)", s.n, srv.RemoteAddr())}
		if !s.admit(c) {
			s.busy.Log(s.log, slog.LevelWarn, "busy", "refusing a client: -max-clients are connected, none in its handshake", "client", c.label, "max", s.max)
			srv.Close()
			continue
		}
		return session{opener: srv, label: c.label, close: func() { s.drop(c) }, opened: func() {
			s.mu.Lock()
			c.opened = true
			s.mu.Unlock()
		}}, nil
	}
}

// admit adds c, making room by dropping the oldest client still in its
// handshake if need be; false means there was no room.
func (s *portableSource) admit(c *portableClient) bool {
	s.mu.Lock()
	var evict *portableClient
	if len(s.clients) >= s.max {
		for _, o := range s.clients {
			if !o.opened {
				evict = o
				break
			}
		}
		if evict == nil {
			s.mu.Unlock()
			return false
		}
	}
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	if evict != nil {
		s.busy.Log(s.log, slog.LevelWarn, "evict", "dropping the oldest client still in its handshake to make room (-max-clients)", "client", evict.label, "for", c.label)
		s.drop(evict) // its Open fails, and its session ends
	}
	return true
}

func (s *portableSource) drop(c *portableClient) {
	c.once.Do(func() {
		s.mu.Lock()
		for i, o := range s.clients {
			if o == c {
				s.clients = append(s.clients[:i], s.clients[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		c.srv.Close()
	})
}

func (s *portableSource) Close() error { return s.ln.Close() }
