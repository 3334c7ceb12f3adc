package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// MS-RDPEPNP section 4 messages through `rdpdvc decode`, told channel and
// direction (and, for a reply, what it answers).
func TestDecodePNP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		message string
		field   string // a field name and value that must appear
	}{
		{"server version (4.1)", []string{"-as", "pnpdr", "-from", "server", "14000000 65000000 01000000 06000000 01000000"},
			"Server Version Message (2.2.1.2.1)", `"MinorVersion": 6`},
		{"client version (4.1)", []string{"-as", "pnpdr", "-from", "client", "14000000 65000000 01000000 06000000 01000000"},
			"Client Version Message (2.2.1.2.2)", `"MinorVersion": 6`},
		{"authenticated client (4.1)", []string{"-as", "pnpdr", "-from", "server", "08000000 67000000"},
			"Authenticated Client Message (2.2.1.2.3)", `"len": 8`},
		{"create file request (4.4)", []string{"-as", "fileredirector", "-from", "server", "00000000 04000000 04000000 000000c0 03000000 03000000 80000040"},
			"CreateFile Request Message (2.2.2.3.1)", `"DeviceId": 4`},
		{"create file reply (4.4)", []string{"-as", "fileredirector", "-from", "client", "-reply-to", "create", "00000000 00000000"},
			"CreateFile Reply Message (2.2.2.3.2)", `"Result": 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runArgs(t, append([]string{"decode"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var v struct {
				Message string
				Channel string
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			if v.Message != tc.message {
				t.Fatalf("message %q, want %q\n%s", v.Message, tc.message, out)
			}
			if !strings.Contains(out, tc.field) {
				t.Fatalf("output lacks %s:\n%s", tc.field, out)
			}
		})
	}
}

func TestDecodePNPNeedsDirectionAndReplyTo(t *testing.T) {
	if code, _, errs := runArgs(t, "decode", "-as", "pnpdr", "08000000 67000000"); code != 2 || !strings.Contains(errs, "-from") {
		t.Fatalf("no -from: exit %d %s", code, errs)
	}
	code, _, errs := runArgs(t, "decode", "-as", "fileredirector", "-from", "client", "00000000 00000000")
	if code != 1 || !strings.Contains(errs, "-reply-to") {
		t.Fatalf("reply without -reply-to: exit %d %s", code, errs)
	}
	// A truncated message names the message and the field.
	code, _, errs = runArgs(t, "decode", "-as", "pnpdr", "-from", "server", "14000000 65000000 01000000")
	if code != 1 || errs == "" {
		t.Fatalf("truncated: exit %d %s", code, errs)
	}
}
