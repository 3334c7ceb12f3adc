package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// How client programs (the ones that dial a portable-transport server)
// retry: each attempt may take DialTimeout, attempts are RetryPause apart,
// and with -reconnect a lost connection is dialled again after
// ReconnectPause.
const (
	DialTimeout    = 5 * time.Second
	RetryPause     = 200 * time.Millisecond
	ReconnectPause = time.Second
)

// Redial calls dial until it succeeds, ctx is done, or retry has passed
// since the first attempt (a negative retry: until ctx is done), so that a
// client and its server can be started in either order. The first failure is logged at Info; the error after
// the last one names addr and ends with hint (when not empty), e.g. what
// should be listening there.
func Redial[C any](ctx context.Context, addr string, retry time.Duration, hint string, log *slog.Logger, dial func(ctx context.Context) (C, error)) (C, error) {
	deadline := time.Now().Add(retry)
	for attempt := 1; ; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, DialTimeout)
		c, err := dial(dctx)
		cancel()
		if err == nil {
			return c, nil
		}
		var zero C
		if ctx.Err() != nil {
			return zero, ctx.Err()
		}
		if retry >= 0 && time.Now().After(deadline) {
			if hint != "" {
				hint = "; " + hint
			}
			return zero, fmt.Errorf("connect to %s: %w (gave up after %v%s)", addr, err, retry, hint)
		}
		if attempt == 1 {
			log.Info("server not reachable yet; retrying", "addr", addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-time.After(RetryPause):
		}
	}
}

// Reconnect runs serve, one connection's life, and with reconnect runs
// it again ReconnectPause after each end, until ctx is done. It returns
// the program's exit status: 0 for Ctrl+C or a server that hung up (serve
// returned nil or an error wrapping io.EOF), 1 for a connection that
// failed otherwise; each end is logged.
func Reconnect(ctx context.Context, reconnect bool, log *slog.Logger, serve func(ctx context.Context) error) int {
	for {
		err := serve(ctx)
		hungUp := err == nil || errors.Is(err, io.EOF)
		switch {
		case ctx.Err() != nil:
			return 0
		case hungUp:
			log.Info("server went away", "err", err)
		default:
			log.Error("connection failed", "err", err)
		}
		if !reconnect {
			if hungUp {
				return 0
			}
			return 1
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(ReconnectPause):
		}
	}
}
