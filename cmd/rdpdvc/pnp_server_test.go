package main

import (
	"strings"
	"testing"
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
