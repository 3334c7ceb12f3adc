// Command rdp-simple-plugin-server is the Simple sample's server: it opens
// the dvc::sample::simpleplugin channel to an RDP client and pings it,
// printing one line per ping, e.g.
//
//	Ping#1 payload=5120 rttMs=0.42
//
// and a ping(8)-style summary on exit or Ctrl+C, per client when there
// were several. Each client's handshake steps time out (-caps-timeout,
// -open-timeout) and a client that stops echoing is dropped after
// -drop-after lost pings in a row, so a stuck client delays nobody else
// (docs/security.md). The exit status is 0 when
// every ping came back intact, 1 when any was lost or mismatched or the
// server failed, 2 for bad flags.
//
// Where the RDP connection comes from is the mode:
//
//	-listen 127.0.0.1:3390   portable transport: wait for rdp-simple-plugin-client
//	                         (or any portable client) to connect; serve every
//	                         client at once, each its own session, and keep
//	                         listening when one dies
//	-xrdp [-display :10]     inside an xrdp session, through chansrv; when
//	                         the client disconnects, wait for one to
//	                         reconnect to the session (the pings due
//	                         meanwhile count as lost) and go on
//
// With no mode flag the server uses xrdp when it runs inside an xrdp
// session, and otherwise listens on 127.0.0.1:3390. Flags also accept the
// sample's spelling: /count 5, /filehandle, --count 5.
//
// Logs, Ping lines included, go to stdout with the summary, so that
// "rdp-simple-plugin-server | grep Ping#" works as with the other samples.
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
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/portable"
	dvcsession "github.com/rdpdvc/rdpdvc/session"
	"github.com/rdpdvc/rdpdvc/simple"
	"github.com/rdpdvc/rdpdvc/trace"
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
	dropAfter  int
	maxClients int
	limits     limits
	log        cli.LogFlags
	trace      cli.TraceFlag
}

// limits are the portable transport's handshake timeouts and write
// deadline, as flags.
type limits struct {
	caps, open, write time.Duration
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
	fs.IntVar(&o.dropAfter, "drop-after", defaultDropAfter, "drop a client after this many pings in a row lost (0: never)")
	fs.IntVar(&o.maxClients, "max-clients", defaultMaxClients, "portable: clients served at once; more are refused")
	fs.DurationVar(&o.limits.caps, "caps-timeout", dvcsession.DefaultCapsTimeout, "portable: drop a client that does not answer the capabilities request (DYNVC_CAPS_RSP) in this long")
	fs.DurationVar(&o.limits.open, "open-timeout", dvcsession.DefaultOpenTimeout, "portable: drop a client that does not answer the channel's DYNVC_CREATE_REQ in this long")
	fs.DurationVar(&o.limits.write, "write-timeout", portable.DefaultWriteTimeout, "portable: drop a client that reads nothing for this long while the server writes")
	o.log.Register(fs)
	o.trace.Register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: rdp-simple-plugin-server [-listen host:port | -xrdp | -filehandle] [flags]\n\nmodes: %s\n\n", strings.Join(modeNames(), ", "))
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "\nExit status: 0 when every ping came back intact (Ctrl+C included), 1 when one was lost or mismatched or the server failed, 2 for bad usage.")
	}
	log, code, ok := o.log.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rdp-simple-plugin-server: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	err := cli.CheckPings(o.count, o.interval, o.payload, simple.MaxPayload)
	switch {
	case err != nil:
	case o.dropAfter < 0:
		err = fmt.Errorf("-drop-after %d: want 0 (never) or more", o.dropAfter)
	case o.maxClients < 1:
		err = fmt.Errorf("-max-clients %d: want 1 or more", o.maxClients)
	case o.limits.caps <= 0:
		err = fmt.Errorf("-caps-timeout %v: want more than 0", o.limits.caps)
	case o.limits.open <= 0:
		err = fmt.Errorf("-open-timeout %v: want more than 0", o.limits.open)
	case o.limits.write <= 0:
		err = fmt.Errorf("-write-timeout %v: want more than 0", o.limits.write)
	}
	if err != nil {
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
	rec, err := o.trace.Recorder(trace.Server)
	if err != nil {
		fmt.Fprintln(stderr, "rdp-simple-plugin-server:", err)
		return 1
	}
	defer rec.Close()
	if rec != nil {
		src = &tracedSource{source: src, rec: rec}
	}

	p := &simple.Pinger{Interval: o.interval, Payload: o.payload, Count: o.count, Timeout: o.timeout, Logger: log}
	if o.payload == 0 {
		p.Payload = -1 // Pinger: negative = empty payload
	}
	t, err := serve(ctx, src, p, o.channel, o.dropAfter, log)
	return o.log.Finish(stdout, log, o.channel, t, err, "stopped")
}

// serve pings every RDP connection src yields, each on its own
// goroutine from the moment it is yielded, so that a client stuck in its
// handshake or not echoing delays no other. It stops asking src for more
// once a client has completed its -count (or ctx is done), waits for the
// clients still being served (each ends by itself: its own -count, its
// timeouts, or dropAfter lost pings in a row), and returns their figures.
// A connection that dies, or refuses the channel, is reported; when src
// has no more and no client completed, the last error is returned.
func serve(ctx context.Context, src source, p *simple.Pinger, channel string, dropAfter int, log *slog.Logger) (*tally, error) {
	t := &tally{}
	next, stopAsking := context.WithCancel(ctx)
	defer stopAsking()
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		completed bool
		last      error
	)
	var srcErr error
	for {
		sess, err := src.Next(next)
		if err != nil {
			if !errors.Is(err, io.EOF) && next.Err() == nil {
				srcErr = err
			}
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := serveOne(ctx, next, sess, p, channel, dropAfter, log, t)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				completed = true
				stopAsking() // -count reached
				return
			}
			last = err
		}()
	}
	wg.Wait()
	switch {
	case completed:
		return t, nil
	case ctx.Err() != nil:
		return t, ctx.Err()
	case srcErr != nil:
		return t, srcErr
	}
	return t, last
}

// Defaults of the flags that bound what one client can cost.
const (
	defaultDropAfter  = 3
	defaultMaxClients = 64
)

// errDropped is why a client that stopped echoing was let go.
var errDropped = errors.New("the client stopped echoing (-drop-after)")

// serveOne pings one connection until its -count, its failure, ctx, or
// dropAfter lost pings in a row, and adds its figures to t. openCtx bounds
// the channel's opening: once serve stops taking clients, one still in its
// handshake is not waited for.
func serveOne(ctx, openCtx context.Context, sess session, p *simple.Pinger, channel string, dropAfter int, log *slog.Logger, t *tally) error {
	defer sess.close()
	clog := log.With("client", sess.label)
	clog.Info("client connected; opening channel", "channel", channel)
	conn, err := sess.opener.Open(openCtx, channel, dvc.WithFramer(simple.FrameLen))
	if err != nil {
		sess.end(err)
		if openCtx.Err() != nil {
			return openCtx.Err()
		}
		clog.Error("cannot open the channel", "channel", channel, "err", err)
		var oe *dvc.OpenError
		if errors.As(err, &oe) {
			clog.Error("is the client plugin installed and listening on this channel name?")
		}
		return err
	}
	defer conn.Close()
	if sess.opened != nil {
		sess.opened()
	}
	// Each client gets its own copy: its own log attribute and its own
	// count of losses in a row. OnReply runs on Run's goroutine.
	pc := *p
	pc.Logger = clog
	cctx, drop := context.WithCancel(ctx)
	defer drop()
	inARow, dropped := 0, false
	pc.OnReply = func(r simple.Reply) {
		if p.OnReply != nil {
			p.OnReply(r)
		}
		switch {
		case r.Outcome == simple.Received:
			inARow = 0
		case r.Outcome == simple.Lost && !errors.Is(r.Err, dvc.ErrConnectionLost) && !errors.Is(r.Err, io.EOF):
			// Lost to the timeout, not to the connection's end (whose
			// outstanding pings are all counted lost at once).
			inARow++
			if dropAfter > 0 && inARow >= dropAfter && !dropped {
				dropped = true
				drop()
			}
		}
	}
	var gap simple.Stats
	if !sess.gapSince.IsZero() {
		// The pings due while no client was there count as sent and
		// lost, as they would have on a connection that stalled.
		d := time.Since(sess.gapSince)
		n := int(d / cmp.Or(p.Interval, simple.DefaultInterval))
		gap.Sent, gap.Lost = n, n
		clog.Warn("client back; pinging again", "gap_ms", d.Milliseconds(), "lost", n)
	}
	st, err := pc.Run(cctx, conn)
	if dropped && errors.Is(err, context.Canceled) && ctx.Err() == nil {
		err = fmt.Errorf("%w: %d pings lost in a row", errDropped, dropAfter)
	}
	st.Merge(&gap)
	sess.end(err)
	t.add(sess.label, st)
	if err != nil && ctx.Err() == nil {
		clog.Warn("client gone", "err", err, "sent", st.Sent, "received", st.Received, "lost", st.Lost, "mismatched", st.Mismatched)
	}
	return err
}

// tally is the figures of every client served, in the order they
// connected. It is the program's cli.Figures.
type tally struct {
	mu      sync.Mutex
	clients []clientStats
}

type clientStats struct {
	label string
	stats simple.Stats
}

func (t *tally) add(label string, st simple.Stats) {
	t.mu.Lock()
	t.clients = append(t.clients, clientStats{label, st})
	t.mu.Unlock()
}

// Total is every client's figures summed.
func (t *tally) Total() simple.Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	var total simple.Stats
	for i := range t.clients {
		total.Merge(&t.clients[i].stats)
	}
	return total
}

// Summary is the total's summary, preceded by one line per client when
// there were several.
func (t *tally) Summary(name string) string {
	total := t.Total()
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	if len(t.clients) > 1 {
		for _, c := range t.clients {
			fmt.Fprintf(&b, "client %s: %d sent, %d received, %d lost, %d mismatched\n", c.label, c.stats.Sent, c.stats.Received, c.stats.Lost, c.stats.Mismatched)
		}
	}
	b.WriteString(total.Summary(name))
	return b.String()
}

// OK reports whether every client's pings came back intact.
func (t *tally) OK() bool {
	total := t.Total()
	return total.OK()
}

// LogValue is the total, with each client's figures when there were
// several (-log-format json).
func (t *tally) LogValue() slog.Value {
	total := t.Total()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.clients) <= 1 {
		return total.LogValue()
	}
	attrs := []slog.Attr{slog.Any("total", &total)}
	for _, c := range t.clients {
		st := c.stats
		attrs = append(attrs, slog.Any(c.label, &st))
	}
	return slog.GroupValue(attrs...)
}

// tracedSource records every channel of the sessions src yields (-trace),
// each session as its own connection in the trace.
type tracedSource struct {
	source
	rec *trace.Recorder
	n   int
}

func (t *tracedSource) Next(ctx context.Context) (session, error) {
	s, err := t.source.Next(ctx)
	if err == nil {
		t.n++
		s.opener = t.rec.Conn(t.n).Opener(s.opener)
	}
	return s, err
}

// A source yields the RDP connections to ping, as they come.
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
	opened func() // if set, told when the channel is open (the handshake is over)
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
