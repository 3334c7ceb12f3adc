package main

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/internal/testnet"
	"github.com/rdpdvc/rdpdvc/tunnel/socks"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMeasure runs every measurement, small, against the source directly
// and through a minimal SOCKS proxy: the harness itself works, whatever
// the figures.
func TestMeasure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srcDone := make(chan struct{})
	go func() { defer close(srcDone); _ = serveSource(ln) }()
	defer func() { _ = ln.Close(); <-srcDone }()
	src := ln.Addr().(*net.TCPAddr)

	proxy := testProxy(t)
	o := options{size: 1 << 20, streams: 3, requests: 20, fairness: 20 * time.Millisecond, rounds: 1}
	for _, v := range []variant{
		{name: "raw", dial: func() (net.Conn, error) { return net.Dial("tcp", src.String()) }},
		socksVariant("socks", proxy, src, nil),
	} {
		if err := ready(v, 5*time.Second); err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		f, err := measure(v, o)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if f.one <= 0 || f.many <= 0 || f.p50 <= 0 || f.p99 < f.p50 || f.fair <= 0 {
			t.Errorf("%s: figures %+v", v.name, f)
		}
	}
}

// BenchmarkFairnessHeadOfLineBlocking shows what the fairness figure
// means: through a proxy that sends every stream's data to its client
// from one goroutine, one stalled reader stalls all, and the figure it
// reports ("fairness") is far below the 0.9 a fair tunnel keeps (not 0:
// the kernel keeps taking a trickle into the stalled socket's buffers as
// it compacts them). A ratio of speeds measured over wall-clock windows,
// so a benchmark's figure, not a test's verdict: it moves with the load
// of the machine.
func BenchmarkFairnessHeadOfLineBlocking(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srcDone := make(chan struct{})
	go func() { defer close(srcDone); _ = serveSource(ln) }()
	defer func() { _ = ln.Close(); <-srcDone }()

	v := socksVariant("blocking", blockingProxy(b), ln.Addr().(*net.TCPAddr), nil)
	var sum float64
	n := 0
	for b.Loop() {
		f, err := fairness(v, 3, 400*time.Millisecond)
		if err != nil {
			b.Fatal(err)
		}
		sum += f
		n++
	}
	b.ReportMetric(sum/float64(n), "fairness")
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"64MiB": 64 << 20, "3KiB": 3 << 10, "1GiB": 1 << 30, "100": 100} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1MiB", "MiB", "1TB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

// testProxy serves SOCKS5 with socks.Handshake and net.Dial until the test ends.
func testProxy(t *testing.T) string {
	t.Helper()
	return testnet.Serve(t, func(c net.Conn) {
		defer c.Close()
		req, err := socks.Handshake(c, socks.Config{})
		if err != nil {
			return
		}
		out, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", net.JoinHostPort(req.Host, strconv.Itoa(int(req.Port))))
		if err != nil {
			_ = socks.WriteReply(c, socks.ReplyFor(err), netip.AddrPort{})
			return
		}
		defer out.Close()
		_ = socks.WriteReply(c, socks.Succeeded, netip.AddrPort{})
		go func() { _, _ = io.Copy(out, c); _ = out.Close() }()
		_, _ = io.Copy(c, out)
	}).Addr().String()
}

// blockingProxy is testProxy with head-of-line blocking: one goroutine
// writes every stream's data to its client, so a client that stops
// reading stops them all.
func blockingProxy(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type chunk struct {
		to net.Conn
		b  []byte
	}
	shared := make(chan chunk)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case c := <-shared:
				if _, err := c.to.Write(c.b); err != nil {
					_ = c.to.Close()
				}
			case <-done:
				return
			}
		}
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				req, err := socks.Handshake(c, socks.Config{})
				if err != nil {
					return
				}
				out, err := net.Dial("tcp", net.JoinHostPort(req.Host, strconv.Itoa(int(req.Port))))
				if err != nil {
					_ = socks.WriteReply(c, socks.ReplyFor(err), netip.AddrPort{})
					return
				}
				defer out.Close()
				_ = socks.WriteReply(c, socks.Succeeded, netip.AddrPort{})
				// Little kernel buffering after the shared writer, so that
				// a stall reaches it soon, as it would in a tunnel.
				_ = c.(*net.TCPConn).SetWriteBuffer(64 << 10)
				go func() { _, _ = io.Copy(out, c); _ = out.Close() }()
				for {
					b := make([]byte, 32<<10)
					n, err := out.Read(b)
					if err != nil {
						return
					}
					select {
					case shared <- chunk{c, b[:n]}:
					case <-done:
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() { _ = ln.Close(); close(done); wg.Wait() })
	return ln.Addr().String()
}
