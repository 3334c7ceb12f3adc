package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

func TestWindowsDefaultModeIsWTS(t *testing.T) {
	for _, c := range []struct {
		o    options
		want string
	}{
		{options{}, "wts"},
		{options{fileHandle: true}, "filehandle"},
		{options{listen: "127.0.0.1:1"}, "portable"},
	} {
		if got := pickMode(&c.o); got != c.want {
			t.Errorf("%+v: %s, want %s", c.o, got, c.want)
		}
	}
}

// Outside an RDP session (Wine has none, and the test wtsapi32.dll fails
// like a console session when no test pipe is named) both modes say so
// plainly and exit 1.
func TestWindowsOutsideSessionSaysSo(t *testing.T) {
	if os.Getenv("RDPDVC_WINE") != "1" {
		t.Skip("needs the test wtsapi32.dll: run scripts/wine/test-windows.sh")
	}
	os.Unsetenv("RDPDVC_WTS_PIPE")
	for _, args := range [][]string{{"-count", "1"}, {"/filehandle", "/count", "1"}} {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb)
		if code != 1 || !strings.Contains(out.String(), "not inside an RDP session") {
			t.Errorf("%q: exit %d\nstdout: %s\nstderr: %s", args, code, out.String(), errb.String())
		}
	}
}
