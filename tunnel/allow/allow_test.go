package allow

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"*", "*"},
		{"example.com", "example.com:*"},
		{"Example.COM.:443", "example.com:443"},
		{"*.corp.example:1-1024", "*.corp.example:1-1024"},
		{"10.1.2.3/8:22", "10.0.0.0/8:22"},
		{"127.0.0.1", "127.0.0.1:*"},
		{"127.0.0.1:*", "127.0.0.1:*"},
		{"::1", "[::1]:*"},
		{"[::1]:22", "[::1]:22"},
		{"[fd00::/8]:1-1024", "[fd00::/8]:1-1024"},
		{"fd00::/8", "[fd00::/8]:*"},
		{"::ffff:10.0.0.1", "10.0.0.1:*"},
		{"host_1:80-80", "host_1:80"},
		{"example.com:80,443,8000-8999", "example.com:80 example.com:443 example.com:8000-8999"},
		{"[2001:db8::]/32", "[2001:db8::/32]:*"},
		{"[2001:db8::1]/32:443", "[2001:db8::/32]:443"},
	} {
		r, err := Parse([]string{tc.in})
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := r.String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		// The canonical form parses back to itself.
		if r2, err := Parse(strings.Fields(r.String())); err != nil || r2.String() != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %q", r.String(), r2, err, tc.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, in := range []string{
		"", ":22", "host:", "host:0", "host:65536", "host:22-21", "host:+22", "host:0x16",
		"host:1,", "host:,2", "host:1,,2", "[::1]/", "[::1]/129", "[::1]/8/8", "[10.0.0.0]/8", "host: 22", "[::1", "[::1]22", "[10.0.0.1]:22", "[]:22", "::1::2",
		"10.0.0.0/33", "fd00::/129", "[fd00::/8:22]", "ex*ample.com", "*.", "*", "a..b",
		"fe80::1%eth0", "::ffff:10.0.0.0/104", strings.Repeat("a", 64) + ".com",
		"-", "host:1-", "host:-1", "host:*-*", strings.Repeat("a.", 200),
	} {
		if in == "*" {
			continue // the one wildcard that is valid
		}
		if r, err := Parse([]string{in}); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, r)
		} else if !strings.HasPrefix(err.Error(), "allow: rule") {
			t.Errorf("Parse(%q): error %q does not start with \"allow: rule\"", in, err)
		}
	}
}

func TestMatch(t *testing.T) {
	rules := []string{
		"db.example.com:5432", "*.corp.example:443", "10.0.0.0/8:22", "192.168.1.7",
		"[fd00::/8]:8000-8080", "::1", "files.example.com",
	}
	r, err := Parse(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host  string
		port  uint16
		addrs []string // what host resolves to; for a literal, itself
		ok    bool
	}{
		{"db.example.com", 5432, []string{"203.0.113.1"}, true},
		{"DB.Example.Com.", 5432, []string{"203.0.113.1"}, true},
		{"db.example.com", 5433, []string{"203.0.113.1"}, false},
		{"x.db.example.com", 5432, []string{"203.0.113.1"}, false},
		{"a.corp.example", 443, []string{"203.0.113.2"}, true},
		{"a.b.corp.example", 443, []string{"203.0.113.2"}, true},
		{"corp.example", 443, []string{"203.0.113.2"}, false},
		{"xcorp.example", 443, []string{"203.0.113.2"}, false},
		{"a.corp.example", 80, []string{"203.0.113.2"}, false},
		{"10.9.8.7", 22, []string{"10.9.8.7"}, true},
		{"10.9.8.7", 23, []string{"10.9.8.7"}, false},
		{"11.0.0.1", 22, []string{"11.0.0.1"}, false},
		{"::ffff:10.9.8.7", 22, []string{"::ffff:10.9.8.7"}, true},
		{"jump.internal", 22, []string{"10.1.1.1"}, true}, // a name allowed by its address
		{"192.168.1.7", 1, []string{"192.168.1.7"}, true},
		{"192.168.1.7", 65535, []string{"192.168.1.7"}, true},
		{"192.168.1.8", 80, []string{"192.168.1.8"}, false},
		{"fd12::1", 8000, []string{"fd12::1"}, true},
		{"fd12::1", 8080, []string{"fd12::1"}, true},
		{"fd12::1", 8081, []string{"fd12::1"}, false},
		{"fe80::1", 8000, []string{"fe80::1"}, false},
		{"::1", 9, []string{"::1"}, true},
		{"files.example.com", 1, []string{"198.51.100.1"}, true},
		// A name rule matches the name only, never an IP literal that
		// happens to be what the name resolves to.
		{"198.51.100.1", 80, []string{"198.51.100.1"}, false},
	} {
		addrs := make([]netip.Addr, len(tc.addrs))
		for i, a := range tc.addrs {
			addrs[i] = netip.MustParseAddr(a)
		}
		got, err := r.Check(tc.host, tc.port, addrs)
		if ok := err == nil; ok != tc.ok {
			t.Errorf("Check(%s:%d → %v) = %v, %v; want allowed=%v", tc.host, tc.port, tc.addrs, got, err, tc.ok)
			continue
		}
		if err != nil && !errors.Is(err, ErrDenied) {
			t.Errorf("Check(%s:%d): %v is not ErrDenied", tc.host, tc.port, err)
		}
	}
}

func TestCheckKeepsOnlyAllowedAddresses(t *testing.T) {
	r, _ := Parse([]string{"10.0.0.0/8"})
	got, err := r.Check("mixed.example", 80, []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("192.0.2.2"),
	})
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("10.0.0.5") {
		t.Fatalf("Check = %v, %v; want [10.0.0.5]", got, err)
	}
}

func TestNothingIsAllowedByDefault(t *testing.T) {
	for _, r := range []*Rules{nil, {}, mustParse(t)} {
		if _, err := r.Check("127.0.0.1", 80, []netip.Addr{netip.MustParseAddr("127.0.0.1")}); !errors.Is(err, ErrDenied) {
			t.Errorf("%v: Check = %v, want ErrDenied", r, err)
		}
		if r.AllowsAll() {
			t.Errorf("%v: AllowsAll", r)
		}
	}
	if !mustParse(t, "127.0.0.1", "*").AllowsAll() {
		t.Error("* does not AllowsAll")
	}
	if mustParse(t, "0.0.0.0/0", "::/0").AllowsAll() {
		t.Error("0.0.0.0/0 ::/0 AllowsAll; only * should")
	}
}

func mustParse(t *testing.T, specs ...string) *Rules {
	t.Helper()
	r, err := Parse(specs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// listener returns a loopback TCP listener that accepts and closes, and its port.
func listener(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hi"))
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func TestDialDialsOnlyCheckedAddresses(t *testing.T) {
	port := listener(t)
	var lookups []string
	r := mustParse(t, "127.0.0.1:"+strconv.Itoa(int(port)))
	r.Lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		lookups = append(lookups, host)
		switch host {
		case "good.test":
			// The disallowed address first: Dial must skip it, not try it.
			return []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("127.0.0.1")}, nil
		case "rebind.test":
			return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	c, err := r.Dial(context.Background(), "good.test", port)
	if err != nil {
		t.Fatalf("Dial(good.test): %v", err)
	}
	b, _ := io.ReadAll(c)
	_ = c.Close()
	if string(b) != "hi" {
		t.Fatalf("read %q, want hi", b)
	}

	_, err = r.Dial(context.Background(), "rebind.test", port)
	var de *DeniedError
	if !errors.As(err, &de) || !errors.Is(err, ErrDenied) {
		t.Fatalf("Dial(rebind.test) = %v, want a *DeniedError", err)
	}
	if de.Host != "rebind.test" || de.Port != port || de.Addr != netip.MustParseAddr("127.0.0.2") || de.Rule != r.String() {
		t.Errorf("DeniedError = %+v", de)
	}
	if !strings.Contains(err.Error(), "127.0.0.2") || !strings.Contains(err.Error(), "rebind.test") {
		t.Errorf("error %q names neither the host nor the address", err)
	}

	// Only an address rule could have allowed it: a name that does not
	// resolve is refused as one that resolves elsewhere, so that the
	// session cannot map the client's DNS by the reply codes.
	_, err = r.Dial(context.Background(), "missing.test", port)
	if !errors.Is(err, ErrDenied) {
		t.Errorf("Dial(missing.test) = %v, want ErrDenied (as for rebind.test)", err)
	}
	if want := []string{"good.test", "rebind.test", "missing.test"}; strings.Join(lookups, " ") != strings.Join(want, " ") {
		t.Errorf("lookups %v, want %v", lookups, want)
	}
}

func TestDialRefusesWithoutLookupWhenNoRuleCanMatch(t *testing.T) {
	r := mustParse(t, "allowed.test:80", "10.0.0.0/8:22")
	r.Lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		t.Errorf("Lookup(%q): a name no rule can allow must not be resolved", host)
		return nil, errors.New("unexpected")
	}
	for _, host := range []string{"other.test", "allowed.test"} {
		if _, err := r.Dial(context.Background(), host, 443); !errors.Is(err, ErrDenied) {
			t.Errorf("Dial(%s:443) = %v, want ErrDenied", host, err)
		}
	}
	if _, err := r.Dial(context.Background(), "", 80); !errors.Is(err, ErrDenied) {
		t.Errorf("Dial of an empty host = %v, want ErrDenied", err)
	}
}

func TestDialLiteralIsNotResolved(t *testing.T) {
	port := listener(t)
	r := mustParse(t, "127.0.0.0/8")
	r.Lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		t.Errorf("Lookup(%q) of an IP literal", host)
		return nil, errors.New("unexpected")
	}
	c, err := r.Dial(context.Background(), "127.0.0.1", port)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if _, err := r.Dial(context.Background(), "::1", port); !errors.Is(err, ErrDenied) {
		t.Errorf("Dial(::1) = %v, want ErrDenied", err)
	}
}

func TestListenRules(t *testing.T) {
	l, err := ParseListen([]string{"127.0.0.1:8080", "[::1]:8080", "LocalHost:9000"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[0::1]:8080": true, "localhost:9000": true, "localhost.:9000": true,
		"127.0.0.1:8081": false, "0.0.0.0:8080": false, "127.0.0.1:0": false, "localhost:8080": false,
		"127.0.0.1": false, "": false, "[::ffff:127.0.0.1]:8080": true,
	} {
		if got := l.Allowed(addr); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", addr, got, want)
		}
	}
	if got, want := l.String(), "127.0.0.1:8080 [::1]:8080 localhost:9000"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, bad := range []string{"127.0.0.1:0", "*:80", "127.0.0.1", ":80", "0.0.0.0:x", "h*st:80"} {
		if _, err := ParseListen([]string{bad}); err == nil {
			t.Errorf("ParseListen(%q) accepted", bad)
		}
	}
	var none *ListenRules
	if none.Allowed("127.0.0.1:80") {
		t.Error("nil ListenRules allowed an address")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"*", "example.com:443", "*.corp:1-1024", "10.0.0.0/8", "[fd00::/8]:22", "::1", "[::1]:*", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse([]string{s})
		if err != nil {
			return
		}
		// What parses has a canonical form that parses to itself.
		c := r.String()
		r2, err := Parse(strings.Fields(c))
		if err != nil {
			t.Fatalf("Parse(%q) accepted, its String %q does not parse: %v", s, c, err)
		}
		if r2.String() != c {
			t.Fatalf("Parse(%q).String() = %q, which parses to %q", s, c, r2.String())
		}
		_, _ = r.Check("example.com", 443, []netip.Addr{netip.MustParseAddr("10.0.0.1")})
		if l, err := ParseListen([]string{s}); err == nil {
			_ = l.String()
		}
	})
}

func TestDialFallsBackToTheNextAllowedAddress(t *testing.T) {
	port := listener(t) // on 127.0.0.1 only: 127.0.0.2 refuses
	r := mustParse(t, "127.0.0.0/8")
	r.Lookup = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := r.Dial(ctx, "two.test", port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.1" {
		t.Errorf("connected to %s, want 127.0.0.1", got)
	}
}

// A name a name rule allows gets the resolver's own error when it does
// not resolve: the user trusts that name, and the error tells them why.
func TestDialNameRuleGetsTheResolversError(t *testing.T) {
	r := mustParse(t, "missing.test")
	r.Lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	_, err := r.Dial(context.Background(), "missing.test", 80)
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || errors.Is(err, ErrDenied) {
		t.Errorf("Dial(missing.test) = %v, want the resolver's error", err)
	}
}

// 0.0.0.0 and :: reach this machine's own services: they are matched as
// the loopback addresses, so only a rule with loopback lets them through.
func TestUnspecifiedIsLoopback(t *testing.T) {
	port := listener(t)
	if _, err := mustParse(t, "0.0.0.0/8", "::/128").Dial(context.Background(), "0.0.0.0", port); !errors.Is(err, ErrDenied) {
		t.Errorf("Dial(0.0.0.0) under 0.0.0.0/8 = %v, want ErrDenied: it reaches loopback", err)
	}
	if _, err := mustParse(t, "::/128").Dial(context.Background(), "::", port); !errors.Is(err, ErrDenied) {
		t.Errorf("Dial(::) under ::/128 = %v, want ErrDenied", err)
	}
	c, err := mustParse(t, "127.0.0.0/8").Dial(context.Background(), "0.0.0.0", port)
	if err != nil {
		t.Fatalf("Dial(0.0.0.0) under 127.0.0.0/8 = %v, want allowed (it is loopback)", err)
	}
	c.Close()
}

// Names from the session are plain ASCII DNS names: Unicode that folds
// to ASCII (KELVIN SIGN to k) and empty labels match no rule, and are
// refused without a lookup.
func TestSessionNamesAreASCII(t *testing.T) {
	r := mustParse(t, "korp.test", "*.example.test", "10.0.0.0/8")
	r.Lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		t.Errorf("Lookup(%q) of a name that is not a DNS name", host)
		return nil, errors.New("unexpected")
	}
	for _, host := range []string{"\u212Aorp.test", "..example.test", "a..example.test", "a b.example.test"} {
		if _, err := r.Dial(context.Background(), host, 80); !errors.Is(err, ErrDenied) {
			t.Errorf("Dial(%q) = %v, want ErrDenied", host, err)
		}
	}
}
