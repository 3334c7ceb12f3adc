package simple_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/simple"
)

// BenchmarkPingRTT measures the round trip of one default Simple ping
// (5140 bytes on the wire) echoed by simple.Echoer, back to back, over
// the portable transport on loopback TCP, beside a raw TCP echo of the
// same 5140 bytes (the baseline: no DVC layers at all) and the in-process
// loopback backend. Each op is one round trip; p50-µs and p99-µs are the
// percentiles of the ops of the last run.
//
//	go test -run '^$' -bench PingRTT -benchtime 2000x ./simple
func BenchmarkPingRTT(b *testing.B) {
	frame, _ := simple.AppendFrame(nil, &simple.Frame{Seq: 1, Payload: simple.Pattern(simple.DefaultPayload)})

	b.Run("rawTCP", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, len(frame))
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, len(frame))
		measure(b, func() {
			if _, err := c.Write(frame); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		})
	})

	b.Run("portable", func(b *testing.B) {
		quiet := slog.New(slog.DiscardHandler)
		ln, err := portable.Listen("127.0.0.1:0", portable.Config{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		ctx := context.Background()
		clientDone := make(chan struct{})
		go func() {
			defer close(clientDone)
			cl, err := portable.Dial(ctx, ln.Addr().String(), portable.Config{Logger: quiet})
			if err != nil {
				return
			}
			cl.Listen(simple.ChannelName, &simple.Echoer{Logger: quiet})
			cl.Run(ctx)
		}()
		srv, err := ln.Accept(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { srv.Close(); <-clientDone }()
		conn, err := srv.Open(ctx, simple.ChannelName, dvc.WithFramer(simple.FrameLen))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		pingPong(b, conn, frame)
	})

	b.Run("loopback", func(b *testing.B) {
		hub := loopback.New()
		defer hub.Close()
		hub.Listen(simple.ChannelName, &simple.Echoer{Logger: slog.New(slog.DiscardHandler)})
		conn, err := hub.Open(context.Background(), simple.ChannelName)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		pingPong(b, conn, frame)
	})
}

func pingPong(b *testing.B, conn dvc.Conn, frame []byte) {
	ctx := context.Background()
	measure(b, func() {
		if err := conn.Write(ctx, frame); err != nil {
			b.Fatal(err)
		}
		got, err := conn.Read(ctx)
		if err != nil || len(got) != len(frame) {
			b.Fatalf("echo: %d bytes, %v", len(got), err)
		}
	})
}

// measure runs op b.N times and reports the round trips' p50 and p99.
func measure(b *testing.B, op func()) {
	b.ReportAllocs()
	b.SetBytes(int64(2 * (simple.HeaderSize + simple.DefaultPayload)))
	rtts := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		op()
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	pct := func(p float64) float64 {
		i := min(len(rtts)-1, int(p*float64(len(rtts))))
		return float64(rtts[i]) / float64(time.Microsecond)
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
