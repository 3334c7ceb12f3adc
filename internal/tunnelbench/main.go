// Command tunnelbench measures a SOCKS5 tunnel beside its baselines in the
// same run: raw TCP to the same server, and
// optionally OpenSSH's `ssh -D` SOCKS proxy. For each variant it measures
// one stream's throughput (a download of -size bytes), the total of
// -streams concurrent streams (-size bytes in all), the latency of 1-byte
// request/response exchanges (p50, p99), and fairness: with -streams
// streams downloading, one stream's reader stops and starts again, four
// times, and the figure is the others' throughput while it is stopped over
// theirs while it reads (a tunnel without head-of-line blocking keeps at
// least 0.9). Beside the
// throughputs it reports the CPU time the proxy's processes (and their
// children) spent per GiB, which the machine's other load moves much less
// than it moves the throughput. The variants
// alternate in rounds, so the machine's noise hits all alike; the figures
// are medians over the rounds, the ratios medians of each round's ratios.
//
// The data come from a source server in a child process (this program with
// -source) on 127.0.0.1; the tunnel under test is either running already
// (-socks ADDR) or started by this program from two command lines, the
// server side's and the client side's, in which {socks} and {listen} are
// replaced by free loopback addresses (split on spaces, no quoting):
//
//	scripts/bench-tunnel.sh -rdpdvc-server 'rdpdvc tunnel -q -socks {socks} -listen {listen}' \
//	    -rdpdvc-client 'rdpdvc tunnel-client -q -connect {listen} -allow 127.0.0.1'
//	go run ./internal/tunnelbench -socks 127.0.0.1:1080 [-ssh 127.0.0.1:1081]
//
// scripts/bench-tunnel.sh starts a private sshd and `ssh -D` for the -ssh
// baseline. Results go to stdout, logs to stderr.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/internal/cpumeter"
	"github.com/rdpdvc/rdpdvc/tunnel/socks"
)

func main() { os.Exit(run()) }

type options struct {
	socksAddr, sshAddr   string
	socksPids, sshPids   string
	serverCmd, clientCmd string
	size                 int64
	streams              int
	requests             int
	fairness             time.Duration
	rounds               int
}

func run() int {
	var o options
	fs := flag.NewFlagSet("tunnelbench", flag.ContinueOnError)
	fs.StringVar(&o.socksAddr, "socks", "", "the tunnel under test: a running SOCKS5 proxy at `host:port`")
	fs.StringVar(&o.serverCmd, "rdpdvc-server", "", "or start the tunnel's server side with this `command` ({socks}, {listen} replaced)")
	fs.StringVar(&o.clientCmd, "rdpdvc-client", "", "and its client side with this `command` ({listen} replaced)")
	fs.StringVar(&o.sshAddr, "ssh", "", "the `ssh -D` baseline's SOCKS5 address (scripts/bench-tunnel.sh starts one)")
	fs.StringVar(&o.socksPids, "socks-pids", "", "the -socks tunnel's processes, `PID,...`: their CPU time (and their children's) is reported")
	fs.StringVar(&o.sshPids, "ssh-pids", "", "the ssh -D baseline's processes (ssh and sshd), `PID,...`")
	size := fs.String("size", "64MiB", "bytes of the one-stream download, and of the concurrent streams in all (`N`, NKiB, NMiB)")
	fs.IntVar(&o.streams, "streams", 8, "concurrent streams")
	fs.IntVar(&o.requests, "requests", 2000, "1-byte request/response exchanges per variant and round")
	fs.DurationVar(&o.fairness, "fairness", 2*time.Second, "the fairness test's measuring time in each of its two states")
	fs.IntVar(&o.rounds, "rounds", 3, "alternating rounds")
	source := fs.String("source", "", "internal: serve the data source on this listener `address`")
	freePort := fs.Bool("free-port", false, "print a free loopback TCP port and exit (for scripts)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch {
	case *freePort:
		fmt.Println(freeAddr().Port)
		return 0
	case *source != "":
		ln, err := net.Listen("tcp", *source)
		if err == nil {
			err = serveSource(ln)
		}
		if err != nil {
			log.Error("source", "err", err)
			return 1
		}
		return 0
	}
	var err error
	if o.size, err = parseSize(*size); err != nil || o.size < int64(o.streams) {
		fmt.Fprintf(os.Stderr, "tunnelbench: -size %q: want a size of at least -streams bytes\n", *size)
		return 2
	}
	if o.streams < 2 || o.requests < 1 || o.rounds < 1 || o.fairness <= 0 {
		fmt.Fprintln(os.Stderr, "tunnelbench: -streams must be at least 2, -requests and -rounds at least 1, -fairness positive")
		return 2
	}
	if (o.serverCmd == "") != (o.clientCmd == "") || (o.serverCmd != "" && o.socksAddr != "") {
		fmt.Fprintln(os.Stderr, "tunnelbench: give -socks, or both -rdpdvc-server and -rdpdvc-client")
		return 2
	}
	if err := bench(log, o); err != nil {
		log.Error("tunnelbench", "err", err)
		return 1
	}
	return 0
}

func bench(log *slog.Logger, o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	srcAddr := freeAddr()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	src, err := startCmd(ctx, []string{self, "-source", srcAddr.String()})
	if err != nil {
		return err
	}
	defer stop(src)

	variants := []variant{{name: "raw TCP", dial: func() (net.Conn, error) { return net.Dial("tcp", srcAddr.String()) }}}
	if o.sshAddr != "" {
		pids, err := parsePids(o.sshPids)
		if err != nil {
			return fmt.Errorf("-ssh-pids: %w", err)
		}
		variants = append(variants, socksVariant("ssh -D", o.sshAddr, srcAddr, pids))
	}
	tunnelAddr := o.socksAddr
	tunnelPids, err := parsePids(o.socksPids)
	if err != nil {
		return fmt.Errorf("-socks-pids: %w", err)
	}
	if o.serverCmd != "" {
		socksAddr, listenAddr := freeAddr().String(), freeAddr().String()
		expand := func(s string) []string {
			s = strings.ReplaceAll(s, "{socks}", socksAddr)
			return strings.Fields(strings.ReplaceAll(s, "{listen}", listenAddr))
		}
		srv, err := startCmd(ctx, expand(o.serverCmd))
		if err != nil {
			return fmt.Errorf("-rdpdvc-server: %w", err)
		}
		defer stop(srv)
		cl, err := startCmd(ctx, expand(o.clientCmd))
		if err != nil {
			return fmt.Errorf("-rdpdvc-client: %w", err)
		}
		defer stop(cl)
		tunnelAddr = socksAddr
		tunnelPids = []int{srv.Process.Pid, cl.Process.Pid}
	}
	if tunnelAddr != "" {
		variants = append(variants, socksVariant("rdpdvc", tunnelAddr, srcAddr, tunnelPids))
	}
	for _, v := range variants {
		if err := ready(v, 20*time.Second); err != nil {
			return fmt.Errorf("%s: not ready: %w", v.name, err)
		}
	}
	log.Info("measuring", "variants", len(variants), "rounds", o.rounds, "size", o.size, "streams", o.streams)

	results := make([][]figures, len(variants)) // [variant][round]
	for r := range o.rounds {
		for i := range variants {
			k := (i + r) % len(variants) // rotate who goes first
			f, err := measure(variants[k], o)
			if err != nil {
				return fmt.Errorf("%s: %w", variants[k].name, err)
			}
			log.Info("round", "n", r+1, "variant", variants[k].name, "figures", f.String())
			results[k] = append(results[k], f)
		}
	}
	report(os.Stdout, o, variants, results)
	return nil
}

type variant struct {
	name string
	dial func() (net.Conn, error)
	pids []int // the processes between the client and the source, whose CPU time is counted
}

// cpu returns the CPU time v's processes and their descendants have used
// (an sshd serves each connection from a child): a figure that moves much
// less with the machine's other load than throughput does.
func (v variant) cpu() time.Duration {
	var sum time.Duration
	var walk func(pid int)
	walk = func(pid int) {
		if d, ok := cpumeter.Of(pid); ok {
			sum += d
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, t := range tasks {
			b, _ := os.ReadFile(t)
			for _, c := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(c); err == nil {
					walk(n)
				}
			}
		}
	}
	for _, p := range v.pids {
		walk(p)
	}
	return sum
}

func parsePids(s string) ([]int, error) {
	var pids []int
	for f := range strings.SplitSeq(s, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad PID %q", f)
		}
		pids = append(pids, n)
	}
	return pids, nil
}

func socksVariant(name, proxy string, target *net.TCPAddr, pids []int) variant {
	return variant{name: name, pids: pids, dial: func() (net.Conn, error) {
		c, err := net.Dial("tcp", proxy)
		if err != nil {
			return nil, err
		}
		if _, err := socks.Connect(c, target.IP.String(), uint16(target.Port), "", "", 10*time.Second); err != nil {
			_ = c.Close()
			return nil, err
		}
		return c, nil
	}}
}

// ready waits until one exchange through v works: the tunnel's two sides
// and sshd come up in their own time.
func ready(v variant, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := v.dial()
		if err == nil {
			_, err = exchange(c, 1)
			_ = c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type figures struct {
	one, many float64       // MiB/s
	cpuOne    float64       // CPU ms per GiB of v's processes, one stream
	cpuMany   float64       // and many
	p50, p99  time.Duration // 1-byte exchange
	fair      float64       // the others' throughput after one reader stopped, over before
}

func (f figures) String() string {
	return fmt.Sprintf("1 stream %.0f MiB/s (%.0f CPU ms/GiB), streams %.0f MiB/s (%.0f CPU ms/GiB), p50 %.0f µs, p99 %.0f µs, fairness %.2f",
		f.one, f.cpuOne, f.many, f.cpuMany, us(f.p50), us(f.p99), f.fair)
}

func measure(v variant, o options) (figures, error) {
	var f figures
	var err error
	perGiB := func(d time.Duration) float64 { return float64(d.Milliseconds()) / (float64(o.size) / (1 << 30)) }
	c0 := v.cpu()
	if f.one, err = throughput(v, 1, o.size); err != nil {
		return f, fmt.Errorf("one stream: %w", err)
	}
	c1 := v.cpu()
	if f.many, err = throughput(v, o.streams, o.size); err != nil {
		return f, fmt.Errorf("%d streams: %w", o.streams, err)
	}
	f.cpuOne, f.cpuMany = perGiB(c1-c0), perGiB(v.cpu()-c1)
	c, err := v.dial()
	if err != nil {
		return f, err
	}
	d, err := exchange(c, o.requests)
	_ = c.Close()
	if err != nil {
		return f, fmt.Errorf("latency: %w", err)
	}
	f.p50, f.p99 = pct(d, 50), pct(d, 99)
	if f.fair, err = fairness(v, o.streams, o.fairness); err != nil {
		return f, fmt.Errorf("fairness: %w", err)
	}
	return f, nil
}

// throughput downloads total bytes over n streams at once, dialled before
// the clock starts, and returns MiB/s.
func throughput(v variant, n int, total int64) (float64, error) {
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	for i := range conns {
		c, err := v.dial()
		if err != nil {
			return 0, err
		}
		conns[i] = c
	}
	each := total / int64(n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range conns {
		wg.Go(func() { errs[i] = download(c, each) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(each*int64(n)) / (1 << 20) / elapsed.Seconds(), nil
}

// The source's requests: a command byte and a big-endian u64 argument.
const (
	cmdDownload = 'D' // send the argument's count of bytes (0: until the reader goes away), then EOF
	cmdEcho     = 'E' // echo every byte back
	reqLen      = 9
)

func request(cmd byte, n int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{cmd}, uint64(n))
}

func download(c net.Conn, n int64) error {
	if _, err := c.Write(request(cmdDownload, n)); err != nil {
		return err
	}
	got, err := io.CopyBuffer(io.Discard, c, make([]byte, 256<<10))
	if err == nil && got != n {
		err = fmt.Errorf("download of %d bytes ended after %d", n, got)
	}
	return err
}

// exchange sends one byte and waits for its echo, n times, and returns the
// sorted round-trip times.
func exchange(c net.Conn, n int) ([]time.Duration, error) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(request(cmdEcho, 0)); err != nil {
		return nil, err
	}
	d := make([]time.Duration, n)
	b := []byte{0}
	for i := range d {
		t := time.Now()
		if _, err := c.Write(b); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return nil, err
		}
		d[i] = time.Since(t)
	}
	slices.Sort(d)
	return d, nil
}

// fairnessCycles is how many times fairness stalls and resumes its
// stream: alternating the two states, rather than measuring one after the
// other, keeps the machine's changing load from reading as (un)fairness.
const fairnessCycles = 4

// pipeBytes bounds what can wait on the way to a stalled reader after the
// point where a tunnel multiplexes its streams: the kernel's buffers of
// the socket between there and the reader, both ends (net.core rmem and
// wmem maxima are a few MiB each on Linux), with room to spare.
const pipeBytes = 32 << 20

// settleTime is how long a stalled stream takes to fill pipeBytes at
// rate bytes/s, the rate each stream had with every reader reading: only
// then does a tunnel with head-of-line blocking show it. 0.5 s to 5 s.
func settleTime(rate float64) time.Duration {
	if rate <= 0 {
		return 5 * time.Second
	}
	return min(max(time.Duration(pipeBytes/rate*float64(time.Second)), 500*time.Millisecond), 5*time.Second)
}

// fairness runs n endless downloads and alternates two states,
// fairnessCycles times: every stream reading, and stream 0's reader
// stopped (after a settling time for the buffers on its way to fill). In
// both it counts what streams 1..n-1 receive during window/fairnessCycles;
// the settling time is settleTime of the first reading state's rate;
// it returns their rate in the stalled state over their rate in the other.
// A tunnel with head-of-line blocking gives about 0.
func fairness(v variant, n int, window time.Duration) (float64, error) {
	conns := make([]net.Conn, n)
	counts := make([]atomic.Int64, n)
	var gate sync.Mutex // held while stream 0 is stalled
	stalled := false
	var wg sync.WaitGroup
	defer func() {
		if stalled {
			gate.Unlock()
		}
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
		wg.Wait()
	}()
	for i := range conns {
		c, err := v.dial()
		if err != nil {
			return 0, err
		}
		conns[i] = c
		if _, err := c.Write(request(cmdDownload, 0)); err != nil {
			return 0, err
		}
	}
	for i, c := range conns {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				if i == 0 {
					// A gate, not a critical section: wait while
					// the controller holds it.
					gate.Lock()
					gate.Unlock()
				}
				k, err := c.Read(buf)
				counts[i].Add(int64(k))
				if err != nil {
					return
				}
			}
		})
	}
	others := func() int64 {
		var s int64
		for i := 1; i < n; i++ {
			s += counts[i].Load()
		}
		return s
	}
	slot := window / fairnessCycles
	measure := func() (int64, time.Duration) {
		a, t := others(), time.Now()
		time.Sleep(slot)
		return others() - a, time.Since(t)
	}
	var freeBytes, stallBytes int64
	var freeTime, stallTime time.Duration
	time.Sleep(500 * time.Millisecond)
	settle := time.Duration(0)
	for range fairnessCycles {
		b, d := measure()
		freeBytes, freeTime = freeBytes+b, freeTime+d
		if settle == 0 {
			settle = settleTime(float64(freeBytes) / freeTime.Seconds() / float64(n-1))
		}
		gate.Lock()
		stalled = true
		time.Sleep(settle)
		b, d = measure()
		stallBytes, stallTime = stallBytes+b, stallTime+d
		gate.Unlock()
		stalled = false
		time.Sleep(settle) // stream 0 drains what waited for it
	}
	if freeBytes == 0 {
		return 0, errors.New("no bytes arrived with every reader reading")
	}
	return (float64(stallBytes) / stallTime.Seconds()) / (float64(freeBytes) / freeTime.Seconds()), nil
}

// serveSource is the data source: a TCP server doing nothing but the two
// requests, in its own process so that the benchmark's client does not
// share its scheduler.
func serveSource(ln net.Listener) error {
	block := make([]byte, 256<<10)
	for i := range block {
		block[i] = byte(i * 7)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			req := make([]byte, reqLen)
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			n := int64(binary.BigEndian.Uint64(req[1:]))
			switch req[0] {
			case cmdDownload:
				for sent := int64(0); n == 0 || sent < n; {
					b := block
					if n != 0 {
						b = b[:min(int64(len(b)), n-sent)]
					}
					k, err := c.Write(b)
					sent += int64(k)
					if err != nil {
						return
					}
				}
			case cmdEcho:
				_, _ = io.CopyBuffer(c, c, make([]byte, 64<<10))
			}
		}()
	}
}

func report(w io.Writer, o options, variants []variant, results [][]figures) {
	fmt.Fprintf(w, "%d rounds; one stream: %s; %d streams: %s in all; %d 1-byte exchanges; fairness windows %v\n\n",
		o.rounds, sizeString(o.size), o.streams, sizeString(o.size), o.requests, o.fairness)
	fmt.Fprintf(w, "%-8s  %14s  %15s  %8s  %8s  %8s  %s\n", "variant", "1 stream MiB/s", fmt.Sprintf("%d streams MiB/s", o.streams),
		"p50 µs", "p99 µs", "fairness", "CPU ms/GiB 1 stream, streams")
	for k, v := range variants {
		rs := results[k]
		cpu := "-"
		if len(v.pids) > 0 {
			cpu = fmt.Sprintf("%.0f, %.0f", med(rs, func(f figures) float64 { return f.cpuOne }), med(rs, func(f figures) float64 { return f.cpuMany }))
		}
		fmt.Fprintf(w, "%-8s  %14.0f  %15.0f  %8.1f  %8.1f  %8.2f  %s\n", v.name,
			med(rs, func(f figures) float64 { return f.one }), med(rs, func(f figures) float64 { return f.many }),
			med(rs, func(f figures) float64 { return us(f.p50) }), med(rs, func(f figures) float64 { return us(f.p99) }),
			med(rs, func(f figures) float64 { return f.fair }), cpu)
	}
	last := len(variants) - 1
	if last == 0 {
		return
	}
	fmt.Fprintln(w)
	for base := range last {
		ratio := func(get func(figures) float64) float64 {
			v := make([]float64, o.rounds)
			for r := range v {
				v[r] = get(results[last][r]) / get(results[base][r])
			}
			return median(v)
		}
		fmt.Fprintf(w, "%s / %s: 1 stream %.2f, %d streams %.2f, p50 %.2f, p99 %.2f", variants[last].name, variants[base].name,
			ratio(func(f figures) float64 { return f.one }), o.streams, ratio(func(f figures) float64 { return f.many }),
			ratio(func(f figures) float64 { return us(f.p50) }), ratio(func(f figures) float64 { return us(f.p99) }))
		if len(variants[base].pids) > 0 && len(variants[last].pids) > 0 {
			fmt.Fprintf(w, ", CPU per GiB 1 stream %.2f, %d streams %.2f",
				ratio(func(f figures) float64 { return f.cpuOne }), o.streams, ratio(func(f figures) float64 { return f.cpuMany }))
		}
		fmt.Fprintln(w)
	}
}

func med(rs []figures, get func(figures) float64) float64 {
	v := make([]float64, len(rs))
	for i, f := range rs {
		v[i] = get(f)
	}
	return median(v)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func freeAddr() *net.TCPAddr {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err) // loopback without a free port: nothing here can run
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr)
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if rest, ok := strings.CutSuffix(s, suffix); ok {
			s, mult = rest, m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > 1<<40/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func sizeString(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func startCmd(ctx context.Context, argv []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	return c, c.Start()
}

// stop ends a child this program started and waits for it.
func stop(c *exec.Cmd) {
	_ = c.Process.Kill()
	_ = c.Wait()
}
