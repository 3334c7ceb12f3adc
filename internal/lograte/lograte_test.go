package lograte

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimiterSuppressesAndReports(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l := New(2, time.Second)
	clock := time.Unix(1000, 0)
	l.now = func() time.Time { return clock }
	for i := 0; i < 1000; i++ {
		l.Log(log, slog.LevelInfo, "refuse", "refusing", "id", i)
	}
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines for 1000 records with burst 2:\n%s", n, buf.String())
	}
	// A new window lets one through, carrying the count.
	clock = clock.Add(time.Second)
	l.Log(log, slog.LevelInfo, "refuse", "refusing", "id", 1000)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "suppressed=998") {
		t.Fatalf("%q", lines)
	}
	// Other keys have their own allowance.
	l.Log(log, slog.LevelWarn, "other", "other thing")
	if !strings.Contains(buf.String(), "other thing") {
		t.Fatal("a second key was suppressed by the first")
	}
	// Flush reports what was counted since.
	l.Log(log, slog.LevelInfo, "refuse", "refusing", "id", 1001)
	l.Log(log, slog.LevelInfo, "refuse", "refusing", "id", 1002)
	buf.Reset()
	l.Flush(log)
	if !strings.Contains(buf.String(), "refusing (repeats suppressed)") || !strings.Contains(buf.String(), "suppressed=1") {
		t.Fatalf("flush: %q", buf.String())
	}
	buf.Reset()
	l.Flush(log)
	if buf.Len() != 0 {
		t.Fatalf("second flush repeated the report: %q", buf.String())
	}
}

func TestLimiterSkipsDisabledLevels(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l := New(1, time.Hour)
	l.Log(log, slog.LevelInfo, "k", "hidden")
	l.Log(log, slog.LevelWarn, "k", "shown")
	if !strings.Contains(buf.String(), "shown") {
		t.Fatalf("a disabled record used up the allowance: %q", buf.String())
	}
}
