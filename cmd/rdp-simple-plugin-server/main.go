// Command rdp-simple-plugin-server is the Simple sample's server: it opens
// the dvc::sample::simpleplugin channel to an RDP client and pings it,
// printing one line per ping, e.g.
//
//	Ping#1 payload=5120 rttMs=0.42
//
// and a ping(8)-style summary on exit or Ctrl+C. The exit status is 0 when
// every ping came back intact, 1 when any was lost or mismatched or the
// server failed, 2 for bad flags.
//
// Where the RDP connection comes from is the mode:
//
//	-listen 127.0.0.1:3390   portable transport: wait for rdp-simple-plugin-client
//	                         (or any portable client) to connect; serve each
//	                         client in turn, and keep listening when one dies
//	-xrdp [-display :10]     inside an xrdp session, through chansrv; when
//	                         the client disconnects, wait for one to
//	                         reconnect to the session (the pings due
//	                         meanwhile count as lost) and go on
//
// With no mode flag the server uses xrdp when it runs inside an xrdp
// session, and otherwise listens on 127.0.0.1:3390. Flags also accept the
// sample's spelling: /count 5, /filehandle, --count 5.
//
// Logs, Ping lines included, go to stderr; the summary, the result, to
// stdout ("rdp-simple-plugin-server 2>&1 | grep Ping#" finds the pings).
// With -log-format json each ping's figures are fields of its record
// ("ping": seq, payload, rtt_ms, outcome) and the summary is one JSON
// record on stdout.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/simple"
)

func main() { cli.Main(run) }

// options are the parsed flags.
type options struct {
	listen     string
	xrdp       bool
	display    string
	fileHandle bool
	channel    string
	interval   time.Duration
	payload    int
	count      int
	timeout    time.Duration
	log        cli.LogFlags
}

// platformMain lets a platform file take over before the portable flags
// are parsed (nothing does yet; the hook mirrors the client's).
var platformMain = func(ctx context.Context, args []string, stdout, stderr io.Writer) (handled bool, code int) {
	return false, 0
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if handled, code := platformMain(ctx, args, stdout, stderr); handled {
		return code
	}
	var o options
	fs := flag.NewFlagSet("rdp-simple-plugin-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "", "portable transport: listen on `host:port` (default "+cli.DefaultAddr+" when no other mode applies)")
	fs.BoolVar(&o.xrdp, "xrdp", false, "open the channel through xrdp's chansrv (run inside an xrdp session)")
	fs.StringVar(&o.display, "display", "", "xrdp: the session's X `display` (default $DISPLAY)")
	fs.BoolVar(&o.fileHandle, "filehandle", false, "Windows: WTS file-handle (overlapped I/O) mode, as the sample's --filehandle")
	fs.StringVar(&o.channel, "channel", simple.ChannelName, "dynamic channel `name` to open (ECHO pings an MS-RDPEECO listener with Simple frames)")
	fs.DurationVar(&o.interval, "interval", simple.DefaultInterval, "time between pings")
	fs.IntVar(&o.payload, "payload", simple.DefaultPayload, "payload `bytes` per ping")
	fs.IntVar(&o.count, "count", 0, "pings to send, then exit (0 = until Ctrl+C)")
	fs.DurationVar(&o.timeout, "timeout", 0, "count a ping lost after this long without an echo (default max(5×interval, 5s))")
	o.log.Register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: rdp-simple-plugin-server [-listen host:port | -xrdp | -filehandle] [flags]\n\nmodes: %s\n\n", strings.Join(modeNames(), ", "))
		fs.PrintDefaults()
	}
	log, code, ok := o.log.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rdp-simple-plugin-server: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := cli.CheckPings(o.count, o.interval, o.payload, simple.MaxPayload); err != nil {
		fmt.Fprintln(stderr, "rdp-simple-plugin-server:", err)
		return 2
	}

	name := pickMode(&o)
	m, ok := modes[name]
	if !ok {
		fmt.Fprintf(stderr, "rdp-simple-plugin-server: mode %q is not available in this build (have: %s)\n", name, strings.Join(modeNames(), ", "))
		return 2
	}
	src, err := m.open(ctx, &o, log, stderr)
	if err != nil {
		log.Error("cannot start", "mode", name, "err", err)
		return 1
	}
	defer src.Close()

	p := &simple.Pinger{Interval: o.interval, Payload: o.payload, Count: o.count, Timeout: o.timeout, Logger: log}
	if o.payload == 0 {
		p.Payload = -1 // Pinger: negative = empty payload
	}
	total, err := serve(ctx, src, p, o.channel, log)
	return o.log.Finish(stdout, log, o.channel, &total, err, "stopped")
}

// serve pings the RDP connections src yields, one after another, until a
// run completes its -count, ctx is done, or src has no more. A connection
// that dies, or refuses the channel, is reported and the next one is
// awaited; when src has no more, the last one's error is returned.
func serve(ctx context.Context, src source, p *simple.Pinger, channel string, log *slog.Logger) (simple.Stats, error) {
	var total simple.Stats
	var last error
	for {
		sess, err := src.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return total, last
			}
			return total, err
		}
		clog := log.With("client", sess.label)
		clog.Info("client connected; opening channel", "channel", channel)
		conn, err := sess.opener.Open(ctx, channel, dvc.WithFramer(simple.FrameLen))
		if err != nil {
			sess.end(err)
			sess.close()
			if ctx.Err() != nil {
				return total, ctx.Err()
			}
			clog.Error("cannot open the channel", "channel", channel, "err", err)
			var oe *dvc.OpenError
			if errors.As(err, &oe) {
				clog.Error("is the client plugin installed and listening on this channel name?")
			}
			last = err
			continue
		}
		if !sess.gapSince.IsZero() {
			// The pings due while no client was there count as sent and
			// lost, as they would have on a connection that stalled.
			gap := time.Since(sess.gapSince)
			n := int(gap / cmp.Or(p.Interval, simple.DefaultInterval))
			total.Sent += n
			total.Lost += n
			clog.Warn("client back; pinging again", "gap_ms", gap.Milliseconds(), "lost", n)
		}
		st, err := p.Run(ctx, conn)
		conn.Close()
		sess.end(err)
		sess.close()
		total.Merge(&st)
		switch {
		case err == nil:
			return total, nil // -count reached
		case ctx.Err() != nil:
			return total, ctx.Err()
		}
		last = err
		clog.Warn("client gone; waiting for the next one", "err", err, "sent", st.Sent, "received", st.Received, "lost", st.Lost, "mismatched", st.Mismatched)
	}
}

// A source yields the RDP connections to ping, one after another.
type source interface {
	// Next waits for the next connection; io.EOF means there will be no
	// more (a mode with a single session).
	Next(ctx context.Context) (session, error)
	Close() error
}

// session is one RDP connection.
type session struct {
	opener dvc.Opener
	label  string // who is on the other end, for logs
	close  func() // drop the connection
	// ended, if set, is told why the session's run (or its open) ended:
	// a source that can wait for the same client to come back (xrdp)
	// decides from it whether there is a next session.
	ended func(err error)
	// gapSince, if set, is when the client of the session before this one
	// went away: the pings due since then are counted lost.
	gapSince time.Time
}

func (s *session) end(err error) {
	if s.ended != nil {
		s.ended(err)
	}
}

// mode opens a source from the flags. stderr is for plain warnings the
// user must not miss.
type mode struct {
	open func(ctx context.Context, o *options, log *slog.Logger, stderr io.Writer) (source, error)
}

// modes are the ways this build reaches RDP connections, by name. Each
// mode's file adds itself in init; a Windows file adds "wts" and
// "filehandle" and may replace defaultMode.
var modes = map[string]mode{}

// defaultMode picks the mode when no mode flag is given.
var defaultMode = func(o *options) string {
	if xrdpDetect() {
		return "xrdp"
	}
	return "portable"
}

func pickMode(o *options) string {
	switch {
	case o.listen != "":
		return "portable"
	case o.xrdp:
		return "xrdp"
	case o.fileHandle:
		return "filehandle"
	}
	return defaultMode(o)
}

func modeNames() []string { return slices.Sorted(maps.Keys(modes)) }
