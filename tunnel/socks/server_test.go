package socks

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/internal/testnet"
	"github.com/rdpdvc/rdpdvc/tunnel/allow"
)

// pair returns the two ends of a TCP connection on 127.0.0.1.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return client, server
}

type result struct {
	req Request
	err error
}

// serve runs Handshake on server in a goroutine.
func serve(server net.Conn, cfg Config) <-chan result {
	ch := make(chan result, 1)
	go func() {
		r, err := Handshake(server, cfg)
		ch <- result{r, err}
	}()
	return ch
}

func TestHandshakeNoAuth(t *testing.T) {
	c, s := pair(t)
	done := serve(s, Config{})
	// A client that sends its first data right behind the request: it must
	// stay in the connection for the caller.
	req, _ := AppendRequest(nil, "example.com", 443)
	if _, err := c.Write(append(append([]byte{5, 2, 0x02, 0x00}, req...), "early data"...)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2)
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, []byte{5, 0}) {
		t.Fatalf("method selection % x, %v", got, err)
	}
	res := <-done
	if res.err != nil || res.req != (Request{"example.com", 443, AddrDomain}) {
		t.Fatalf("Handshake = %+v, %v", res.req, res.err)
	}
	early := make([]byte, len("early data"))
	if _, err := io.ReadFull(s, early); err != nil || string(early) != "early data" {
		t.Fatalf("after the handshake: %q, %v", early, err)
	}
	if err := WriteReply(s, Succeeded, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	rep := make([]byte, 10)
	if _, err := io.ReadFull(c, rep); err != nil || string(rep) != "\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00" {
		t.Fatalf("reply % x, %v", rep, err)
	}
}

func TestHandshakeUserPass(t *testing.T) {
	cfg := Config{Users: map[string]string{"alice": "s3cret"}}
	c, s := pair(t)
	done := serve(s, cfg)
	go func() {
		_, _ = Connect(c, "10.1.2.3", 22, "alice", "s3cret", 0)
	}()
	if res := <-done; res.err != nil || res.req != (Request{"10.1.2.3", 22, AddrIPv4}) {
		t.Fatalf("Handshake = %+v, %v", res.req, res.err)
	}
	_ = WriteReply(s, Succeeded, netip.AddrPort{})

	for _, tc := range []struct{ user, pass string }{{"alice", "Nope-123"}, {"bob", "s3cret"}} {
		c, s := pair(t)
		done := serve(s, cfg)
		_, cerr := Connect(c, "10.1.2.3", 22, tc.user, tc.pass, 0)
		res := <-done
		if cerr == nil || res.err == nil {
			t.Errorf("%s/%s: client %v, server %v; want both to fail", tc.user, tc.pass, cerr, res.err)
		} else if bytes.Contains([]byte(res.err.Error()), []byte(tc.pass)) {
			t.Errorf("server error %q shows the password", res.err)
		}
	}
}

func TestHandshakeNoAcceptableMethod(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		methods []byte
	}{
		{Config{}, []byte{MethodUserPass}},
		{Config{Users: map[string]string{"a": "b"}}, []byte{MethodNoAuth}},
	} {
		c, s := pair(t)
		done := serve(s, tc.cfg)
		_, _ = c.Write(append([]byte{5, byte(len(tc.methods))}, tc.methods...))
		if res := <-done; res.err == nil {
			t.Errorf("methods % x accepted", tc.methods)
		}
		_ = s.Close()
		got, _ := io.ReadAll(c)
		if !bytes.Equal(got, []byte{5, MethodNoAcceptable}) {
			t.Errorf("methods % x: server sent % x, want 05 ff", tc.methods, got)
		}
	}
}

func TestHandshakeRefusedRequests(t *testing.T) {
	for _, tc := range []struct {
		req  string
		want Reply
	}{
		{"\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50", CommandNotSupported}, // BIND
		{"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00", CommandNotSupported}, // UDP ASSOCIATE
		{"\x05\x01\x00\x05\x00\x00", AddrTypeNotSupported},
		{"\x05\x01\x00\x03\x03a\x00b\x00\x50", GeneralFailure},
	} {
		c, s := pair(t)
		done := serve(s, Config{})
		_, _ = c.Write(append([]byte{5, 1, 0}, tc.req...))
		sel := make([]byte, 2)
		_, _ = io.ReadFull(c, sel)
		res := <-done
		_ = s.Close()
		rep, _ := io.ReadAll(c)
		code, _, _, err := ParseReply(rep)
		if res.err == nil || err != nil || code != tc.want {
			t.Errorf("request % x: Handshake %v; reply % x (%v, %v), want %v", tc.req, res.err, rep, code, err, tc.want)
		}
	}
}

func TestHandshakeTimesOutOnSilentClient(t *testing.T) {
	for _, sent := range []string{"", "\x05", "\x05\x01\x00\x05\x01\x00"} {
		c, s := pair(t)
		done := serve(s, Config{Timeout: 50 * time.Millisecond})
		_, _ = c.Write([]byte(sent))
		res := <-done
		if !errors.Is(res.err, os.ErrDeadlineExceeded) {
			t.Errorf("after % x: Handshake = %v, want a deadline error", sent, res.err)
		}
	}
}

func TestHandshakeClientGoesAway(t *testing.T) {
	c, s := pair(t)
	done := serve(s, Config{})
	_, _ = c.Write([]byte{5, 3, 0})
	_ = c.Close()
	res := <-done
	if res.err == nil || res.err.Error() != "socks: greeting: connection closed after 3 bytes" {
		t.Errorf("Handshake = %v", res.err)
	}
}

func TestReplyFor(t *testing.T) {
	// A real refused connect: a port that was just listening and is not.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	_, refused := net.Dial("tcp", addr)

	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	_, timedOut := (&net.Dialer{}).DialContext(ctx, "tcp", "192.0.2.1:9")

	// The errno tables of this OS, so that the test holds on Windows too.
	opErr := func(e error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", e)}
	}
	for _, tc := range []struct {
		err  error
		want Reply
	}{
		{nil, Succeeded},
		{refused, ConnectionRefused},
		{timedOut, HostUnreachable},
		{fmt.Errorf("tunnel: %w", &allow.DeniedError{Host: "x", Port: 1}), NotAllowed},
		{&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, HostUnreachable},
		{opErr(errConnRefused[0]), ConnectionRefused},
		{opErr(errNetUnreach[0]), NetworkUnreachable},
		{opErr(errHostUnreach[0]), HostUnreachable},
		{opErr(errTimedOut[0]), HostUnreachable},
		{opErr(syscall.EINVAL), GeneralFailure},
		{context.Canceled, GeneralFailure},
		{errors.New("something else"), GeneralFailure},
	} {
		if got := ReplyFor(tc.err); got != tc.want {
			t.Errorf("ReplyFor(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// proxy is the smallest SOCKS server there is: Handshake, dial, reply,
// copy. dial is net.Dial or allow.Rules.Dial.
func proxy(t *testing.T, cfg Config, dial func(ctx context.Context, host string, port uint16) (net.Conn, error)) string {
	t.Helper()
	return testnet.Serve(t, func(c net.Conn) {
		defer c.Close()
		req, err := Handshake(c, cfg)
		if err != nil {
			t.Logf("handshake: %v", err)
			return
		}
		out, err := dial(context.Background(), req.Host, req.Port)
		if err != nil {
			t.Logf("dial %s:%d: %v", req.Host, req.Port, err)
			_ = WriteReply(c, ReplyFor(err), netip.AddrPort{})
			return
		}
		defer out.Close()
		_ = WriteReply(c, Succeeded, netip.AddrPort{})
		go func() { _, _ = io.Copy(out, c); _ = out.(*net.TCPConn).CloseWrite() }()
		_, _ = io.Copy(c, out)
	}).Addr().String()
}

func netDial(ctx context.Context, host string, port uint16) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
}

// TestCurl fetches a file through the handshake with curl, the client
// users will have, byte for byte: names sent unresolved (--socks5-hostname),
// addresses (--socks5), and username/password.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed (apt-get install -y curl): the curl interoperability test did not run")
	}
	body := make([]byte, 1<<20)
	_, _ = rand.Read(body)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	defer web.Close()
	webPort := web.Listener.Addr().(*net.TCPAddr).Port

	open := proxy(t, Config{}, netDial)
	auth := proxy(t, Config{Users: map[string]string{"alice": "s3cret"}}, netDial)
	rules, _ := allow.Parse([]string{"127.0.0.1:" + strconv.Itoa(webPort)})
	rules.Lookup = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	ruled := proxy(t, Config{}, rules.Dial)

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"socks5-hostname", []string{"--socks5-hostname", open, fmt.Sprintf("http://localhost:%d/f", webPort)}},
		{"socks5", []string{"--socks5", open, fmt.Sprintf("http://127.0.0.1:%d/f", webPort)}},
		{"proxy-user", []string{"--socks5-hostname", auth, "--proxy-user", "alice:s3cret", fmt.Sprintf("http://localhost:%d/f", webPort)}},
		{"allow rules", []string{"--socks5-hostname", ruled, fmt.Sprintf("http://somename.test:%d/f", webPort)}},
	} {
		out, err := exec.Command(curl, append([]string{"-sS", "--max-time", "20"}, tc.args...)...).Output()
		if err != nil {
			t.Errorf("%s: curl: %v (%s)", tc.name, err, stderr(err))
			continue
		}
		if !bytes.Equal(out, body) {
			t.Errorf("%s: curl got %d bytes, not the %d sent", tc.name, len(out), len(body))
		}
	}

	// Refusals reach curl: the auth failure, and NotAllowed as REP 2.
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"wrong password", "rejected by the SOCKS5 server", []string{"--socks5-hostname", auth, "--proxy-user", "alice:nope", fmt.Sprintf("http://localhost:%d/f", webPort)}},
		{"not allowed", "SOCKS5 connection to somename.test. (2)", []string{"--socks5-hostname", ruled, "http://somename.test:1/f"}},
	} {
		_, err := exec.Command(curl, append([]string{"-sS", "--max-time", "20"}, tc.args...)...).Output()
		if msg := stderr(err); err == nil || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: curl %v %q, want a failure saying %q", tc.name, err, msg, tc.want)
		}
	}
}

func stderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
