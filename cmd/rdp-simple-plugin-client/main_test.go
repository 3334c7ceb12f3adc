package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/echo"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/simple"
	"github.com/rdpdvc/rdpdvc/trace"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestClientEchoesThenExitsWhenServerLeaves runs the client against an
// in-process portable server that pings the Simple channel and probes
// ECHO, then hangs up.
func TestClientEchoesThenExitsWhenServerLeaves(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	ln, err := portable.Listen("127.0.0.1:0", portable.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type result struct {
		ping, probe simple.Stats
		err         error
	}
	res := make(chan result, 1)
	go func() {
		var r result
		defer func() { res <- r }()
		srv, err := ln.Accept(context.Background())
		if err != nil {
			r.err = err
			return
		}
		go srv.Run(context.Background())
		defer srv.Close()
		ctx := context.Background()
		conn, err := srv.Open(ctx, simple.ChannelName, dvc.WithFramer(simple.FrameLen))
		if err != nil {
			r.err = err
			return
		}
		r.ping, r.err = (&simple.Pinger{Interval: time.Millisecond, Count: 3, Logger: quiet}).Run(ctx, conn)
		conn.Close()
		if r.err != nil {
			return
		}
		conn, err = srv.Open(ctx, echo.ChannelName)
		if err != nil {
			r.err = err
			return
		}
		r.probe, r.err = (&echo.Prober{Interval: time.Millisecond, Count: 2, Size: 10, Logger: quiet}).Run(ctx, conn)
		conn.Close()
	}()

	var out, errb bytes.Buffer
	tracePath := filepath.Join(t.TempDir(), "client.jsonl")
	code := run(context.Background(), []string{"-connect", ln.Addr().String(), "-trace", tracePath}, &out, &errb)
	r := <-res
	if r.err != nil || r.ping.Received != 3 || r.probe.Received != 2 {
		t.Fatalf("server side: %v %+v %+v\n%s", r.err, r.ping, r.probe, out.String())
	}
	if code != 0 {
		t.Fatalf("client exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "echo channel=dvc::sample::simpleplugin id=1 seq=3 size=5140") ||
		!strings.Contains(errb.String(), "echoed channel=dvc::sample::simpleplugin channels=1 messages=3") ||
		!strings.Contains(errb.String(), "echoed channel=ECHO requests=2") ||
		strings.Contains(errb.String(), " WARN ") {
		t.Fatalf("client log:\n%s", errb.String())
	}
	// -trace: each channel's messages, each way, as the client saw them.
	f, err := os.Open(tracePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	for r := trace.NewReader(f); ; {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		counts[fmt.Sprintf("%s %s %s", e.Channel, e.Kind, e.From)]++
	}
	for k, want := range map[string]int{
		"dvc::sample::simpleplugin open server": 1, "dvc::sample::simpleplugin data server": 3, "dvc::sample::simpleplugin data client": 3,
		"ECHO data server": 2, "ECHO data client": 2,
	} {
		if counts[k] != want {
			t.Errorf("trace has %d %q, want %d (all: %v)", counts[k], k, want, counts)
		}
	}
}

func TestClientGivesUpConnecting(t *testing.T) {
	// A port nobody listens on: bind one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"/connect", addr, "-retry", "300ms"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "gave up after 300ms") {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
}

func TestClientPlatformHook(t *testing.T) {
	saved := platformMain
	defer func() { platformMain = saved }()
	var seen []string
	platformMain = func(_ context.Context, args []string, _, _ io.Writer) (bool, int) {
		seen = args
		return args[0] == "-Embedding", 7
	}
	if code := run(context.Background(), []string{"-Embedding"}, io.Discard, io.Discard); code != 7 || seen[0] != "-Embedding" {
		t.Fatalf("hook not consulted first: %d %q", code, seen)
	}
	// Not handled: the portable flags are parsed as usual.
	if code := run(context.Background(), []string{"-nope"}, io.Discard, io.Discard); code != 2 {
		t.Fatalf("exit %d", code)
	}
}

func TestClientCancel(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	ln, err := portable.Listen("127.0.0.1:0", portable.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	accepted := make(chan *portable.Server, 1)
	go func() {
		srv, err := ln.Accept(context.Background())
		if err == nil {
			go srv.Run(context.Background())
			accepted <- srv
		}
		cancel() // Ctrl+C once connected
	}()
	code := run(ctx, []string{"-connect", ln.Addr().String(), "-reconnect"}, io.Discard, io.Discard)
	if code != 0 {
		t.Fatalf("exit %d after Ctrl+C", code)
	}
	(<-accepted).Close()
}
