package portable

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"

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
		for range n {
			if _, err := sc.Write(msg); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
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
		for range b.N {
			if err := conn.Write(ctx, msg); err != nil {
				b.Fatal(err)
			}
		}
		<-all
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
			for b.Loop() {
				if _, err := sc.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(sc, buf); err != nil {
					b.Fatal(err)
				}
			}
			sc.Close()
			<-echoed
		})
		b.Run(size.name+"/transport=portable", func(b *testing.B) {
			conn := portablePair(b, "echo", echoListener)
			ctx := context.Background()
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
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
		})
	}
}

// handlerFunc is a dvc.Handler that only receives.
type handlerFunc func([]byte)

func (f handlerFunc) Received(m []byte) { f(m) }
func (handlerFunc) Closed(error)        {}
