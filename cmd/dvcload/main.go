// Command dvcload pushes load through rdpdvc's portable transport on
// 127.0.0.1 and the same bytes through plain TCP on the same loopback,
// one after the other, and prints both and their ratio. It is for looking
// at throughput and round trips by hand (under perf, strace, a profiler or
// with several channels at once); the figures in docs/benchmarks.md come
// from go test -bench, not from here.
//
//	dvcload                                  # bulk: 200 x 1 MiB, server to client, one channel
//	dvcload -mode echo -size 5140 -n 2000    # round trips, p50/p99/max
//	dvcload -channels 8 -size 65536 -n 500   # eight channels at once, one connection
//	dvcload -cpuprofile cpu.out              # then: go tool pprof cpu.out
//
// Raw TCP uses one connection per channel, since it has no channels.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/portable"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	mode     string
	size     int
	n        int
	channels int
	raw      bool
	profile  string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dvcload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.mode, "mode", "bulk", "bulk (server writes, client receives) or echo (server writes, client echoes, one at a time)")
	fs.IntVar(&c.size, "size", 1<<20, "message size in bytes")
	fs.IntVar(&c.n, "n", 200, "messages per channel")
	fs.IntVar(&c.channels, "channels", 1, "channels at once (one portable connection; raw TCP uses one connection each)")
	fs.BoolVar(&c.raw, "raw", true, "also run the raw TCP baseline")
	fs.StringVar(&c.profile, "cpuprofile", "", "write a CPU profile of the portable run to this file")
	if err := cli.Parse(fs, args); err != nil {
		return 2
	}
	if (c.mode != "bulk" && c.mode != "echo") || c.size < 0 || c.n < 1 || c.channels < 1 || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "dvcload: want -mode bulk|echo, -size >= 0, -n >= 1, -channels >= 1 and no arguments")
		return 2
	}
	ctx, cancel := cli.SignalContext(ctx)
	defer cancel()

	var stop func()
	if c.profile != "" {
		f, err := os.Create(c.profile)
		if err != nil {
			fmt.Fprintln(stderr, "dvcload:", err)
			return 1
		}
		defer f.Close()
		stop = func() { pprof.StopCPUProfile() }
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "dvcload:", err)
			return 1
		}
	}
	p, err := runPortable(ctx, c)
	if stop != nil {
		stop()
	}
	if err != nil {
		fmt.Fprintln(stderr, "dvcload: portable:", err)
		return 1
	}
	report(stdout, "portable", c, p)
	if !c.raw {
		return 0
	}
	r, err := runRaw(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, "dvcload: raw:", err)
		return 1
	}
	report(stdout, "raw TCP", c, r)
	if c.mode == "bulk" {
		fmt.Fprintf(stdout, "portable/raw throughput: %.2f\n", r.elapsed.Seconds()/p.elapsed.Seconds())
	} else {
		fmt.Fprintf(stdout, "portable/raw p50 round trip: %.2f\n", float64(pct(p.rtts, 50))/float64(pct(r.rtts, 50)))
	}
	return 0
}

// result is one run: wall time for everything, and each round trip in
// echo mode.
type result struct {
	elapsed time.Duration
	rtts    []time.Duration
}

func report(w io.Writer, what string, c config, r result) {
	total := float64(c.size) * float64(c.n) * float64(c.channels)
	fmt.Fprintf(w, "%-8s %d x %d B on %d channel(s): %v, %.1f MB/s, %.0f msg/s",
		what, c.n, c.size, c.channels, r.elapsed.Round(time.Millisecond),
		total/r.elapsed.Seconds()/1e6, float64(c.n*c.channels)/r.elapsed.Seconds())
	if len(r.rtts) > 0 {
		fmt.Fprintf(w, ", rtt p50 %v p99 %v max %v", pct(r.rtts, 50), pct(r.rtts, 99), slices.Max(r.rtts))
	}
	fmt.Fprintln(w)
}

// pct is the p-th percentile (nearest rank) of d, which it sorts.
func pct(d []time.Duration, p int) time.Duration {
	slices.Sort(d)
	i := (len(d)*p + 99) / 100
	return d[max(0, min(len(d)-1, i-1))]
}

func pattern(n int) []byte {
	m := make([]byte, n)
	for i := range m {
		m[i] = byte(i)
	}
	return m
}

// runPortable starts a portable server and client over one loopback TCP
// connection and drives c.channels channels at once.
func runPortable(ctx context.Context, c config) (result, error) {
	quiet := portable.Config{Logger: slog.New(slog.DiscardHandler)}
	ln, err := portable.Listen("127.0.0.1:0", quiet)
	if err != nil {
		return result{}, err
	}
	defer ln.Close()
	client, err := portable.Dial(ctx, ln.Addr().String(), quiet)
	if err != nil {
		return result{}, err
	}
	want := int64(c.n) * int64(c.channels)
	var got atomic.Int64
	all := make(chan struct{})
	client.Listen("dvcload", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		return handler{ch: ch, echo: c.mode == "echo", onMsg: func(m []byte) {
			if c.mode == "bulk" && got.Add(1) == want {
				close(all)
			}
		}}, nil
	}))
	runDone := make(chan error, 1)
	go func() { runDone <- client.Run(ctx) }()
	defer func() { client.Close(); <-runDone }()
	server, err := ln.Accept(ctx)
	if err != nil {
		return result{}, err
	}
	go server.Run(context.Background())
	defer server.Close()

	conns := make([]dvc.Conn, c.channels)
	for i := range conns {
		if conns[i], err = server.Open(ctx, "dvcload"); err != nil {
			return result{}, err
		}
	}
	msg := pattern(c.size)
	return drive(c, func(i int, rtts *[]time.Duration) error {
		conn := conns[i]
		for range c.n {
			t0 := time.Now()
			if err := conn.Write(ctx, msg); err != nil {
				return err
			}
			if c.mode == "echo" {
				m, err := conn.Read(ctx)
				if err != nil {
					return err
				}
				*rtts = append(*rtts, time.Since(t0))
				if len(m) != c.size {
					return fmt.Errorf("echo of %d bytes, want %d", len(m), c.size)
				}
			}
		}
		return nil
	}, func() error {
		if c.mode == "echo" {
			return nil
		}
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// handler counts (bulk) or echoes (echo) what a channel receives.
type handler struct {
	ch    dvc.Channel
	echo  bool
	onMsg func([]byte)
}

func (h handler) Received(m []byte) {
	if h.echo {
		h.ch.Write(context.Background(), m)
	}
	h.onMsg(m)
}
func (handler) Closed(error) {}

// runRaw does the same over c.channels plain TCP connections: the peer
// reads whole messages (bulk) or reads and writes each back (echo).
func runRaw(ctx context.Context, c config) (result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	defer ln.Close()
	var peers sync.WaitGroup
	defer peers.Wait()
	conns := make([]net.Conn, c.channels)
	received := make(chan error, c.channels)
	for i := range conns {
		if conns[i], err = net.Dial("tcp", ln.Addr().String()); err != nil {
			return result{}, err
		}
		defer conns[i].Close()
		p, err := ln.Accept()
		if err != nil {
			return result{}, err
		}
		peers.Go(func() {
			defer p.Close()
			buf := make([]byte, c.size)
			for range c.n {
				if _, err := io.ReadFull(p, buf); err != nil {
					received <- err
					return
				}
				if c.mode == "echo" {
					if _, err := p.Write(buf); err != nil {
						received <- err
						return
					}
				}
			}
			received <- nil
		})
	}
	stop := context.AfterFunc(ctx, func() {
		for _, conn := range conns {
			conn.Close()
		}
	})
	defer stop()
	msg := pattern(c.size)
	return drive(c, func(i int, rtts *[]time.Duration) error {
		conn := conns[i]
		buf := make([]byte, c.size)
		for range c.n {
			t0 := time.Now()
			if _, err := conn.Write(msg); err != nil {
				return err
			}
			if c.mode == "echo" {
				if _, err := io.ReadFull(conn, buf); err != nil {
					return err
				}
				*rtts = append(*rtts, time.Since(t0))
			}
		}
		return nil
	}, func() error {
		var errs []error
		for range c.channels {
			errs = append(errs, <-received)
		}
		return errors.Join(errs...)
	})
}

// drive runs send for every channel at once, then wait, and times the
// whole.
func drive(c config, send func(i int, rtts *[]time.Duration) error, wait func() error) (result, error) {
	var wg sync.WaitGroup
	errs := make([]error, c.channels)
	rtts := make([][]time.Duration, c.channels)
	t0 := time.Now()
	for i := range c.channels {
		wg.Go(func() { errs[i] = send(i, &rtts[i]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	if err := wait(); err != nil {
		return result{}, err
	}
	return result{elapsed: time.Since(t0), rtts: slices.Concat(rtts...)}, nil
}
