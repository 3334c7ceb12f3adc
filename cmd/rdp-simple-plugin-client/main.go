// Command rdp-simple-plugin-client is the Simple sample's client: it
// listens on the dvc::sample::simpleplugin channel and echoes every
// message back unchanged, logging what it saw. It also answers the ECHO
// channel (MS-RDPEECO) as Windows clients and FreeRDP's /echo do, so
// `rdpdvc echo -listen` can probe it.
//
//	rdp-simple-plugin-client -connect 127.0.0.1:3390
//
// connects to a portable-transport server (rdp-simple-plugin-server
// -listen). Connecting is retried for -retry (default 10s) so that the two
// programs can be started in either order. The client exits with status 0
// when the server hangs up, or keeps reconnecting with -reconnect (until
// Ctrl+C). Status 1 means it could not connect or the connection failed;
// 2, bad flags.
//
// On Windows this program is also the sample's COM LocalServer plugin
// (/register, /unregister, -Embedding); that part lives in a
// Windows-only file through platformMain.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/echo"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/simple"
	"github.com/rdpdvc/rdpdvc/trace"
)

func main() { cli.Main(run) }

// platformMain sees the arguments before anything else does. A platform
// file replaces it in init to handle what is not a portable-client run:
// on Windows, COM activation (-Embedding) and /register, /unregister,
// /machine. It returns handled=false to let the portable client run.
var platformMain = func(ctx context.Context, args []string, stdout, stderr io.Writer) (handled bool, code int) {
	return false, 0
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if handled, code := platformMain(ctx, args, stdout, stderr); handled {
		return code
	}
	var (
		addr      string
		channel   string
		withEcho  bool
		retry     time.Duration
		reconnect bool
		lf        cli.LogFlags
		tf        cli.TraceFlag
	)
	fs := flag.NewFlagSet("rdp-simple-plugin-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&addr, "connect", cli.DefaultAddr, "portable transport: connect to the server at `host:port`")
	fs.StringVar(&channel, "channel", simple.ChannelName, "dynamic channel `name` to echo on")
	fs.BoolVar(&withEcho, "echo", true, "also answer the ECHO channel (MS-RDPEECO)")
	fs.DurationVar(&retry, "retry", 10*time.Second, "keep trying to connect for this long")
	fs.BoolVar(&reconnect, "reconnect", false, "when the server goes away, connect again (until Ctrl+C)")
	lf.Register(fs)
	tf.Register(fs)
	log, code, ok := lf.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rdp-simple-plugin-client: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cli.WarnExposed(stderr, addr)

	echoer := &simple.Echoer{Logger: log}
	responder := &echo.Responder{Logger: log}
	listeners := map[string]dvc.Listener{channel: echoer}
	if withEcho && channel != echo.ChannelName {
		listeners[echo.ChannelName] = responder
	}
	if reconnect {
		// Until Ctrl+C: -retry bounds the first wait only without it.
		retry = -1
	}
	rec, err := tf.Recorder(trace.Client)
	if err != nil {
		fmt.Fprintln(stderr, "rdp-simple-plugin-client:", err)
		return 1
	}
	defer rec.Close()
	code = cli.Reconnect(ctx, reconnect, log, func(ctx context.Context) error {
		return connectAndServe(ctx, addr, retry, listeners, rec, log)
	})
	report(log, channel, echoer, responder)
	return code
}

// report logs what each listener answered: the Simple echoes on channel,
// and the MS-RDPEECO requests the ECHO listener answered, if any.
func report(log *slog.Logger, channel string, e *simple.Echoer, r *echo.Responder) {
	c := e.Counts()
	log.Info("echoed", "channel", channel, "channels", c.Channels, "messages", c.Messages, "bytes", c.Bytes)
	if n := r.Requests(); n > 0 {
		log.Info("echoed", "channel", echo.ChannelName, "requests", n)
	}
}
