package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/tunnel/socks"
)

// waitLine polls b until a line starts with prefix and returns its rest.
func waitLine(t *testing.T, b *pcSyncBuffer, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(b.String(), "\n") {
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return rest
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no line %q in:\n%s", prefix, b.String())
	return ""
}

// socksGet fetches url through the SOCKS5 proxy at proxy, the target
// named by host (resolved on the client side).
func socksGet(proxy, user, pass, url string) ([]byte, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := net.Dial("tcp", proxy)
		if err != nil {
			return nil, err
		}
		host, ps, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(ps)
		if _, err := socks.Connect(c, host, uint16(port), user, pass, 0); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// TestTunnelCommands runs rdpdvc tunnel and rdpdvc tunnel-client over the
// portable transport: an HTTP GET through the SOCKS5 proxy and through a
// forward, byte for byte; a target the rules refuse gets reply 2, a
// closed port reply 5, and the tunnel goes on; a reverse forward works
// only where -allow-listen allowed it.
func TestTunnelCommands(t *testing.T) {
	body := make([]byte, 1<<20+3)
	rand.Read(body)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer hs.Close()
	_, hport, _ := net.SplitHostPort(hs.Listener.Addr().String())
	echoLn, err := net.Listen("tcp", "127.0.0.1:0") // the reverse forward's target, on the server's side
	if err != nil {
		t.Fatal(err)
	}
	defer echoLn.Close()
	go func() {
		for {
			c, err := echoLn.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	revLn, _ := net.Listen("tcp", "127.0.0.1:0")
	revAddr := revLn.Addr().String()
	revLn.Close()
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("s3cret\n"), 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var sOut, sErr, cOut, cErr pcSyncBuffer
	sDone, cDone := make(chan int, 1), make(chan int, 1)
	go func() {
		sDone <- run(ctx, []string{"tunnel", "-listen", "127.0.0.1:0", "-socks", "0", "-socks-user", "u", "-socks-pass-file", pass,
			"-forward", "127.0.0.1:0=127.0.0.1:" + hport, "-reverse", revAddr + "=" + echoLn.Addr().String(),
			"-reverse", "127.0.0.1:1=" + echoLn.Addr().String()}, &sOut, &sErr)
	}()
	taddr := waitLine(t, &sOut, "tunnel ")
	go func() {
		cDone <- run(ctx, []string{"tunnel-client", "-connect", taddr, "-allow", "127.0.0.1", "-allow-listen", revAddr}, &cOut, &cErr)
	}()
	proxy := waitLine(t, &sOut, "socks5 ")
	fwd := strings.Fields(waitLine(t, &sOut, "forward "))[0]
	waitLine(t, &sOut, "reverse "+revAddr+" ")

	got, err := socksGet(proxy, "u", "s3cret", "http://localhost:"+hport+"/file") // a name, resolved on the client side
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("GET through SOCKS5: %d bytes of %d, %v", len(got), len(body), err)
	}
	var re *socks.ReplyError
	if _, err := socksGet(proxy, "u", "s3cret", "http://127.0.0.2:"+hport+"/"); !errors.As(err, &re) || re.Reply != socks.NotAllowed {
		t.Fatalf("GET of a target no rule allows: %v, want reply 2", err)
	}
	if !strings.Contains(cErr.String(), "127.0.0.2") {
		t.Errorf("the refusal is not logged on the client:\n%s", cErr.String())
	}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	cport := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	if _, err := socksGet(proxy, "u", "s3cret", "http://127.0.0.1:"+strconv.Itoa(cport)+"/"); !errors.As(err, &re) || re.Reply != socks.ConnectionRefused {
		t.Fatalf("GET of a closed port: %v, want reply 5", err)
	}
	if _, err := socksGet(proxy, "u", "wrong", "http://127.0.0.1:"+hport+"/"); err == nil {
		t.Fatal("a wrong password got through")
	}
	resp, err := http.Get("http://" + fwd + "/file")
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("GET through -forward: %d bytes of %d, %v", len(got), len(body), err)
	}
	// The reverse forward: a program on the client's side reaches the
	// echo target on the server's side.
	c, err := net.Dial("tcp", revAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("through the reverse forward"))
	c.(*net.TCPConn).CloseWrite()
	echoed, _ := io.ReadAll(c)
	c.Close()
	if string(echoed) != "through the reverse forward" {
		t.Fatalf("reverse forward echoed %q", echoed)
	}
	if !strings.Contains(sErr.String(), "reverse forward refused") {
		t.Errorf("the reverse forward the client did not allow is not reported:\n%s", sErr.String())
	}
	cancel()
	if code := <-cDone; code != 0 {
		t.Errorf("tunnel-client exit %d\n%s", code, cErr.String())
	}
	if code := <-sDone; code != 0 {
		t.Errorf("tunnel exit %d\n%s", code, sErr.String())
	}
}

func TestTunnelUsage(t *testing.T) {
	for _, args := range [][]string{
		{"tunnel"},
		{"tunnel", "-socks", "0.0.0.0:1080"},
		{"tunnel", "-forward", "127.0.0.1:1"},
		{"tunnel", "-socks", "127.0.0.1:0", "-socks-user", "u"},
		{"tunnel", "-socks", "127.0.0.1:0", "-xrdp", "-listen", "127.0.0.1:0"},
		{"tunnel-client", "-allow", "not a rule!"},
		{"tunnel-client", "extra"},
	} {
		if code, _, errs := runArgs(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errs)
		}
	}
	_, _, errs := runArgs(t, "tunnel", "-socks", "192.0.2.1:1080")
	if !strings.Contains(errs, "-expose") {
		t.Errorf("a non-loopback -socks is not explained:\n%s", errs)
	}
}
