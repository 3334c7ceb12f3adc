package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/portable"
)

// connectAndServe dials the portable server, retrying for up to retry,
// registers the listeners and serves the connection until it ends. It
// returns why it ended (an error wrapping io.EOF when the server hung up).
func connectAndServe(ctx context.Context, addr string, retry time.Duration, listeners map[string]dvc.Listener, log *slog.Logger) error {
	deadline := time.Now().Add(retry)
	var c *portable.Client
	for attempt := 1; ; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		c, err = portable.Dial(dctx, addr, portable.Config{Logger: log})
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connect to %s: %w (gave up after %v; is rdp-simple-plugin-server -listen running?)", addr, err, retry)
		}
		if attempt == 1 {
			log.Info("server not reachable yet; retrying", "addr", addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	for name, l := range listeners {
		if err := c.Listen(name, l); err != nil {
			c.Close()
			return err
		}
	}
	log.Info("connected; listening", "addr", addr)
	return c.Run(ctx)
}
