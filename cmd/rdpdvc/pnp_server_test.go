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
