package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/internal/cpumeter"

	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// The sizes of a 4 KiB read on FileRedirectorChannel: the Read Request
// (2.2.2.3.3) and the Read Reply (2.2.2.3.4) carrying 4096 bytes. The raw
// TCP baseline moves the same bytes with no DVC, PNP or device layer.
const (
	readSize     = 4096
	readReqLen   = wire.ServerIOHeaderLen + 12
	readReplyLen = wire.ClientIOHeaderLen + 8 + readSize + 1
)

// BenchmarkRead4K measures 4 KiB reads per second on one handle against a
// memory device, at queue depth 1 and 32, over the portable transport on
// loopback TCP; beside it, a raw TCP request/reply of the same sizes at
// the same depths. Each op is one read; reads/s is reported, and
// cpu-ns/op, the CPU time (both ends and the kernel's work for them) per
// read, which tells whether a depth is bound by CPU or by waiting.
//
//	go test -run '^$' -bench Read4K -benchtime 3s ./pnp/e2e
func BenchmarkRead4K(b *testing.B) {
	for _, qd := range []int{1, 32} {
		b.Run(fmt.Sprintf("rawTCP/QD%d", qd), func(b *testing.B) { benchRawTCP(b, qd) })
		b.Run(fmt.Sprintf("pnp/QD%d", qd), func(b *testing.B) { benchPNP(b, qd) })
	}
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

func benchPNP(b *testing.B, qd int) {
	mem, err := device.NewMemory(1<<20, device.Description{Text: "bench", HardwareIDs: []string{"MEM"}})
	if err != nil {
		b.Fatal(err)
	}
	p := connect(b, server.Config{}, mem)
	ctx := context.Background()
	d, err := p.srv.WaitDevice(ctxT(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	h, err := p.srv.Open(ctx, d.ClientDeviceID)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	b.SetBytes(readSize)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpumeter.Start(b)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range qd {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				off := uint64((int(i)*readSize + w) % (1<<20 - readSize))
				data, err := h.Read(ctx, off, readSize)
				if err != nil || len(data) != readSize {
					b.Errorf("Read: %d bytes, %v", len(data), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	cpu()
	reportRate(b)
}

// benchRawTCP is the baseline: one TCP connection on loopback, a server
// answering each readReqLen-byte request with a readReplyLen-byte reply
// copied from a 1 MiB buffer, in order, and a client keeping qd requests
// in flight.
func benchRawTCP(b *testing.B, qd int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		mem := make([]byte, 1<<20)
		req := make([]byte, readReqLen)
		reply := make([]byte, readReplyLen)
		for i := 0; ; i++ {
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			off := (i * readSize) % (len(mem) - readSize)
			copy(reply[12:], mem[off:off+readSize])
			if _, err := c.Write(reply); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { c.Close(); <-srvDone }()
	b.SetBytes(readSize)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpumeter.Start(b)
	tokens := make(chan struct{}, qd)
	writeErr := make(chan error, 1)
	go func() {
		req := make([]byte, readReqLen)
		for range b.N {
			tokens <- struct{}{}
			if _, err := c.Write(req); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	reply := make([]byte, readReplyLen)
	for range b.N {
		if _, err := io.ReadFull(c, reply); err != nil {
			b.Fatal(err)
		}
		<-tokens
	}
	if err := <-writeErr; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu()
	reportRate(b)
}

// BenchmarkHandleMemory measures what one open handle costs: bytes (live
// heap plus goroutine stacks) and goroutines per handle, after opening 1,000 handles on one
// connection. Both ends run in this process, so the figures are the whole
// stack's (server role, client role, both portable managers and the
// memory device's handle), not the server's alone. Each op opens 1,000
// handles.
//
//	go test -run '^$' -bench HandleMemory -benchtime 3x ./pnp/e2e
func BenchmarkHandleMemory(b *testing.B) {
	const n = 1000
	var bytesPer, goroutinesPer float64
	for range b.N {
		mem, err := device.NewMemory(4096, device.Description{Text: "bench", HardwareIDs: []string{"MEM"}})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		p := connect(b, server.Config{}, mem)
		d, err := p.srv.WaitDevice(ctxT(b), nil)
		if err != nil {
			b.Fatal(err)
		}
		before, g0 := heap(), runtime.NumGoroutine()
		b.StartTimer()
		hs := make([]*server.Handle, n)
		for i := range hs {
			if hs[i], err = p.srv.Open(context.Background(), d.ClientDeviceID); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		// Let the client finish its side of the last opens.
		time.Sleep(50 * time.Millisecond)
		after, g1 := heap(), runtime.NumGoroutine()
		bytesPer += float64(after-before) / n
		goroutinesPer += float64(g1-g0) / n
		for _, h := range hs {
			h.Close()
		}
		b.StartTimer()
	}
	b.ReportMetric(bytesPer/float64(b.N), "B/handle")
	b.ReportMetric(goroutinesPer/float64(b.N), "goroutines/handle")
}

// heap is the live heap plus goroutine stacks.
func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// BenchmarkSlowIoctl measures pipelining where the device, not the CPU,
// sets the pace: each IOCTL takes the emulated device 1 ms
// (device.IoctlDemoSlow), so at queue depth 32 a handle should complete
// close to 32 times as many per second as at depth 1.
//
//	go test -run '^$' -bench SlowIoctl -benchtime 2s ./pnp/e2e
func BenchmarkSlowIoctl(b *testing.B) {
	for _, qd := range []int{1, 32} {
		b.Run(fmt.Sprintf("QD%d", qd), func(b *testing.B) {
			emu, err := device.NewDemo(device.Description{Text: "slow", HardwareIDs: []string{"EMU"}}, 0)
			if err != nil {
				b.Fatal(err)
			}
			p := connect(b, server.Config{}, emu)
			d, err := p.srv.WaitDevice(ctxT(b), nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			h, err := p.srv.Open(ctx, d.ClientDeviceID)
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			in := []byte{1, 0, 0, 0} // 1 ms
			b.ReportAllocs()
			b.ResetTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range qd {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := h.IoControl(ctx, device.IoctlDemoSlow, in, 4); err != nil {
							b.Errorf("IoControl: %v", err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ioctls/s")
		})
	}
}
