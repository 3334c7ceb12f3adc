package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
