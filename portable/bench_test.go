package portable

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/internal/cpumeter"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// The benchmarks here put the portable transport beside raw TCP on the
// same loopback, in the same run, as sub-benchmarks named
// transport=raw and transport=portable so that
//
//	benchstat -col /transport old.txt
//
// prints the two side by side with the ratio. docs/benchmarks.md has the
// commands and the figures. Nothing here asserts a time.

// tcpPair returns both ends of one loopback TCP connection.
func tcpPair(b *testing.B) (server, client net.Conn) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		b.Fatal("accept failed")
	}
	return server, client
}

// portablePair runs a portable Server and Client over one loopback TCP
// connection, with listener registered on the client for name, and opens
// one channel. Everything is torn down when the benchmark ends.
func portablePair(b *testing.B, name string, l dvc.Listener) dvc.Conn {
	b.Helper()
	sc, cc := tcpPair(b)
	c := NewClient(cc, quietCfg())
	c.Listen(name, l)
	runDone := make(chan struct{})
	go func() { c.Run(context.Background()); close(runDone) }()
	s := NewServer(sc, quietCfg())
	go s.Run(context.Background())
	b.Cleanup(func() {
		s.Close()
		<-runDone
	})
	conn, err := s.Open(context.Background(), name)
	if err != nil {
		b.Fatal(err)
	}
	return conn
}

// pattern is a message of n bytes that is not all zeros.
func pattern(n int) []byte {
	m := make([]byte, n)
	for i := range m {
		m[i] = byte(i)
	}
	return m
}

const bulkSize = 1 << 20

// BenchmarkBulk1MiB moves 1 MiB messages one way, server to client, back
// to back on one connection, and counts an op when the receiver holds the
// whole message.
//
//   - raw: the bytes written to a TCP socket and read with io.ReadFull
//     into one reused 1 MiB buffer; no framing, no copies but the
//     kernel's. The floor.
//   - portable: dvc.Conn.Write on the server, a dvc.Handler on the
//     client that receives each message whole (DYNVC_DATA_FIRST + 656
//     DYNVC_DATA, each in a CHANNEL_PDU chunk, reassembled into a new
//     slice).
func BenchmarkBulk1MiB(b *testing.B) {
	msg := pattern(bulkSize)
	b.Run("transport=raw", func(b *testing.B) {
		sc, cc := tcpPair(b)
		defer sc.Close()
		defer cc.Close()
		done := make(chan error, 1)
		n := b.N
		go func() {
			buf := make([]byte, bulkSize)
			for range n {
				if _, err := io.ReadFull(cc, buf); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		b.SetBytes(bulkSize)
		b.ReportAllocs()
		b.ResetTimer()
		cpu := cpumeter.Start(b)
		for range n {
			if _, err := sc.Write(msg); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		cpu()
	})
	b.Run("transport=portable", func(b *testing.B) {
		var got atomic.Int64
		want := int64(b.N)
		all := make(chan struct{})
		conn := portablePair(b, "bulk", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
			return handlerFunc(func(m []byte) {
				if len(m) != bulkSize {
					b.Errorf("received %d bytes, want %d", len(m), bulkSize)
				}
				if got.Add(1) == want {
					close(all)
				}
			}), nil
		}))
		ctx := context.Background()
		b.SetBytes(bulkSize)
		b.ReportAllocs()
		b.ResetTimer()
		cpu := cpumeter.Start(b)
		for range b.N {
			if err := conn.Write(ctx, msg); err != nil {
				b.Fatal(err)
			}
		}
		<-all
		cpu()
	})
}

// BenchmarkEcho sends one message and waits for its echo, one at a time:
// each op is one round trip. 64 bytes fits one DYNVC_DATA; 5140 bytes is
// a default Simple ping (DATA_FIRST + 3 DATA each way).
//
//   - raw: write, the peer reads exactly that many bytes and writes them
//     back, read them.
//   - portable: dvc.Conn.Write on the server, a client Handler that
//     writes each message back, dvc.Conn.Read.
func BenchmarkEcho(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"size=64", 64}, {"size=5140", 5140}} {
		msg := pattern(size.n)
		b.Run(size.name+"/transport=raw", func(b *testing.B) {
			sc, cc := tcpPair(b)
			defer sc.Close()
			echoed := make(chan struct{})
			go func() {
				defer close(echoed)
				buf := make([]byte, size.n)
				for {
					if _, err := io.ReadFull(cc, buf); err != nil {
						cc.Close()
						return
					}
					if _, err := cc.Write(buf); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, size.n)
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			cpu := cpumeter.Start(b)
			for b.Loop() {
				if _, err := sc.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(sc, buf); err != nil {
					b.Fatal(err)
				}
			}
			cpu()
			sc.Close()
			<-echoed
		})
		b.Run(size.name+"/transport=portable", func(b *testing.B) {
			conn := portablePair(b, "echo", echoListener)
			ctx := context.Background()
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			cpu := cpumeter.Start(b)
			for b.Loop() {
				if err := conn.Write(ctx, msg); err != nil {
					b.Fatal(err)
				}
				m, err := conn.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(m) != size.n {
					b.Fatalf("echo of %d bytes, want %d", len(m), size.n)
				}
			}
			cpu()
		})
	}
}

// handlerFunc is a dvc.Handler that only receives.
type handlerFunc func([]byte)

func (f handlerFunc) Received(m []byte) { f(m) }
func (handlerFunc) Closed(error)        {}

// roundTripper does one timed exchange: send a message and wait until it
// has arrived (one way) or come back (echo).
type roundTripper func(b *testing.B)

// rawOneWay sends size bytes on a TCP socket and waits until the peer has
// read them all.
func rawOneWay(b *testing.B, size int) roundTripper {
	sc, cc := tcpPair(b)
	got := make(chan struct{})
	go func() {
		defer close(got)
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(cc, buf); err != nil {
				cc.Close()
				return
			}
			got <- struct{}{}
		}
	}()
	b.Cleanup(func() {
		sc.Close()
		for range got {
		}
	})
	msg := pattern(size)
	return func(b *testing.B) {
		if _, err := sc.Write(msg); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}

// portableOneWay writes size bytes on a portable channel and waits until
// the client's Handler has the message.
func portableOneWay(b *testing.B, size int) roundTripper {
	got := make(chan int)
	conn := portablePair(b, "bulk", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		return handlerFunc(func(m []byte) { got <- len(m) }), nil
	}))
	msg := pattern(size)
	return func(b *testing.B) {
		if err := conn.Write(context.Background(), msg); err != nil {
			b.Fatal(err)
		}
		if n := <-got; n != size {
			b.Fatalf("received %d bytes, want %d", n, size)
		}
	}
}

// rawEcho writes size bytes and reads them back from a peer that echoes.
func rawEcho(b *testing.B, size int) roundTripper {
	sc, cc := tcpPair(b)
	echoed := make(chan struct{})
	go func() {
		defer close(echoed)
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(cc, buf); err != nil {
				cc.Close()
				return
			}
			if _, err := cc.Write(buf); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() {
		sc.Close()
		<-echoed
	})
	msg, buf := pattern(size), make([]byte, size)
	return func(b *testing.B) {
		if _, err := sc.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(sc, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// portableEcho writes size bytes on a portable channel whose client
// Handler writes each message back, and reads the echo.
func portableEcho(b *testing.B, size int) roundTripper {
	conn := portablePair(b, "echo", echoListener)
	msg := pattern(size)
	return func(b *testing.B) {
		ctx := context.Background()
		if err := conn.Write(ctx, msg); err != nil {
			b.Fatal(err)
		}
		m, err := conn.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(m) != size {
			b.Fatalf("echo of %d bytes, want %d", len(m), size)
		}
	}
}

// paired runs raw and portable alternately, one exchange each per op, and
// reports each one's mean time and the ratio portable/raw. Alternating
// makes the ratio hold up on a shared machine whose speed drifts from one
// second to the next, where two separate benchmarks would each catch a
// different neighbour's load.
func paired(b *testing.B, size int, raw, portable roundTripper) {
	raw(b) // warm both paths: connections, buffers, first allocations
	portable(b)
	var tRaw, tPortable time.Duration
	b.SetBytes(int64(2 * size))
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		raw(b)
		t1 := time.Now()
		portable(b)
		tRaw += t1.Sub(t0)
		tPortable += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tRaw.Nanoseconds())/n, "raw-ns/msg")
	b.ReportMetric(float64(tPortable.Nanoseconds())/n, "portable-ns/msg")
	b.ReportMetric(float64(tPortable)/float64(tRaw), "portable/raw")
}

// BenchmarkPaired puts each exchange on the portable transport beside the
// same exchange on raw TCP, alternating within one benchmark (see
// paired): a 1 MiB message one way, waiting for each to arrive (so
// without the pipelining BenchmarkBulk1MiB has), and 64 B and 5140 B
// echoes. The custom metric portable/raw is the slowdown.
func BenchmarkPaired(b *testing.B) {
	b.Run("oneway=1MiB", func(b *testing.B) {
		paired(b, bulkSize, rawOneWay(b, bulkSize), portableOneWay(b, bulkSize))
	})
	for _, n := range []int{64, 5140} {
		b.Run(fmt.Sprintf("echo=%d", n), func(b *testing.B) {
			paired(b, n, rawEcho(b, n), portableEcho(b, n))
		})
	}
}
