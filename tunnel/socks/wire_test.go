package socks

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseGreeting(t *testing.T) {
	g, n, err := ParseGreeting([]byte{0x05, 0x02, 0x00, 0x02, 0xAA})
	if err != nil || n != 4 || !bytes.Equal(g.Methods, []byte{0x00, 0x02}) {
		t.Fatalf("ParseGreeting = %v, %d, %v", g, n, err)
	}
	if !g.Offers(MethodUserPass) || g.Offers(0x01) {
		t.Errorf("Offers wrong for %v", g.Methods)
	}
	for in, want := range map[string]string{
		"\x04\x01\x00": "socks: greeting: VER 0x04 is not 5",
		"\x04":         "socks: greeting: VER 0x04 is not 5",
		"\x05\x00":     "socks: greeting: NMETHODS 0",
	} {
		if _, _, err := ParseGreeting([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("ParseGreeting(% x) = %v, want %q", in, err, want)
		}
	}
}

func TestParseAuth(t *testing.T) {
	in := []byte("\x01\x05alice\x06s3cret")
	a, n, err := ParseAuth(in)
	if err != nil || n != len(in) || a != (Auth{"alice", "s3cret"}) {
		t.Fatalf("ParseAuth = %+v, %d, %v", a, n, err)
	}
	for in, want := range map[string]string{
		"\x05\x01a\x01b": "socks: auth: VER 0x05 is not 1",
		"\x01\x00\x01b":  "socks: auth: ULEN 0",
		"\x01\x01a\x00":  "socks: auth: PLEN 0",
	} {
		if _, _, err := ParseAuth([]byte(in)); err == nil || err.Error() != want {
			t.Errorf("ParseAuth(% x) = %v, want %q", in, err, want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Request
	}{
		{"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50", Request{"127.0.0.1", 80, AddrIPv4}},
		{"\x05\x01\x00\x04" + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" + "\x01\xbb", Request{"::1", 443, AddrIPv6}},
		{"\x05\x01\x00\x03\x0bexample.com\x00\x16", Request{"example.com", 22, AddrDomain}},
		{"\x05\x01\x00\x03\x0bexample.com\x00\x16trailing", Request{"example.com", 22, AddrDomain}},
	} {
		r, n, err := ParseRequest([]byte(tc.in))
		if err != nil || r != tc.want || n != len(strings.TrimSuffix(tc.in, "trailing")) {
			t.Errorf("ParseRequest(% x) = %+v, %d, %v; want %+v", tc.in, r, n, err, tc.want)
			continue
		}
		// Golden bytes re-encoded byte for byte.
		if b, err := AppendRequest(nil, r.Host, r.Port); err != nil || !bytes.Equal(b, []byte(tc.in[:n])) {
			t.Errorf("AppendRequest(%s, %d) = % x, %v; want % x", r.Host, r.Port, b, err, tc.in[:n])
		}
	}
	long := strings.Repeat("a", 255)
	if r, _, err := ParseRequest([]byte("\x05\x01\x00\x03\xff" + long + "\x00\x01")); err != nil || r.Host != long {
		t.Errorf("255-byte name: %v", err)
	}
	for _, tc := range []struct {
		in    string
		want  string
		reply Reply
	}{
		{"\x04\x01", "socks: request: VER 0x04 is not 5", GeneralFailure},
		{"\x05\x02", "socks: request: CMD 0x02 is not CONNECT", CommandNotSupported},
		{"\x05\x03\x00\x01", "socks: request: CMD 0x03 is not CONNECT", CommandNotSupported},
		{"\x05\x01\x00\x05\x00\x00", "socks: request: ATYP 0x05 unknown", AddrTypeNotSupported},
		{"\x05\x01\x00\x03\x00\x00\x50", "socks: request: DST.ADDR domain name of length 0", GeneralFailure},
		{"\x05\x01\x00\x03\x03a\x00b\x00\x50", "socks: request: DST.ADDR domain name has NUL at byte 1", GeneralFailure},
		{"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x00", "socks: request: DST.PORT 0", GeneralFailure},
	} {
		_, _, err := ParseRequest([]byte(tc.in))
		var se *Error
		if !errors.As(err, &se) || err.Error() != tc.want || se.Reply != tc.reply {
			t.Errorf("ParseRequest(% x) = %v, want %q with reply %v", tc.in, err, tc.want, tc.reply)
		}
	}
}

// TestParseShortPrefixes checks the reading contract on every prefix of
// valid messages: ErrShort with an n that is beyond the prefix and not
// beyond the message, so a reader that reads up to n never reads past it.
func TestParseShortPrefixes(t *testing.T) {
	check := func(name string, msg []byte, parse func([]byte) (int, error)) {
		for i := range len(msg) {
			n, err := parse(msg[:i])
			if !errors.Is(err, ErrShort) || n <= i || n > len(msg) {
				t.Errorf("%s prefix of %d/%d bytes: n=%d, %v; want ErrShort and %d < n <= %d", name, i, len(msg), n, err, i, len(msg))
			}
		}
		if n, err := parse(msg); err != nil || n != len(msg) {
			t.Errorf("%s whole: n=%d, %v", name, n, err)
		}
	}
	check("greeting", []byte{5, 3, 0, 1, 2}, func(b []byte) (int, error) { _, n, err := ParseGreeting(b); return n, err })
	check("auth", []byte("\x01\x03bob\x02pw"), func(b []byte) (int, error) { _, n, err := ParseAuth(b); return n, err })
	for _, host := range []string{"10.1.2.3", "2001:db8::1", "example.org"} {
		req, _ := AppendRequest(nil, host, 8080)
		check("request "+host, req, func(b []byte) (int, error) { _, n, err := ParseRequest(b); return n, err })
		rep := AppendReply(nil, HostUnreachable, netip.AddrPortFrom(netip.MustParseAddr("::1"), 1))
		check("reply", rep, func(b []byte) (int, error) { _, _, n, err := ParseReply(b); return n, err })
	}
}

func TestAppendReply(t *testing.T) {
	for _, tc := range []struct {
		code  Reply
		bound netip.AddrPort
		want  string
	}{
		{Succeeded, netip.AddrPort{}, "\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"},
		{ConnectionRefused, netip.MustParseAddrPort("192.0.2.1:1080"), "\x05\x05\x00\x01\xc0\x00\x02\x01\x04\x38"},
		{NotAllowed, netip.MustParseAddrPort("[::ffff:192.0.2.1]:1"), "\x05\x02\x00\x01\xc0\x00\x02\x01\x00\x01"},
		{GeneralFailure, netip.MustParseAddrPort("[2001:db8::2]:2"), "\x05\x01\x00\x04\x20\x01\x0d\xb8" + strings.Repeat("\x00", 11) + "\x02\x00\x02"},
	} {
		got := AppendReply(nil, tc.code, tc.bound)
		if string(got) != tc.want {
			t.Errorf("AppendReply(%v, %v) = % x, want % x", tc.code, tc.bound, got, tc.want)
		}
		code, bound, n, err := ParseReply(got)
		if err != nil || code != tc.code || n != len(got) || bound.Port() != tc.bound.Port() {
			t.Errorf("ParseReply(% x) = %v, %v, %d, %v", got, code, bound, n, err)
		}
	}
	for r := Succeeded; r <= AddrTypeNotSupported; r++ {
		if strings.HasPrefix(r.String(), "reply 0x") {
			t.Errorf("Reply %d has no name", r)
		}
	}
}

func FuzzParseGreeting(f *testing.F) {
	f.Add([]byte{5, 1, 0})
	f.Add([]byte{5, 2, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, n, err := ParseGreeting(b)
		checkN(t, b, n, err, MaxGreeting)
		if err == nil && (len(g.Methods) == 0 || n != 2+len(g.Methods)) {
			t.Fatalf("% x: %d methods in %d bytes", b, len(g.Methods), n)
		}
	})
}

func FuzzParseAuth(f *testing.F) {
	f.Add([]byte("\x01\x05alice\x06s3cret"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, n, err := ParseAuth(b)
		checkN(t, b, n, err, MaxAuth)
		if err == nil && n != 3+len(a.User)+len(a.Password) {
			t.Fatalf("% x: %+v in %d bytes", b, a, n)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	for _, h := range []string{"127.0.0.1", "::1", "example.com"} {
		b, _ := AppendRequest(nil, h, 443)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := ParseRequest(b)
		checkN(t, b, n, err, MaxRequest)
		if err != nil {
			return
		}
		if r.Port == 0 || r.Host == "" || strings.IndexByte(r.Host, 0) >= 0 {
			t.Fatalf("% x: accepted %+v", b, r)
		}
		// Addresses re-encode to the same bytes, RSV aside.
		if r.Kind != AddrDomain {
			again, err := AppendRequest(nil, r.Host, r.Port)
			if err != nil || !bytes.Equal(again[3:], b[3:n]) {
				t.Fatalf("% x: %+v re-encodes as % x, %v", b[:n], r, again, err)
			}
		}
	})
}

func FuzzParseReply(f *testing.F) {
	f.Add(AppendReply(nil, Succeeded, netip.AddrPort{}))
	f.Add([]byte("\x05\x00\x00\x03\x04abcd\x00\x50"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, n, err := ParseReply(b)
		checkN(t, b, n, err, MaxReply)
	})
}

// checkN is the contract every Parse function keeps: ErrShort asks for more
// than b but no more than the message's ceiling; success uses no more than b.
func checkN(t *testing.T, b []byte, n int, err error, max int) {
	t.Helper()
	switch {
	case errors.Is(err, ErrShort):
		if n <= len(b) || n > max {
			t.Fatalf("% x: ErrShort with n=%d", b, n)
		}
	case err == nil:
		if n < 1 || n > len(b) || n > max {
			t.Fatalf("% x: n=%d", b, n)
		}
	default:
		var se *Error
		if !errors.As(err, &se) {
			t.Fatalf("% x: error %v is not an *Error", b, err)
		}
	}
}
