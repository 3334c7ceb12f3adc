package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/backend/wts/wtstest"
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
		if code != 1 || !strings.Contains(errb.String(), "not inside an RDP session") {
			t.Errorf("%q: exit %d\nstdout: %s\nstderr: %s", args, code, out.String(), errb.String())
		}
	}
}

// The program itself, in both Windows modes, against wtstest's Remote
// Desktop Services (the test wtsapi32.dll plus a Go peer that echoes in
// 1600-byte chunks): 5 pings of 5140-byte frames, all back intact.
func TestWindowsPingsThroughWTS(t *testing.T) {
	if os.Getenv("RDPDVC_WINE") != "1" {
		t.Skip("needs the test wtsapi32.dll: run scripts/wine/test-windows.sh")
	}
	for _, mode := range [][]string{nil, {"--filehandle"}} {
		p, err := wtstest.Listen(0, nil)
		if err != nil {
			t.Fatal(err)
		}
		args := append(append([]string(nil), mode...), "-count", "5", "-interval", "20ms", "-timeout", "2m")
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb)
		p.Close()
		if code != 0 || !strings.Contains(out.String(), "5 sent, 5 received, 0 lost, 0 mismatched") {
			t.Errorf("%q: exit %d\nstdout: %s\nstderr: %s", args, code, out.String(), errb.String())
		}
		if got, chunks := p.Received(); len(got) != 5 || len(chunks) != 5 || len(got[0]) != 5140 || len(chunks[0]) != 4 {
			t.Errorf("%q: the peer saw %d messages", args, len(got))
		}
	}
}
