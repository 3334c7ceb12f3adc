package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/trace"
)

// connectAndServe dials the portable server, retrying for up to retry,
// registers the listeners and serves the connection until it ends. It
// returns why it ended (an error wrapping io.EOF when the server hung up).
func connectAndServe(ctx context.Context, addr string, retry time.Duration, listeners map[string]dvc.Listener, rec *trace.Recorder, log *slog.Logger) error {
	c, err := cli.Redial(ctx, addr, retry, "is rdp-simple-plugin-server -listen running?", log, func(ctx context.Context) (*portable.Client, error) {
		return portable.Dial(ctx, addr, portable.Config{Logger: log})
	})
	if err != nil {
		return err
	}
	reg := rec.Registrar(c)
	for name, l := range listeners {
		if err := reg.Listen(name, l); err != nil {
			c.Close()
			return err
		}
	}
	log.Info("connected; listening", "addr", addr)
	return c.Run(ctx)
}
