package session

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rdpdvc/rdpdvc/internal/cpumeter"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// The benchmarks here measure the two managers alone, joined by carriers
// that hand each PDU straight to the peer's Receive: no transport, no
// chunks, no syscalls. Each sits beside a baseline in the same run (a
// sub-benchmark named impl=baseline) so that
//
//	benchstat -col /impl old.txt
//
// prints the ratio. docs/benchmarks.md has the commands and the figures.
// Nothing here asserts a time.

// direct is a Carrier that calls the peer manager's Receive. The sending
// manager holds its carrier lock around WritePDU, so the peer's Receive is
// never called by two goroutines at once, as Receive requires.
type direct struct {
	to interface{ Receive([]byte) error }
}

func (d *direct) WritePDU(p []byte) error { return d.to.Receive(p) }
func (d *direct) Flush() error            { return nil }

// directPair joins a Server and a Client with direct carriers, registers
// l on the client for name and opens one channel.
func directPair(b *testing.B, name string, l dvc.Listener) dvc.Conn {
	b.Helper()
	toClient, toServer := &direct{}, &direct{}
	s := NewServer(toClient, Config{Logger: quiet})
	c := NewClient(toServer, Config{Logger: quiet})
	toClient.to, toServer.to = c, s
	c.Listen(name, l)
	b.Cleanup(func() {
		s.Shutdown(nil)
		c.Shutdown(nil)
	})
	conn, err := s.Open(context.Background(), name)
	if err != nil {
		b.Fatal(err)
	}
	return conn
}

func pattern(n int) []byte {
	m := make([]byte, n)
	for i := range m {
		m[i] = byte(i)
	}
	return m
}

var sink []byte

// BenchmarkManagersBulk1MiB moves 1 MiB messages one way, server to
// client, and counts an op when the client's Handler holds the message.
//
//   - baseline: copy 1 MiB into a new slice, which is the least a receiver
//     that hands each message over whole must do.
//   - managers: dvc.Conn.Write fragments into DATA_FIRST + 656 DATA in a
//     reused buffer, the client parses each, reassembles into a new slice
//     and queues it for the Handler's goroutine.
func BenchmarkManagersBulk1MiB(b *testing.B) {
	const size = 1 << 20
	msg := pattern(size)
	b.Run("impl=baseline", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		cpu := cpumeter.Start(b)
		for b.Loop() {
			sink = append([]byte(nil), msg...)
		}
		cpu()
	})
	b.Run("impl=managers", func(b *testing.B) {
		var got atomic.Int64
		want := int64(b.N)
		all := make(chan struct{})
		conn := directPair(b, "bulk", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) {
			return recvFunc(func(m []byte) {
				if len(m) != size {
					b.Errorf("received %d bytes, want %d", len(m), size)
				}
				if got.Add(1) == want {
					close(all)
				}
			}), nil
		}))
		ctx := context.Background()
		b.SetBytes(size)
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

// BenchmarkManagersEcho sends one message and waits for the client's
// Handler to write it back: each op is one round trip through both
// managers. The client's Handler runs on its goroutine for its first calls
// and then, being quick, on the receiving goroutine (session/delivery.go);
// the server's reader is one goroutine hand-off away.
//
//   - baseline: the same hand-offs with nothing else, a message sent to a
//     goroutine that sends it back over channels.
//   - managers: dvc.Conn.Write, echo Handler, dvc.Conn.Read.
func BenchmarkManagersEcho(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"size=64", 64}, {"size=5140", 5140}} {
		msg := pattern(size.n)
		b.Run(size.name+"/impl=baseline", func(b *testing.B) {
			there, back := make(chan []byte), make(chan []byte)
			var wg sync.WaitGroup
			wg.Go(func() {
				for m := range there {
					back <- append([]byte(nil), m...)
				}
			})
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			cpu := cpumeter.Start(b)
			for b.Loop() {
				there <- append([]byte(nil), msg...)
				<-back
			}
			cpu()
			close(there)
			wg.Wait()
		})
		b.Run(size.name+"/impl=managers", func(b *testing.B) {
			conn := directPair(b, "echo", echoListener(nil))
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

// recvFunc is a dvc.Handler that only receives.
type recvFunc func([]byte)

func (f recvFunc) Received(m []byte) { f(m) }
func (recvFunc) Closed(error)        {}
