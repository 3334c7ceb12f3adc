// Command rttbench measures rdpdvc's round trip across processes, beside a
// raw TCP echo measured in the same run (docs/benchmarks.md, "Across
// processes"). It runs a portable DVC server in this process and
// rdp-simple-plugin-client -connect in another, echoing 5,140-byte Simple
// frames and 1 MiB messages back to back; the baseline is a raw TCP echo
// server in a third process (this program with -raw-echo). The variants
// alternate in rounds so that the machine's noise hits both alike; the
// figures are medians over rounds of each round's percentiles and ratios.
//
//	go build -o /tmp/rdp-simple-plugin-client ./cmd/rdp-simple-plugin-client
//	go run ./internal/rttbench -client /tmp/rdp-simple-plugin-client
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/simple"
)

func main() {
	client := flag.String("client", "", "path of a built rdp-simple-plugin-client")
	rounds := flag.Int("rounds", 6, "alternating rounds")
	n := flag.Int("n", 2000, "5,140-byte echoes per round and variant")
	bulk := flag.Int("bulk", 40, "1 MiB echoes per round and variant")
	rawEcho := flag.String("raw-echo", "", "internal: serve a raw TCP echo on this listener address and exit")
	flag.Parse()
	if *rawEcho != "" {
		serveRawEcho(*rawEcho)
		return
	}
	if *client == "" {
		log.Fatal("rttbench: -client PATH of rdp-simple-plugin-client is required")
	}
	quiet := slog.New(slog.DiscardHandler)

	// The raw echo server, in its own process.
	rawAddr := freeAddr()
	self, _ := os.Executable()
	rawCmd := exec.Command(self, "-raw-echo", rawAddr)
	rawCmd.Stderr = os.Stderr
	must(rawCmd.Start())
	defer rawCmd.Process.Kill()
	raw := dialRetry(rawAddr)

	// rdpdvc: a portable server here, the Simple client in its own process.
	ln, err := portable.Listen("127.0.0.1:0", portable.Config{Logger: quiet})
	must(err)
	cl := exec.Command(*client, "-connect", ln.Addr().String(), "-q", "-echo=false")
	cl.Stderr = os.Stderr
	must(cl.Start())
	defer cl.Process.Kill()
	ctx := context.Background()
	srv, err := ln.Accept(ctx)
	must(err)
	go srv.Run(context.Background())
	conn, err := srv.Open(ctx, simple.ChannelName)
	must(err)

	frame := simple.Frame{Seq: 1, Payload: simple.Pattern(simple.DefaultPayload)}.Append(nil)
	big := simple.Pattern(1 << 20)
	rbuf := make([]byte, 1<<20)

	var p50r, p99r, bulkr []float64
	fmt.Printf("round  raw p50/p99 µs  rdpdvc p50/p99 µs  p50x  p99x  raw MiB/s  rdpdvc MiB/s  bulk ratio\n")
	for r := range *rounds {
		rawT := timeN(*n, func() { rawRoundTrip(raw, frame, rbuf[:len(frame)]) })
		dvcT := timeN(*n, func() { dvcRoundTrip(ctx, conn, frame) })
		rawB := timeN(*bulk, func() { rawRoundTrip(raw, big, rbuf) })
		dvcB := timeN(*bulk, func() { dvcRoundTrip(ctx, conn, big) })
		a50, a99 := pct(rawT, 50), pct(rawT, 99)
		b50, b99 := pct(dvcT, 50), pct(dvcT, 99)
		rawMiBs := 2 / pct(rawB, 50).Seconds() // 1 MiB each way
		dvcMiBs := 2 / pct(dvcB, 50).Seconds()
		p50r = append(p50r, float64(b50)/float64(a50))
		p99r = append(p99r, float64(b99)/float64(a99))
		bulkr = append(bulkr, dvcMiBs/rawMiBs)
		fmt.Printf("%5d  %6.1f/%-7.1f  %7.1f/%-8.1f  %4.2f  %4.2f  %9.0f  %12.0f  %10.2f\n", r+1,
			us(a50), us(a99), us(b50), us(b99), p50r[r], p99r[r], rawMiBs, dvcMiBs, bulkr[r])
	}
	fmt.Printf("median over %d rounds: p50 %.2fx raw, p99 %.2fx raw, 1 MiB echo throughput %.2f of raw\n",
		*rounds, median(p50r), median(p99r), median(bulkr))
	conn.Close()
	srv.Close()
}

func dvcRoundTrip(ctx context.Context, conn dvc.Conn, m []byte) {
	must(conn.Write(ctx, m))
	got, err := conn.Read(ctx)
	must(err)
	if len(got) != len(m) {
		log.Fatalf("rttbench: echo of %d bytes, want %d", len(got), len(m))
	}
}

func rawRoundTrip(c net.Conn, m, buf []byte) {
	_, err := c.Write(m)
	must(err)
	_, err = io.ReadFull(c, buf[:len(m)])
	must(err)
}

// serveRawEcho accepts one connection and echoes it: the baseline, a TCP
// echo in another process doing nothing but read and write.
func serveRawEcho(addr string) {
	ln, err := net.Listen("tcp", addr)
	must(err)
	c, err := ln.Accept()
	must(err)
	buf := make([]byte, 256<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func timeN(n int, f func()) []time.Duration {
	d := make([]time.Duration, n)
	for i := range d {
		t := time.Now()
		f()
		d[i] = time.Since(t)
	}
	slices.Sort(d)
	return d
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer l.Close()
	return l.Addr().String()
}

func dialRetry(addr string) net.Conn {
	for range 200 {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
	log.Fatalf("rttbench: raw echo at %s never came up", addr)
	return nil
}

func must(err error) {
	if err != nil {
		log.Fatal("rttbench: ", err)
	}
}
