package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/echo"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/trace"
)

func init() {
	register(&command{
		name:    "echo",
		summary: "probe an RDP client's ECHO channel (MS-RDPEECO): round trips of -size bytes",
		run:     runEcho,
	})
}

type echoOptions struct {
	listen, connect string
	xrdp            bool
	display         string
}

// echoUsage heads `rdpdvc echo -h`. People read "-listen" and "-connect"
// from the client's point of view; the pairing says who dials whom.
const echoUsage = `usage: rdpdvc echo [-listen host:port | -connect host:port | -xrdp] [flags]

rdpdvc echo is the RDP server side of MS-RDPEECO: it opens the ECHO channel
on a client and measures round trips of -size bytes. Over the portable
transport it listens, and the client connects to it:

  rdpdvc echo -listen 127.0.0.1:3390
  rdp-simple-plugin-client -connect 127.0.0.1:3390   # answers ECHO (unless -echo=false)

They may start in either order: the client retries for its -retry (10s).
-connect is the other way round, for a portable client that listens
rather than dials. Inside an xrdp session (-xrdp, the default there) the
client is the session's own RDP client: mstsc, or FreeRDP with /echo.

`

// runEcho opens ECHO as the RDP server and probes it with echo.Prober.
// The RDP connection is the portable transport (-listen: wait for one
// client; -connect: dial a client that listens) or the xrdp session this
// runs in (-xrdp, the default inside one).
func runEcho(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		o  echoOptions
		p  echo.Prober
		lf cli.LogFlags
		tf cli.TraceFlag
	)
	fs := flag.NewFlagSet("rdpdvc echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "", "portable transport: wait for a client on `host:port` (default "+cli.DefaultAddr+" outside xrdp)")
	fs.StringVar(&o.connect, "connect", "", "portable transport: connect to a client listening on `host:port`, as the server side")
	fs.BoolVar(&o.xrdp, "xrdp", false, "open ECHO through xrdp's chansrv (default inside an xrdp session)")
	fs.StringVar(&o.display, "display", "", "xrdp: the session's X `display` (default $DISPLAY)")
	fs.IntVar(&p.Count, "count", 5, "requests to send (0 = until Ctrl+C)")
	fs.DurationVar(&p.Interval, "interval", time.Second, "time between requests")
	fs.IntVar(&p.Size, "size", echo.DefaultSize, "echoRequest `bytes` (at least 1)")
	fs.DurationVar(&p.Timeout, "timeout", 0, "count a request lost after this long (default max(5×interval, 5s))")
	lf.Register(fs)
	tf.Register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, echoUsage)
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nExit status: 0 when every request came back intact (Ctrl+C included), 1 otherwise, 2 for bad usage.")
	}
	log, code, ok := lf.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	err := cli.CheckPings(p.Count, p.Interval, 0, 0)
	if err == nil && (p.Size < 1 || p.Size > echo.MaxSize) {
		err = fmt.Errorf("-size %d: want 1 to %d bytes", p.Size, echo.MaxSize)
	}
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc echo:", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rdpdvc echo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	rec, err := tf.Recorder(trace.Server)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc echo:", err)
		return 1
	}
	defer rec.Close()
	p.Logger = log

	op, closeOp, err := echoOpener(ctx, &o, log, stderr)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			log.Error("no RDP connection", "err", err)
		}
		return 1
	}
	conn, err := rec.Opener(op).Open(ctx, echo.ChannelName)
	if err != nil {
		closeOp()
		log.Error("cannot open ECHO", "err", err)
		return 1
	}
	st, err := p.Run(ctx, conn)
	conn.Close()
	closeOp()
	return lf.Finish(stdout, log, echo.ChannelName, &st, err, "probe ended")
}

// echoOpener sets up the RDP connection the flags ask for.
func echoOpener(ctx context.Context, o *echoOptions, log *slog.Logger, stderr io.Writer) (dvc.Opener, func(), error) {
	useXRDP := o.xrdp || (o.listen == "" && o.connect == "" && xrdp.Detect())
	switch {
	case useXRDP:
		op, err := xrdp.New(xrdp.Options{Display: o.display})
		if err != nil {
			return nil, nil, err
		}
		log.Info("using the xrdp session", "socket", op.SocketPath())
		return op, func() {}, nil
	case o.connect != "":
		cli.WarnExposed(stderr, o.connect)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", o.connect)
		if err != nil {
			return nil, nil, err
		}
		srv := portable.NewServer(c, portable.Config{Logger: log})
		go srv.Run(context.Background())
		return srv, func() { srv.Close() }, nil
	}
	ln, err := portable.Listen(cli.ListenAddr(o.listen, stderr), portable.Config{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	log.Info("waiting for a client (portable transport): rdp-simple-plugin-client -connect "+cli.DialAddr(ln.Addr()), "addr", ln.Addr().String())
	srv, err := ln.Accept(ctx)
	if err != nil {
		return nil, nil, err
	}
	go srv.Run(context.Background())
	return srv, func() { srv.Close() }, nil
}
