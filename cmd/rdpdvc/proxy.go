package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/chanpdu"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/trace"
)

func init() {
	register(&command{
		name:    "proxy",
		summary: "sit between a portable-transport client and server, forward both ways and print or trace every MS-RDPEDYC PDU",
		run:     runProxy,
	})
}

const proxyUsage = `usage: rdpdvc proxy -connect SERVER [-listen ADDR] [-trace FILE] [-q]

A man in the middle for the portable transport: clients connect to ADDR
(default 127.0.0.1:3391) instead of to SERVER, and every byte goes on
unchanged both ways. Each MS-RDPEDYC PDU that passes is printed on stdout,
decoded (and the messages of Simple, ECHO, PNPDR and FileRedirectorChannel
by their own protocol), and with -trace recorded in FILE in the format of
-trace (docs/trace.md), for rdpdvc decode -trace FILE. It serves several
connections at once; lines and records carry the connection's number.
A stream that stops parsing is reported and then forwarded unparsed.

Exit status: 0 after Ctrl+C, 1 on failure, 2 for bad usage.

flags:
`

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var listen, connect, traceFile string
	var lf cli.LogFlags
	fs := flag.NewFlagSet("rdpdvc proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, proxyUsage); fs.PrintDefaults() }
	fs.StringVar(&listen, "listen", "127.0.0.1:3391", "`address` the clients connect to")
	fs.StringVar(&connect, "connect", "", "`address` of the portable-transport server (rdp-simple-plugin-server -listen, rdpdvc pnp-server -listen, ...)")
	fs.StringVar(&traceFile, "trace", "", "also record every PDU in `FILE`")
	lf.Register(fs)
	log, code, ok := lf.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if connect == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "rdpdvc proxy: -connect SERVER is needed, and no arguments (-h for help)")
		return 2
	}
	var rec *trace.Recorder
	if traceFile != "" {
		var err error
		if rec, err = trace.Create(traceFile, trace.Server); err != nil {
			fmt.Fprintln(stderr, "rdpdvc proxy:", err)
			return 1
		}
		defer rec.Close()
	}
	cli.WarnExposed(stderr, listen)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc proxy:", err)
		return 1
	}
	log.Info("proxying: connect the client to "+cli.DialAddr(ln.Addr()), "listen", ln.Addr().String(), "server", connect)
	p := &proxy{server: connect, rec: rec, out: stdout, log: log}
	err = p.serve(ctx, ln)
	if ctx.Err() != nil {
		return 0
	}
	fmt.Fprintln(stderr, "rdpdvc proxy:", err)
	return 1
}

type proxy struct {
	server string
	rec    *trace.Recorder
	log    *slog.Logger
	omu    sync.Mutex // lines on out
	out    io.Writer
	n      int
}

// serve accepts until ctx is done, each connection on its own goroutine.
func (p *proxy) serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		p.n++
		n := p.n
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.relay(cctx, n, c)
		}()
	}
}

// relay joins one client to a new connection to the server.
func (p *proxy) relay(ctx context.Context, n int, client net.Conn) {
	defer client.Close()
	log := p.log.With("conn", n)
	dctx, cancel := context.WithTimeout(ctx, cli.DialTimeout)
	server, err := (&net.Dialer{}).DialContext(dctx, "tcp", p.server)
	cancel()
	if err != nil {
		log.Error("cannot reach the server; dropping the client", "err", err)
		return
	}
	defer server.Close()
	stop := context.AfterFunc(ctx, func() { client.Close(); server.Close() })
	defer stop()
	log.Info("client connected", "client", client.RemoteAddr().String())
	d := &lockedDecoder{d: newTraceDecoder(&lockedWriter{p: p}, ""), conn: n}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(log, n, trace.Client, server, client, d) }()
	go func() { defer wg.Done(); p.pipe(log, n, trace.Server, client, server, d) }()
	wg.Wait()
	log.Info("connection ended")
}

// pipe forwards src to dst chunk by chunk (MS-RDPBCGR 2.2.6.1, as the
// portable transport carries it), records each whole virtual channel
// message, and half-closes dst at the end of src.
func (p *proxy) pipe(log *slog.Logger, n int, from trace.Side, dst, src net.Conn, d *lockedDecoder) {
	defer func() {
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			dst.Close()
		}
	}()
	reasm := chanpdu.Reassembler{MaxLength: 1 << 16}
	buf := make([]byte, chanpdu.HeaderSize+portable.ChunkSize)
	for {
		if _, err := io.ReadFull(src, buf[:chanpdu.HeaderSize]); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Info("stream ended", "from", from, "err", err)
			}
			return
		}
		h, err := chanpdu.ParseHeader(buf[:chanpdu.HeaderSize])
		var cl int
		if err == nil {
			cl, err = reasm.NextChunkLen(h, portable.ChunkSize)
		}
		got := 0
		if err == nil {
			got, err = io.ReadFull(src, buf[chanpdu.HeaderSize:chanpdu.HeaderSize+cl])
		}
		// Only what arrived goes on: a chunk cut short is forwarded cut.
		if _, werr := dst.Write(buf[:chanpdu.HeaderSize+got]); werr != nil {
			return
		}
		if err != nil {
			// Not a chunk stream (or cut short): say so once, then
			// forward whatever comes, unparsed.
			log.Warn("the stream stopped parsing; forwarding the rest unparsed", "from", from, "err", err)
			d.line(fmt.Sprintf("# %s stream: %v; the rest is forwarded unparsed", from, err))
			io.Copy(dst, src)
			return
		}
		msg, done, err := reasm.Push(h, buf[chanpdu.HeaderSize:chanpdu.HeaderSize+cl])
		if err != nil {
			log.Warn("the stream stopped parsing; forwarding the rest unparsed", "from", from, "err", err)
			d.line(fmt.Sprintf("# %s stream: %v; the rest is forwarded unparsed", from, err))
			io.Copy(dst, src)
			return
		}
		if !done {
			continue
		}
		e := trace.Event{Time: time.Now(), From: from, Kind: trace.Data, Channel: trace.Channel, Data: msg, Len: len(msg), Conn: n}
		if p.rec != nil {
			p.rec.Record(e)
		}
		d.record(e)
	}
}

// lockedDecoder serialises the two directions' records through one
// decoder, which follows the connection's channel names.
type lockedDecoder struct {
	mu   sync.Mutex
	d    *traceDecoder
	conn int
}

func (l *lockedDecoder) record(e trace.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d.record(e)
}

func (l *lockedDecoder) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.d.out, "[%d] %s\n", l.conn, s)
}

// lockedWriter writes to the proxy's output, one Write at a time: each
// connection's decoder writes its lines in pieces, and the pieces of two
// lines must not interleave.
type lockedWriter struct {
	p    *proxy
	part []byte
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.part = append(w.part, b...)
	if i := bytes.LastIndexByte(w.part, '\n'); i >= 0 {
		w.p.omu.Lock()
		w.p.out.Write(w.part[:i+1])
		w.p.omu.Unlock()
		w.part = append(w.part[:0], w.part[i+1:]...)
	}
	return len(b), nil
}
