package bridge

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestFrameGolden: the Message framing header, byte for byte.
func TestFrameGolden(t *testing.T) {
	got := frame([]byte("hi!"))
	want := []byte{0x03, 0x00, 0x00, 0x00, 'h', 'i', '!'}
	if !bytes.Equal(got, want) {
		t.Fatalf("frame(hi!) = % x, want % x", got, want)
	}
	if n, err := Framer(want); n != 7 || err != nil {
		t.Fatalf("Framer = %d, %v", n, err)
	}
	if n, err := Framer(want[:3]); n != 0 || err != nil {
		t.Fatalf("Framer of 3 bytes = %d, %v; want 0 (more needed)", n, err)
	}
	if p, err := CheckFrame(want); err != nil || string(p) != "hi!" {
		t.Fatalf("CheckFrame = %q, %v", p, err)
	}
	for _, bad := range [][]byte{want[:6], append(want, 0), {1, 2}} {
		if _, err := CheckFrame(bad); err == nil {
			t.Errorf("CheckFrame(% x) succeeded", bad)
		}
	}
	// The ceiling: MaxMessage is allowed, one more is not.
	if _, err := Framer(AppendHeader(nil, MaxMessage)); err != nil {
		t.Fatal(err)
	}
	if _, err := Framer([]byte{0x01, 0x00, 0x10, 0x00}); err == nil || !strings.Contains(err.Error(), "length 1048577 is over the 1048576-byte ceiling") {
		t.Fatalf("Framer over the ceiling: %v", err)
	}
}

// FuzzReadMessages: the Message framing decoder on any bytes from a
// socket: it never panics or allocates past the ceiling, every message it
// passes on is one whole frame that re-encodes to the input's bytes, and
// it ends cleanly only at a frame boundary.
func FuzzReadMessages(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 0, 0, 0, 'h', 'i', '!', 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{1, 0, 0x10, 0})
	f.Add([]byte{5, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out []byte
		err := readMessages(bytes.NewReader(in), Message, func(m []byte) error {
			if p, err := CheckFrame(m); err != nil || len(p) > MaxMessage {
				t.Fatalf("passed on a message that is not one frame: %v", err)
			}
			if n, err := Framer(m); err != nil || n != len(m) {
				t.Fatalf("Framer on a passed message: %d, %v; want %d", n, err, len(m))
			}
			out = append(out, m...)
			return nil
		})
		if !bytes.HasPrefix(in, out) {
			t.Fatal("the messages are not the input's bytes in order")
		}
		if errors.Is(err, errHalf) != (len(out) == len(in)) {
			t.Fatalf("clean end %v after %d of %d bytes: %v", errors.Is(err, errHalf), len(out), len(in), err)
		}
	})
}

func TestParseSpec(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"my::chan=unix:/run/user/1000/b.sock", "my::chan=stream:unix:/run/user/1000/b.sock"},
		{"x=message:unix:/tmp/a:b", "x=message:unix:/tmp/a:b"},
		{"x=stream:tcp:127.0.0.1:9000", "x=stream:tcp:127.0.0.1:9000"},
		{"x=tcp:[::1]:9000", "x=stream:tcp:[::1]:9000"},
		{"x=message:tcp:localhost:1", "x=message:tcp:localhost:1"},
	} {
		s, err := ParseSpec(c.in)
		if err != nil || s.String() != c.want {
			t.Errorf("ParseSpec(%q) = %v, %v; want %s", c.in, s, err, c.want)
		}
	}
	for _, bad := range []string{"", "x", "=unix:/a", "x=", "x=unix:", "x=message:", "x=pipe:foo", "x=tcp:9000", "x=tcp:host:", "x=message:udp:1.2.3.4:5", "x=unix:/a\x00b"} {
		if s, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) = %v, want an error", bad, s)
		}
	}
	if _, err := ParseFraming("Stream"); err == nil {
		t.Error("ParseFraming is case-insensitive")
	}
}

// FuzzParseSpec: any plugin argument either fails or parses to a Spec
// whose canonical form parses back to itself.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"a=unix:/x", "a=message:tcp:127.0.0.1:9", "a=stream:unix:message:x", "=", "a=tcp:[::1]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSpec(in)
		if err != nil {
			return
		}
		again, err := ParseSpec(s.String())
		if err != nil || again != s {
			t.Fatalf("%q parsed to %v, whose form %q parses to %v, %v", in, s, s.String(), again, err)
		}
	})
}
