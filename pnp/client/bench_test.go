package client

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// BenchmarkRead4KiB measures 4 KiB Read requests against a memory device
// over loopback at queue depths 1 and 32: the client's own cost, without
// a transport. (docs/benchmarks.md has the end-to-end figures.)
func BenchmarkRead4KiB(b *testing.B) {
	for _, qd := range []int{1, 32} {
		b.Run(fmt.Sprintf("QD%d", qd), func(b *testing.B) {
			t := b
			mem, _ := device.NewMemory(1<<20, device.Description{Text: "bench"})
			s := newServer(b, Config{Logger: quietLogger()}, mem)
			s.pnpdrReady()
			conn := s.openDevice(1)
			b.SetBytes(4096)
			b.ReportAllocs()
			b.ResetTimer()
			next := uint32(2)
			req := func() []byte {
				id := next
				next = next%wire.MaxRequestID + 1
				if next < 2 {
					next = 2
				}
				return readReq(id, 4096, uint64(id%256)*4096)
			}
			inflight := 0
			for i := 0; i < b.N; i++ {
				for inflight < qd && i+inflight < b.N {
					send(t, conn, req())
					inflight++
				}
				r, err := wire.ParseReadReply(recv(t, conn))
				if err != nil || r.Result != 0 || len(r.Data) != 4096 {
					b.Fatalf("reply %v %v", r.Result, err)
				}
				inflight--
			}
		})
	}
}

// BenchmarkOpenHandle opens handles on a memory device over loopback and
// reports the heap each one keeps while open (client, loopback instance
// and the test server's end together).
func BenchmarkOpenHandle(b *testing.B) {
	mem, _ := device.NewMemory(4096, device.Description{Text: "bench"})
	s := newServer(b, Config{Logger: quietLogger()}, mem)
	s.pnpdrReady()
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]dvc.Conn, 0, b.N)
	for range b.N {
		conns = append(conns, s.openDevice(1))
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(b.N), "heap-B/handle")
	for _, c := range conns {
		c.Close()
	}
}
