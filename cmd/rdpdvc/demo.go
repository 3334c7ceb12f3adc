package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/simple"
	"github.com/rdpdvc/rdpdvc/trace"
)

func init() {
	register(&command{
		name:    "demo",
		summary: "Simple ping/echo: server and client over the portable transport on loopback, in one process",
		run:     runDemo,
	})
}

// runDemo is the README's first command: a Simple server and client,
// joined by the real portable transport over a loopback TCP connection,
// pinging -count times; then the PNP part (demo_pnp.go) redirects devices
// and drives them from the server side. It exits 0 when every ping came
// back intact and every PNP step did what it should.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		count    int
		interval time.Duration
		payload  int
		withPNP  bool
		lf       cli.LogFlags
		tf       cli.TraceFlag
	)
	fs := flag.NewFlagSet("rdpdvc demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&count, "count", 5, "pings to send (0 = until Ctrl+C)")
	fs.DurationVar(&interval, "interval", time.Second, "time between pings")
	fs.IntVar(&payload, "payload", simple.DefaultPayload, "payload `bytes` per ping")
	fs.BoolVar(&withPNP, "pnp", true, "after the pings, redirect devices over MS-RDPEPNP and drive them from the server side (-pnp=false skips it)")
	lf.Register(fs)
	tf.Register(fs)
	log, code, ok := lf.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if err := cli.CheckPings(count, interval, payload, simple.MaxPayload); err != nil {
		fmt.Fprintln(stderr, "rdpdvc demo:", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rdpdvc demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	// The client's per-message lines would double the output; show them
	// with -v only.
	clientLF := lf
	clientLF.Quiet = !lf.Verbose
	clientLog, _ := clientLF.Logger(stderr)

	rec, err := tf.Recorder(trace.Server)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc demo:", err)
		return 1
	}
	defer rec.Close()
	st, err := demo(ctx, demoConfig{count: count, interval: interval, payload: payload, log: log, clientLog: clientLog.With("side", "client"), rec: rec})
	code = lf.Finish(stdout, log, simple.ChannelName, &st, err, "demo failed")
	if code != 0 || !withPNP || ctx.Err() != nil {
		return code
	}
	if err := demoPNP(ctx, log); err != nil {
		log.Error("PNP demo failed", "err", err)
		return 1
	}
	return 0
}

type demoConfig struct {
	count          int
	interval       time.Duration
	payload        int
	log, clientLog *slog.Logger
	rec            *trace.Recorder // -trace: the server side's channel; nil without
}

func demo(ctx context.Context, c demoConfig) (simple.Stats, error) {
	ln, err := portable.Listen("127.0.0.1:0", portable.Config{Logger: c.log})
	if err != nil {
		return simple.Stats{}, err
	}
	defer ln.Close()
	addr := ln.Addr().String()
	c.log.Info("portable transport listening; client connecting", "addr", addr)

	// The client side: what rdp-simple-plugin-client does.
	clientCtx, stopClient := context.WithCancel(context.WithoutCancel(ctx))
	defer stopClient()
	clientErr := make(chan error, 1)
	channelClosed := make(chan struct{})
	echoer := &notifyClosed{l: &simple.Echoer{Logger: c.clientLog}, closed: channelClosed}
	go func() {
		cl, err := portable.Dial(clientCtx, addr, portable.Config{Logger: c.clientLog})
		if err != nil {
			clientErr <- err
			return
		}
		if err := cl.Listen(simple.ChannelName, echoer); err != nil {
			cl.Close()
			clientErr <- err
			return
		}
		clientErr <- cl.Run(clientCtx)
	}()

	// The server side: what rdp-simple-plugin-server -listen does.
	srv, err := ln.Accept(ctx)
	if err != nil {
		stopClient()
		<-clientErr
		return simple.Stats{}, err
	}
	go srv.Run(context.Background())
	conn, err := c.rec.Opener(srv).Open(ctx, simple.ChannelName, dvc.WithFramer(simple.FrameLen))
	if err != nil {
		srv.Close()
		<-clientErr
		return simple.Stats{}, err
	}
	p := &simple.Pinger{Interval: c.interval, Payload: c.payload, Count: c.count, Logger: c.log}
	if c.payload == 0 {
		p.Payload = -1
	}
	st, runErr := p.Run(ctx, conn)
	conn.Close()
	select { // let the client see the DYNVC_CLOSE
	case <-channelClosed:
	case <-time.After(2 * time.Second):
	}
	// Hang up from the client's end first: the server then reads a clean
	// EOF, where closing the server's end first can reset the client's
	// connection with its last DYNVC_CLOSE unread.
	stopClient()
	<-clientErr
	srv.Close()
	return st, runErr
}

// notifyClosed wraps the demo client's listener to tell when its one
// channel has been closed, so the demo can hang up without cutting the
// close short.
type notifyClosed struct {
	l      dvc.Listener
	closed chan struct{}
	once   sync.Once
}

func (n *notifyClosed) Accept(ch dvc.Channel) (dvc.Handler, error) {
	h, err := n.l.Accept(ch)
	if err != nil {
		return nil, err
	}
	return closedHandler{h, n}, nil
}

type closedHandler struct {
	dvc.Handler
	n *notifyClosed
}

func (c closedHandler) Closed(err error) {
	c.Handler.Closed(err)
	c.n.once.Do(func() { close(c.n.closed) })
}
