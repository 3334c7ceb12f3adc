package main

import (
	"strings"
	"testing"
)

func TestPNPDemo(t *testing.T) {
	code, out, errs := runArgs(t, "pnp-demo")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"PNP: device-arrived id=1", "PNP: read back the same bytes", `PNP: IOCTL echo code=0x00222000 out="echo this"`,
		"PNP: slow IOCTL cancelled", "ERROR_OPERATION_ABORTED", `PNP: custom event guid={7D3E4C1A-5B2F-4E8D-9A61-0C2B3D4E5F60} device=2 data="hello from the device"`,
		"PNP: device-removed id=1", "PNP: demo complete",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, "ERROR ") || strings.Contains(errs, "WARN") {
		t.Errorf("demo logged problems:\n%s", errs)
	}
	if out != "" {
		t.Errorf("log lines on stdout:\n%s", out)
	}
}
