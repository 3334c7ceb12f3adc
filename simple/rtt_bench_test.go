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
	frame := simple.Frame{Seq: 1, Payload: simple.Pattern(simple.DefaultPayload)}.Append(nil)

	for _, paced := range []bool{false, true} {
		name := "rawTCP"
		if paced {
			name = "rawTCP-paced"
		}
		b.Run(name, func(b *testing.B) {
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
			op := func() {
				if _, err := c.Write(frame); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
			if paced {
				measurePaced(b, op)
			} else {
				measure(b, op)
			}
		})
	}

	b.Run("portable", func(b *testing.B) {
		pingPong(b, portableEcho(b), frame)
	})

	// What rdp-simple-plugin-server itself measures: the Pinger's RTTs
	// (its reader goroutine included), one ping per tick of pacedInterval.
	// ns/op is the pacing, not the RTT; compare with rawTCP-paced, which
	// starts each round trip from the same idle state.
	b.Run("portable-Pinger", func(b *testing.B) {
		conn := portableEcho(b)
		quiet := slog.New(slog.DiscardHandler)
		b.ReportAllocs()
		b.ResetTimer()
		st, err := (&simple.Pinger{Interval: pacedInterval, Count: b.N, Logger: quiet}).Run(context.Background(), conn)
		b.StopTimer()
		if err != nil || !st.OK() {
			b.Fatalf("%+v %v", st, err)
		}
		b.ReportMetric(float64(st.Percentile(50))/float64(time.Microsecond), "p50-µs")
		b.ReportMetric(float64(st.Percentile(99))/float64(time.Microsecond), "p99-µs")
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

// portableEcho opens the Simple channel over the portable transport on
// loopback TCP to a simple.Echoer; the benchmark's cleanup tears it down.
func portableEcho(b *testing.B) dvc.Conn {
	quiet := slog.New(slog.DiscardHandler)
	ln, err := portable.Listen("127.0.0.1:0", portable.Config{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
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
	go srv.Run(context.Background())
	b.Cleanup(func() { srv.Close(); <-clientDone })
	conn, err := srv.Open(ctx, simple.ChannelName, dvc.WithFramer(simple.FrameLen))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
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
func measure(b *testing.B, op func()) { measureEvery(b, nil, op) }

// pacedInterval spaces the paced round trips, so each starts with the
// goroutines parked, as pings a second apart do.
const pacedInterval = 200 * time.Microsecond

// measurePaced is measure with one op per tick of pacedInterval.
func measurePaced(b *testing.B, op func()) {
	t := time.NewTicker(pacedInterval)
	defer t.Stop()
	measureEvery(b, t.C, op)
}

// measureEvery runs op b.N times, each after a receive from tick if it is
// not nil, and reports the percentiles of op's own durations.
func measureEvery(b *testing.B, tick <-chan time.Time, op func()) {
	b.ReportAllocs()
	b.SetBytes(int64(2 * (simple.HeaderSize + simple.DefaultPayload)))
	rtts := make([]time.Duration, 0, b.N)
	for b.Loop() {
		if tick != nil {
			<-tick
		}
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
