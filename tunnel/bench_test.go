package tunnel

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

const benchChunk = 64 << 10

// sendAndCount writes n chunks to c, half-closes it and reads the
// target's count (answerAfterEOF), so the time covers delivery.
func sendAndCount(b *testing.B, c net.Conn, n int) {
	buf := make([]byte, benchChunk)
	for range n {
		if _, err := c.Write(buf); err != nil {
			b.Error(err)
			return
		}
	}
	c.(interface{ CloseWrite() error }).CloseWrite()
	got, err := io.ReadAll(c)
	if want := fmt.Sprintf("read %d bytes", n*benchChunk); err != nil || string(got) != want {
		b.Errorf("%q, %v; want %q", got, err, want)
	}
}

// BenchmarkThroughput: one stream, the server's writes to a target on the
// client's side, through the portable transport on loopback, next to raw
// TCP to the same target in the same run.
func BenchmarkThroughput(b *testing.B) {
	host, port := answerAfterEOF(b)
	target := net.JoinHostPort(host, strconv.Itoa(int(port)))
	b.Run("raw-tcp", func(b *testing.B) {
		b.SetBytes(benchChunk)
		c, err := net.Dial("tcp", target)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		sendAndCount(b, c, b.N)
	})
	b.Run("tunnel", func(b *testing.B) {
		p := newPortable(b, &Server{}, &Client{})
		b.SetBytes(benchChunk)
		c, err := p.srv.Dial(ctxT(b), host, port)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ResetTimer()
		sendAndCount(b, c, b.N)
	})
}

// BenchmarkThroughput8: 8 streams at once, the total.
func BenchmarkThroughput8(b *testing.B) {
	host, port := answerAfterEOF(b)
	target := net.JoinHostPort(host, strconv.Itoa(int(port)))
	run := func(b *testing.B, dial func() (net.Conn, error)) {
		b.SetBytes(benchChunk)
		per := max(b.N/8, 1)
		var wg sync.WaitGroup
		for range 8 {
			c, err := dial()
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				sendAndCount(b, c, per)
			}()
		}
		wg.Wait()
	}
	b.Run("raw-tcp", func(b *testing.B) { run(b, func() (net.Conn, error) { return net.Dial("tcp", target) }) })
	b.Run("tunnel", func(b *testing.B) {
		p := newPortable(b, &Server{}, &Client{})
		ctx := ctxT(b)
		b.ResetTimer()
		run(b, func() (net.Conn, error) { return p.srv.Dial(ctx, host, port) })
	})
}

// BenchmarkLatency: a 1-byte request and its 1-byte answer through an
// echo target, per op.
func BenchmarkLatency(b *testing.B) {
	host, port := echoServer(b)
	run := func(b *testing.B, c net.Conn) {
		buf := []byte{'x'}
		for range b.N {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("raw-tcp", func(b *testing.B) {
		c, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		run(b, c)
	})
	b.Run("tunnel", func(b *testing.B) {
		p := newPortable(b, &Server{}, &Client{})
		c, err := p.srv.Dial(ctxT(b), host, port)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ResetTimer()
		run(b, c)
	})
}

// holder is a target that accepts and keeps connections, doing nothing
// with them: it costs no goroutine or buffer per connection, so an idle
// stream's figure is the tunnel's own.
func holder(b *testing.B) (string, uint16) {
	var mu sync.Mutex
	var held []net.Conn
	b.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	return serveTCP(b, func(c net.Conn) {
		mu.Lock()
		held = append(held, c)
		mu.Unlock()
	})
}

// BenchmarkIdleStreams opens 1,000 streams and reports what each idle one
// costs, both sides of the tunnel together (one process holds both):
// heap, goroutine stacks, goroutines.
func BenchmarkIdleStreams(b *testing.B) {
	const n = 1000
	host, port := holder(b)
	for range b.N {
		p := newPortable(b, &Server{}, &Client{})
		ctx := ctxT(b)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		conns := make([]net.Conn, n)
		for i := range conns {
			c, err := p.srv.Dial(ctx, host, port)
			if err != nil {
				b.Fatal(err)
			}
			conns[i] = c
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heap-B/stream")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-B/stream")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/stream")
		for _, c := range conns {
			c.Close()
		}
		p.srv.Close()
	}
}

// BenchmarkFairness: 7 streams' total throughput, with an eighth stream
// idle ("all-reading") and with the eighth stalled by a target that reads
// nothing while its writer keeps trying ("one-stopped"). The two figures
// side by side are the fairness ratio.
func BenchmarkFairness(b *testing.B) {
	host, port := answerAfterEOF(b)
	for _, stopped := range []bool{false, true} {
		name := "all-reading"
		if stopped {
			name = "one-stopped"
		}
		b.Run(name, func(b *testing.B) {
			stuck := make(chan net.Conn, 1)
			cli := &Client{Dial: func(ctx context.Context, h string, p uint16) (net.Conn, error) {
				if p == 1 {
					a, c := net.Pipe() // nobody reads c
					stuck <- c
					return a, nil
				}
				return plainDial(ctx, h, p)
			}}
			p := newPortable(b, &Server{}, cli)
			ctx := ctxT(b)
			if stopped {
				s, err := p.srv.DialStream(ctx, "127.0.0.1", 1)
				if err != nil {
					b.Fatal(err)
				}
				defer func() { s.Close(); (<-stuck).Close() }()
				go s.Write(make([]byte, 64<<20)) // blocks once its window is spent
				for s.creditForTest() > 0 {
					runtime.Gosched()
				}
			}
			b.SetBytes(benchChunk)
			per := max(b.N/7, 1)
			conns := make([]net.Conn, 7)
			for i := range conns {
				c, err := p.srv.Dial(ctx, host, port)
				if err != nil {
					b.Fatal(err)
				}
				conns[i] = c
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					sendAndCount(b, c, per)
				}()
			}
			wg.Wait()
		})
	}
}
