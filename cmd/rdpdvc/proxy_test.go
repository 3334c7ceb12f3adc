package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/simple"
)

// TestProxyForwardsAndTraces puts rdpdvc proxy between a real portable
// client and server: the Simple pings must go through unchanged, the
// proxy must print the PDUs decoded (the channel's name from CREATE_REQ,
// the Simple frames inside DATA), and its trace must decode again with
// rdpdvc decode -trace.
func TestProxyForwardsAndTraces(t *testing.T) {
	quiet := portable.Config{Logger: slog.New(slog.DiscardHandler)}
	ln, err := portable.Listen("127.0.0.1:0", quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	tracePath := filepath.Join(t.TempDir(), "t.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pctx, stopProxy := context.WithCancel(ctx)
	var out pcSyncBuffer
	errR, errW := io.Pipe()
	proxyDone := make(chan int, 1)
	go func() {
		proxyDone <- runProxy(pctx, []string{"-listen", "127.0.0.1:0", "-connect", ln.Addr().String(), "-trace", tracePath}, &out, errW)
		errW.Close()
	}()
	// The proxy says where to connect on stderr.
	sc := bufio.NewScanner(errR)
	var addr string
	re := regexp.MustCompile(`connect the client to (\S+)`)
	for addr == "" && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatal("the proxy never said its address")
	}
	go io.Copy(io.Discard, errR)

	cl, err := portable.Dial(ctx, addr, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Listen(simple.ChannelName, &simple.Echoer{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	clientDone := make(chan error, 1)
	go func() { clientDone <- cl.Run(ctx) }()
	srv, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Run(context.Background())
	conn, err := srv.Open(ctx, simple.ChannelName)
	if err != nil {
		t.Fatal(err)
	}
	st, err := (&simple.Pinger{Interval: time.Millisecond, Count: 3, Logger: slog.New(slog.DiscardHandler)}).Run(ctx, conn)
	if err != nil || st.Received != 3 || !st.OK() {
		t.Fatalf("pings through the proxy: %+v, %v", st, err)
	}
	conn.Close()
	srv.Close()
	<-clientDone
	stopProxy()
	if code := <-proxyDone; code != 0 {
		t.Fatalf("proxy exit %d", code)
	}

	printed := out.String()
	for _, want := range []string{
		`[1] `, `server→client DRDYNVC#0`, `"pdu":"DYNVC_CAPS_VERSION2"`,
		`"ChannelName":"dvc::sample::simpleplugin"`, `DRDYNVC(dvc::sample::simpleplugin)#`,
		`"sequenceNumber":3`, `client→server DRDYNVC(dvc::sample::simpleplugin)`,
	} {
		if !strings.Contains(printed, want) {
			t.Errorf("proxy output lacks %q:\n%s", want, printed)
		}
	}
	f, err := os.Open(tracePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	code, decoded, errs := runArgs(t, "decode", "-trace", tracePath, "-channel", simple.ChannelName)
	if code != 0 || strings.Count(decoded, `"sequenceNumber":`) != 6 || !strings.Contains(decoded, "...(5120 bytes)") || strings.Contains(decoded, "DYNVC_CAPS") {
		t.Fatalf("decode -trace -channel: exit %d\n%s%s", code, decoded, errs)
	}
}

func TestDecodeTraceReportsBadRecords(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.jsonl")
	rec := `{"time":"2026-12-07T20:00:00Z","from":"server","event":"data","channel":"ECHO","id":3,"len":2,"data":"6869"}`
	if err := os.WriteFile(p, []byte(rec+"\n"+`{"event":"data","from":"mars","channel":"x"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runArgs(t, "decode", "-trace", p)
	if code != 1 || !strings.Contains(out, `server→client ECHO#3 data 2 {"data":"6869","message":"ECHO_REQUEST"}`) ||
		!strings.Contains(out, "line 2: trace: record.from") || !strings.Contains(errs, "1 of 2 records did not parse") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}
