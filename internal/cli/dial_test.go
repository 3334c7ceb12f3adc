package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

var errRefused = errors.New("connection refused")

func TestRedialRetriesUntilTheServerIsUp(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(NewPlainHandler(&logs, slog.LevelInfo))
	calls := 0
	c, err := Redial(context.Background(), "127.0.0.1:1", 1<<62, "hint", log, func(context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", errRefused
		}
		return "conn", nil
	})
	if err != nil || c != "conn" || calls != 3 {
		t.Fatalf("%q %v after %d calls", c, err, calls)
	}
	if n := strings.Count(logs.String(), "server not reachable yet"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, logs.String())
	}
}

func TestRedialGivesUp(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	refuse := func(context.Context) (int, error) { return 0, errRefused }
	_, err := Redial(context.Background(), "127.0.0.1:1", 0, "is the server running?", log, refuse)
	if !errors.Is(err, errRefused) || !strings.Contains(err.Error(), "connect to 127.0.0.1:1") || !strings.HasSuffix(err.Error(), "; is the server running?)") {
		t.Fatalf("%v", err)
	}
	if _, err := Redial(context.Background(), "a:1", 0, "", log, refuse); err == nil || strings.Contains(err.Error(), ";") {
		t.Fatalf("no hint: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err = Redial(ctx, "a:1", 1<<62, "", log, func(context.Context) (int, error) { cancel(); return 0, errRefused })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestReconnect(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		err  error
		code int
	}{
		{nil, 0},
		{fmt.Errorf("portable: %w", io.EOF), 0},
		{errRefused, 1},
	} {
		calls := 0
		code := Reconnect(context.Background(), false, log, func(context.Context) error { calls++; return c.err })
		if code != c.code || calls != 1 {
			t.Errorf("%v: exit %d after %d calls", c.err, code, calls)
		}
	}
	// With reconnect, a failed connection is tried again; Ctrl+C ends it
	// with status 0.
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	code := Reconnect(ctx, true, log, func(context.Context) error {
		calls++
		if calls == 2 {
			cancel()
		}
		return errRefused
	})
	if code != 0 || calls != 2 {
		t.Fatalf("exit %d after %d calls", code, calls)
	}
}
