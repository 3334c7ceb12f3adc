package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
	"github.com/rdpdvc/rdpdvc/portable"
)

// The whole program runs in pnp/e2e (TestShellTwoProcesses); here, usage.
func TestPNPServerUsage(t *testing.T) {
	if code, _, errs := runArgs(t, "pnp-server", "extra"); code != 2 || !strings.Contains(errs, "unexpected arguments") {
		t.Errorf("extra argument: %d %s", code, errs)
	}
	if code, _, errs := runArgs(t, "pnp-server", "-script", "/nonexistent/script"); code != 2 || !strings.Contains(errs, "nonexistent") {
		t.Errorf("missing script: %d %s", code, errs)
	}
	if code, _, errs := runArgs(t, "pnp-server", "-h"); code != 0 || !strings.Contains(errs, "wait-device") {
		t.Errorf("-h: %d %s", code, errs)
	}
}

func TestPNPServerXRDPMode(t *testing.T) {
	t.Setenv("DISPLAY", ":987")
	t.Setenv("XRDP_SOCKET_PATH", t.TempDir()) // no xrdpapi_987 in it
	if code, _, errs := runArgs(t, "pnp-server", "-xrdp", "-listen", "127.0.0.1:0"); code != 2 || !strings.Contains(errs, "exclude") {
		t.Errorf("-xrdp with -listen: %d %s", code, errs)
	}
	if code, _, errs := runArgs(t, "pnp-server", "-xrdp"); code != 1 || !strings.Contains(errs, "xrdpapi_987") {
		t.Errorf("-xrdp outside a session: %d %s", code, errs)
	}
	// Inside a session (as detected) xrdp is the default.
	saved := pnpXRDPDetect
	defer func() { pnpXRDPDetect = saved }()
	pnpXRDPDetect = func() bool { return true }
	if code, _, errs := runArgs(t, "pnp-server", "-display", ":987"); code != 1 || !strings.Contains(errs, "xrdpapi_987") {
		t.Errorf("detected session: %d %s", code, errs)
	}
}

// A script that cannot run is refused at start, with its file and line,
// before anything listens (a regression would wait for a client: the
// context ends that wait, with another status).
func TestPNPServerScriptCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("wait-device any\n! frobnicate # no such command\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ script, want string }{
		{dir, dir + ": is a directory"},
		{filepath.Join(dir, "missing"), "no such file"},
		{bad, bad + `:2: unknown command "frobnicate"`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var o, e bytes.Buffer
		code := run(ctx, []string{"pnp-server", "-listen", "127.0.0.1:0", "-script", tc.script}, &o, &e)
		cancel()
		if code != 2 || !strings.Contains(e.String(), tc.want) || o.Len() != 0 {
			t.Errorf("-script %s: exit %d, stdout %q, stderr %q; want 2, nothing, %q", tc.script, code, o.String(), e.String(), tc.want)
		}
	}
}

// A client stuck in its handshake no longer denies pnp-server to the next:
// handshakes run at once, each step timed out, and the first to send its
// Client Version is served. The stuck ones: one answers the capabilities
// but never PNPDR's DYNVC_CREATE_REQ, one accepts PNPDR and never sends a
// Client Version. Before, the first connection was the only one served,
// and it hung.
func TestPNPServerServesFirstCompleteHandshake(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	lim := pnpLimits{caps: 5 * time.Second, open: 5 * time.Second, version: 5 * time.Second, write: 5 * time.Second}
	ln, err := portable.Listen("127.0.0.1:0", lim.portable(log))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Stuck at the channel: DYNVC_CAPS_RSP in one chunk, then silence.
	stuck, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	stuck.Write([]byte{4, 0, 0, 0, 3, 0, 0, 0, 0x50, 0, 2, 0})
	go io.Copy(io.Discard, stuck)
	// Stuck at the Client Version: PNPDR accepted, nothing said.
	mute, err := portable.Dial(ctx, addr, portable.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	mute.Listen(wire.ChannelPNPDR, dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) {
		close(opened)
		return discard{}, nil
	}))
	muteDone := make(chan error, 1)
	go func() { muteDone <- mute.Run(ctx) }()
	won := make(chan error, 1)
	var srv *server.Server
	var conn *portable.Server
	go func() {
		var err error
		conn, srv, err = firstClient(ctx, ln, server.Config{Logger: log, VersionTimeout: lim.version}, nil, log)
		won <- err
	}()
	<-opened // the mute client is in its handshake before the real one starts

	var wg sync.WaitGroup
	var out pcSyncBuffer
	cctx, stopClient := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		run(cctx, []string{"pnp-client", "-q", "-connect", addr, "-device", "mem:1K"}, &out, &out)
	}()
	if err := <-won; err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WaitDevice(ctx, nil); err != nil {
		t.Fatalf("the real client's device never came: %v\n%s", err, out.String())
	}
	srv.Close()
	conn.Close()
	stopClient()
	wg.Wait()
	mute.Close()
	<-muteDone
}

type discard struct{}

func (discard) Received([]byte) {}
func (discard) Closed(error)    {}
