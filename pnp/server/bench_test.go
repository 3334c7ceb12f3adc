package server_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// leanDevice answers FileRedirectorChannel requests inside Received, with
// 4 KiB of zeros for every read: the cheapest client possible, so that
// BenchmarkHandleRead measures the server role and the loopback backend.
type leanDevice struct {
	ch   dvc.Channel
	data []byte
	buf  []byte
}

func (l *leanDevice) Received(m []byte) {
	r, err := wire.ParseRequest(m)
	if err != nil {
		return
	}
	var rep wire.Message
	switch q := r.(type) {
	case wire.ServerCapabilitiesRequest:
		rep = wire.ClientCapabilitiesReply{RequestID: q.RequestID, Version: 6}
	case wire.CreateFileRequest:
		rep = wire.CreateFileReply{RequestID: q.RequestID}
	case wire.ReadRequest:
		rep = wire.ReadReply{RequestID: q.RequestID, Data: l.data[:q.BytesToRead]}
	default:
		return
	}
	l.buf = rep.Append(l.buf[:0])
	l.ch.Write(context.Background(), l.buf)
}
func (l *leanDevice) Closed(error) {}

// BenchmarkHandleRead: 4 KiB reads on one handle at queue depth 1 and 32
// through the server role over the in-process loopback backend, against a
// client that answers at once: the server role's own cost per read.
//
//	go test -run '^$' -bench HandleRead ./pnp/server
func BenchmarkHandleRead(b *testing.B) {
	for _, tc := range []struct {
		qd       int
		deadline bool // each Read under a context that can end, as most callers pass
	}{{1, false}, {32, false}, {1, true}} {
		qd := tc.qd
		name := fmt.Sprintf("QD%d", qd)
		if tc.deadline {
			name += "-deadline"
		}
		b.Run(name, func(b *testing.B) {
			hub := loopback.New()
			defer hub.Close()
			data := make([]byte, 4096)
			hub.Listen(wire.ChannelPNPDR, dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
				return pnpdrAuto{ch}, nil
			}))
			hub.Listen(wire.ChannelFileRedirector, dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
				return &leanDevice{ch: ch, data: data}, nil
			}))
			s, err := server.Start(context.Background(), hub, server.Config{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if tc.deadline {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Hour)
				defer cancel()
			}
			if _, err := s.WaitDevice(ctxT(b), nil); err != nil {
				b.Fatal(err)
			}
			h, err := s.Open(ctx, 1)
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			b.SetBytes(4096)
			b.ReportAllocs()
			b.ResetTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range qd {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if d, err := h.Read(ctx, 0, 4096); err != nil || len(d) != 4096 {
							b.Errorf("Read: %d, %v", len(d), err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
		})
	}
}

// pnpdrAuto is a minimal PNPDR client: version, then one device.
type pnpdrAuto struct{ ch dvc.Channel }

func (p pnpdrAuto) Received(m []byte) {
	msg, err := wire.ParsePNPDR(wire.ServerToClient, m)
	if err != nil {
		return
	}
	switch msg.(type) {
	case wire.ServerVersion:
		p.ch.Write(context.Background(), wire.ClientVersion{MajorVersion: 1, MinorVersion: 5, Capabilities: 1}.Append(nil))
	case wire.AuthenticatedClient:
		p.ch.Write(context.Background(), addition(1))
	}
}
func (p pnpdrAuto) Closed(error) {}

// BenchmarkHandleMemory: bytes (live heap plus goroutine stacks) and
// goroutines per open handle of the server role, over 1,000 handles on
// the loopback backend with the lean client above (whose per-instance
// cost, one delivery goroutine and two inboxes, is included).
//
//	go test -run '^$' -bench HandleMemory -benchtime 3x ./pnp/server
func BenchmarkHandleMemory(b *testing.B) {
	const n = 1000
	var bytesPer, goroutinesPer float64
	for range b.N {
		b.StopTimer()
		hub := loopback.New()
		data := make([]byte, 4096)
		hub.Listen(wire.ChannelPNPDR, dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) { return pnpdrAuto{ch}, nil }))
		hub.Listen(wire.ChannelFileRedirector, dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
			return &leanDevice{ch: ch, data: data}, nil
		}))
		s, err := server.Start(context.Background(), hub, server.Config{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.WaitDevice(ctxT(b), nil); err != nil {
			b.Fatal(err)
		}
		before, g0 := liveBytes(), runtime.NumGoroutine()
		b.StartTimer()
		hs := make([]*server.Handle, n)
		for i := range hs {
			if hs[i], err = s.Open(context.Background(), 1); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		after, g1 := liveBytes(), runtime.NumGoroutine()
		bytesPer += float64(after-before) / n
		goroutinesPer += float64(g1-g0) / n
		s.Close()
		hub.Close()
		b.StartTimer()
	}
	b.ReportMetric(bytesPer/float64(b.N), "B/handle")
	b.ReportMetric(goroutinesPer/float64(b.N), "goroutines/handle")
}

func liveBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}
