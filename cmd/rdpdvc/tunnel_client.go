package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/trace"
	"github.com/rdpdvc/rdpdvc/tunnel"
	"github.com/rdpdvc/rdpdvc/tunnel/allow"
)

func init() {
	register(&command{
		name:    "tunnel-client",
		summary: "TCP through the RDP connection, client side: connect the session's streams where -allow rules let them go",
		run:     runTunnelClient,
	})
}

const tunnelClientUsage = `usage: rdpdvc tunnel-client [-connect host:port] -allow RULE ... [-allow-listen HOST:PORT ...] [flags]

The client side of the rdpdvc::tunnel channel (docs/tunnel.md) over the
portable transport: connects to rdpdvc tunnel -listen and makes the
connections its SOCKS5 proxy and forwards ask for, from this machine, where
the rules allow. Nothing is allowed until -allow says so:

  -allow HOST[:PORTS]      a name (example.com) or every name under a
                           domain (*.example.com), on every port or PORTS
                           (80, 80,443, 8000-8999)
  -allow CIDR[:PORTS]      addresses (10.0.0.0/8, 192.0.2.7, [2001:db8::]/32)
  -allow '*'               everything (warned about)

Names are resolved here and the rules checked again on the addresses they
resolve to; the address checked is the one connected. Each refusal is
logged with the rules that refused it, and answered with SOCKS reply 2.

  -allow-listen HOST:PORT  let the server's -reverse open a listener at
                           exactly this address (repeatable); none otherwise

flags:
`

func runTunnelClient(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		rules, listens     tunnelSpecs
		addr               string
		retry              time.Duration
		reconnect          bool
		window, maxStreams int
		lf                 cli.LogFlags
		tf                 cli.TraceFlag
	)
	fs := flag.NewFlagSet("rdpdvc tunnel-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, tunnelClientUsage)
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\n"+cli.ExitStatus)
	}
	fs.StringVar(&addr, "connect", cli.DefaultAddr, "portable transport: connect to rdpdvc tunnel at `host:port`")
	fs.Var(&rules, "allow", "where connections may go: `RULE` as above (repeatable)")
	fs.Var(&listens, "allow-listen", "an address `HOST:PORT` the server may have this side listen on (repeatable)")
	fs.DurationVar(&retry, "retry", 10*time.Second, "keep trying to connect for this long")
	fs.BoolVar(&reconnect, "reconnect", false, "when the server goes away, connect again (until Ctrl+C)")
	fs.IntVar(&window, "window", tunnel.DefaultWindow, "receive window per stream, `bytes` (at most 16 MiB)")
	fs.IntVar(&maxStreams, "max-streams", tunnel.DefaultMaxStreams, "streams open at once")
	lf.Register(fs)
	tf.Register(fs)
	log, code, ok := lf.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rdpdvc tunnel-client: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if window < 1 || window > tunnel.MaxWindow || maxStreams < 1 {
		fmt.Fprintf(stderr, "rdpdvc tunnel-client: -window wants 1 to %d bytes, -max-streams at least 1\n", tunnel.MaxWindow)
		return 2
	}
	rs, err := allow.Parse(rules)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc tunnel-client: -allow:", err)
		return 2
	}
	ls, err := allow.ParseListen(listens)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc tunnel-client: -allow-listen:", err)
		return 2
	}
	switch {
	case rs.AllowsAll():
		fmt.Fprintln(stderr, "WARNING: -allow '*' lets the RDP session connect anywhere this machine can reach, its local network and loopback services included.")
	case len(rules) == 0 && len(listens) == 0:
		fmt.Fprintln(stderr, "WARNING: no -allow rule: every connection the session asks for will be refused.")
	}
	cli.WarnExposed(stderr, addr)
	log.Info("tunnel rules", "allow", rs.String(), "allow-listen", ls.String())
	rec, err := tf.Recorder(trace.Client)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc tunnel-client:", err)
		return 1
	}
	defer rec.Close()
	if reconnect {
		retry = -1
	}
	return cli.Reconnect(ctx, reconnect, log, func(ctx context.Context) error {
		conn, err := cli.Redial(ctx, addr, retry, "is rdpdvc tunnel -listen running?", log, func(ctx context.Context) (*portable.Client, error) {
			return portable.Dial(ctx, addr, portable.Config{Logger: log})
		})
		if err != nil {
			return err
		}
		c := tunnel.NewRuledClient(rs, ls, log)
		c.Window, c.MaxStreams = window, maxStreams
		if err := c.Register(rec.Registrar(conn)); err != nil {
			conn.Close()
			return err
		}
		log.Info("connected; carrying the session's streams", "addr", addr)
		err = conn.Run(ctx)
		c.Close()
		return err
	})
}
