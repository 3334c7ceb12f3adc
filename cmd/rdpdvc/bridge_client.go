package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/bridge"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/trace"
)

func init() {
	register(&command{
		name:    "bridge-client",
		summary: "the client side of a bridge over the portable transport: each channel instance connects to -socket",
		run:     runBridgeClient,
	})
}

const bridgeClientUsage = `usage: rdpdvc bridge-client [-connect host:port] -channel NAME -socket unix:PATH|tcp:HOST:PORT [-framing stream|message] [flags]

The client side of a bridge (docs/bridge.md) over the portable transport:
it connects to rdpdvc bridge -listen and, for each instance of channel NAME
the server opens, connects once to -socket and joins the two until either
closes. If that connect fails, the instance is refused: the server's open
fails and its local connection is closed. Only the socket named here is
ever connected to. -framing must be the server's.

Exit status: 0 when the server hung up or on Ctrl+C, 1 when the connection
failed, 2 for bad usage.

flags:
`

func runBridgeClient(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		bf        bridgeFlags
		addr      string
		retry     time.Duration
		reconnect bool
		queue     int
		maxConns  int
		lf        cli.LogFlags
		tf        cli.TraceFlag
	)
	fs := flag.NewFlagSet("rdpdvc bridge-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, bridgeClientUsage); fs.PrintDefaults() }
	bf.register(fs)
	fs.StringVar(&addr, "connect", cli.DefaultAddr, "portable transport: connect to the RDP server at `host:port`")
	fs.DurationVar(&retry, "retry", 10*time.Second, "keep trying to connect for this long")
	fs.BoolVar(&reconnect, "reconnect", false, "when the server goes away, connect again (until Ctrl+C)")
	fs.IntVar(&maxConns, "max-conns", bridge.DefaultClientMaxConns, "bridge connections at once; the server's instances beyond it are refused")
	fs.IntVar(&queue, "queue", bridge.DefaultQueueBytes, "`bytes` received and not yet written to the socket, per connection; when the socket's program leaves it full for -timeout, that connection ends")
	lf.Register(fs)
	tf.Register(fs)
	log, code, ok := lf.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	sock, framing, err := bf.parse()
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err == nil && (queue <= 0 || maxConns <= 0) {
		err = fmt.Errorf("-queue and -max-conns must be > 0")
	}
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc bridge-client:", err, "(-h for help)")
		return 2
	}
	cli.WarnExposed(stderr, addr)
	rec, err := tf.Recorder(trace.Client)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc bridge-client:", err)
		return 1
	}
	defer rec.Close()
	bc := bridge.NewClient(bridge.ClientConfig{Addr: sock, Framing: framing, Timeout: bf.timeout, QueueBytes: queue, MaxConns: maxConns, Logger: log})
	defer bc.Wait()
	if reconnect {
		retry = -1
	}
	log.Info("bridge", "channel", bf.channel, "socket", sock.String(), "framing", framing.String())
	return cli.Reconnect(ctx, reconnect, log, func(ctx context.Context) error {
		return bridgeServe(ctx, addr, retry, bf.channel, bc, rec, log)
	})
}

// bridgeServe serves one portable connection.
func bridgeServe(ctx context.Context, addr string, retry time.Duration, channel string, bc *bridge.Client, rec *trace.Recorder, log *slog.Logger) error {
	conn, err := cli.Redial(ctx, addr, retry, "is rdpdvc bridge -listen running?", log, func(ctx context.Context) (*portable.Client, error) {
		return portable.Dial(ctx, addr, portable.Config{Logger: log})
	})
	if err != nil {
		return err
	}
	if err := rec.Registrar(conn).Listen(channel, bc.Listener()); err != nil {
		conn.Close()
		return err
	}
	log.Info("connected", "addr", addr)
	return conn.Run(ctx)
}
