package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/internal/lograte"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/server/script"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/session"
	"github.com/rdpdvc/rdpdvc/trace"
)

func init() {
	register(&command{
		name:    "pnp-server",
		summary: "MS-RDPEPNP server: list a client's redirected devices and drive I/O on them from a script",
		run:     runPNPServer,
	})
}

const pnpServerUsage = `usage: rdpdvc pnp-server [-listen ADDR | -xrdp [-display :N]] [-script FILE|-]

Waits for the client's devices, prints each device it redirects as it comes
and goes, and, with -script, runs the script's commands against the
devices, one JSON line per result on stdout. Without -script it prints
events until Ctrl+C or until the client hangs up; in an xrdp session it
then waits for a client to reconnect to the session and goes on. The exit
status is 0 when every line of the script held, 1 otherwise, 2 for bad
usage or a script that does not parse.

Where the client is:
  -listen ADDR   the portable transport: serve one client, the first whose
                 handshake completes (rdpdvc pnp-client -connect ADDR); the
                 default outside xrdp, on 127.0.0.1:3390. Clients that
                 connect meanwhile are handshaken at once, each step timed
                 out (-caps-timeout, -open-timeout, -version-timeout), so
                 a stuck or silent client delays nobody; once one is
                 served the listener closes.
  -xrdp          the RDP client of the xrdp session this runs in, through
                 xrdp-chansrv (the default inside an xrdp session), for
                 example xfreerdp with /dvc:rdpdvc,pnp=file:/tmp/disk.img
                 (see docs/linux.md). xrdp delivers a message whole only up
                 to 32768 bytes: a larger write goes as several Write
                 Requests, one after the other (a failure can leave the
                 first ones written); an ioctl input that large fails.

The script is read and checked whole before anything listens: a bad line
(or a missing file) exits 2 at once with FILE:LINE. Each result line has
"line", "op", "ok" (the line's expectation held), "returned" (what the
command did: ok, error, script-error), "elapsed_ms", and "unmet" (why not ok).

Script commands (docs/pnp.md; package pnp/server/script):
  wait-device [SEL] [timeout=DUR]     SEL: ID | any | hwid:ID | desc:TEXT
  wait-removed SEL [timeout=DUR]
  devices
  open [NAME] SEL [access=N] [share=N] [disposition=N|OPEN_EXISTING...] [flags=N]
  read NAME OFFSET COUNT [timeout=DUR]
  write NAME OFFSET DATA [timeout=DUR]   DATA: hex | text:... | text:"..." | @FILE | -
  ioctl NAME CODE DATA OUTMAX [timeout=DUR]
  close NAME
  subscribe GUID|all
  wait-event GUID|all [timeout=DUR]
  sleep DUR
  wait [JOB...|all]                   wait for background jobs
  cancel JOB...                       cancel them (Specific IoCancel), and wait
  ! COMMAND                           COMMAND must run and fail
  COMMAND ... expect data=DATA count=N hresult=H   (H: 0x80070013 | ERROR_WRITE_PROTECT)
  read|write|ioctl ... & [as=JOB]     run in the background (JOB: jN, N the line)
  ... # comment                       # after a blank starts a comment

A timeout on read, write or ioctl cancels the call with a Specific IoCancel
Request when it expires.

flags:
`

// pnpXRDPDetect reports whether we run inside an xrdp session; tests
// replace it.
var pnpXRDPDetect = xrdp.Detect

func runPNPServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		addr, scriptPath, display string
		useXRDP                   bool
		lf                        cli.LogFlags
		lim                       pnpLimits
	)
	fs := flag.NewFlagSet("rdpdvc pnp-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, pnpServerUsage); fs.PrintDefaults() }
	fs.StringVar(&addr, "listen", "", "portable transport: `address` to listen on (default "+cli.DefaultAddr+" outside xrdp)")
	fs.BoolVar(&useXRDP, "xrdp", false, "reach the client of this xrdp session through chansrv (default inside one)")
	fs.StringVar(&display, "display", "", "xrdp: the session's X `display` (default $DISPLAY)")
	fs.StringVar(&scriptPath, "script", "", "run the commands in `FILE` (- for stdin), then exit")
	fs.DurationVar(&lim.caps, "caps-timeout", session.DefaultCapsTimeout, "portable: drop a client that does not answer the capabilities request (DYNVC_CAPS_RSP) in this long")
	fs.DurationVar(&lim.open, "open-timeout", session.DefaultOpenTimeout, "portable: drop a client that does not answer PNPDR's DYNVC_CREATE_REQ in this long")
	fs.DurationVar(&lim.version, "version-timeout", server.DefaultVersionTimeout, "drop a client that sends no Client Version in this long after the Server Version")
	fs.DurationVar(&lim.write, "write-timeout", portable.DefaultWriteTimeout, "portable: drop a client that reads nothing for this long while the server writes")
	lf.Register(fs)
	var tf cli.TraceFlag
	tf.Register(fs)
	// stdout carries the JSON lines; logs go to stderr.
	log, code, ok := lf.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "rdpdvc pnp-server: unexpected arguments:", fs.Args())
		return 2
	}
	if lim.caps <= 0 || lim.open <= 0 || lim.version <= 0 || lim.write <= 0 {
		fmt.Fprintln(stderr, "rdpdvc pnp-server: -caps-timeout, -open-timeout, -version-timeout and -write-timeout must be > 0")
		return 2
	}
	if useXRDP && addr != "" {
		fmt.Fprintln(stderr, "rdpdvc pnp-server: -listen and -xrdp exclude each other")
		return 2
	}
	useXRDP = useXRDP || (addr == "" && pnpXRDPDetect())
	// The whole script is read and checked before anything listens or
	// opens: a bad line is a usage error, found at once.
	var sc *script.Script
	if scriptPath != "" {
		var err error
		if scriptPath == "-" {
			sc, err = script.ParseNamed("stdin", os.Stdin)
		} else {
			sc, err = script.ParseFile(scriptPath)
		}
		if err != nil {
			for _, l := range strings.Split(err.Error(), "\n") {
				fmt.Fprintln(stderr, "rdpdvc pnp-server:", l)
			}
			return 2
		}
	}
	rec, err := tf.Recorder(trace.Server)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
		return 1
	}
	defer rec.Close()
	r := script.New(stdout)
	cfg := server.Config{Logger: log, OnDevice: r.DeviceEvent, VersionTimeout: lim.version}
	var op dvc.Opener
	var xo *xrdp.Opener
	var srv *server.Server
	if useXRDP {
		var err error
		xo, err = xrdp.New(xrdp.Options{Display: display})
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
			return 1
		}
		// chansrv forwards at most 32768 bytes as one DVC message, and
		// backend/xrdp refuses more: split writes to fit (pnp/server).
		cfg.MaxMessage = xrdp.MaxWrite
		r.Print(map[string]any{"event": "session", "backend": "xrdp", "socket": xo.SocketPath()})
		co := watchClient(ctx, xo, xo)
		defer co.stop()
		op = rec.Opener(co)
	} else {
		ln, err := portable.Listen(cli.ListenAddr(addr, stderr), lim.portable(log))
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
			return 1
		}
		defer ln.Close()
		r.Print(map[string]any{"event": "listening", "addr": ln.Addr().String()})
		conn, s, err := firstClient(ctx, ln, cfg, rec, log)
		if err != nil {
			if ctx.Err() != nil {
				return 0 // Ctrl+C before a client came
			}
			fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
			return 1
		}
		defer conn.Close()
		r.Print(map[string]any{"event": "connected", "remote": conn.RemoteAddr().String()})
		op, srv = conn, s
	}
	if srv == nil {
		var err error
		if srv, err = server.Start(ctx, op, cfg); err != nil {
			if ctx.Err() != nil {
				return 0
			}
			fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
			return 1
		}
	}
	defer srv.Close()
	r.Attach(srv)
	defer r.Close()

	if sc == nil {
		return monitorPNP(ctx, srv, xo, cfg, rec, r, stderr)
	}
	failed, err := r.Run(ctx, sc)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc pnp-server: script:", err)
		return 1
	}
	if len(failed) > 0 {
		fmt.Fprintf(stderr, "rdpdvc pnp-server: %d line(s) of the script did not hold: %s (see their \"unmet\")\n", len(failed), joinInts(failed))
		return 1
	}
	return 0
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// monitorPNP prints device and custom events until ctx is done or the
// client hangs up. In an xrdp session (xo set) a client that disconnects
// is waited for: xrdp keeps the session, a client may reconnect to it, and
// its devices then arrive again on a new PNPDR.
func monitorPNP(ctx context.Context, srv *server.Server, xo *xrdp.Opener, cfg server.Config, rec *trace.Recorder, r *script.Runner, stderr io.Writer) int {
	var prev *clientOpener // the watch of the reconnected client, if any
	defer func() {
		if prev != nil {
			prev.stop()
		}
	}()
	for {
		srv.SubscribeAll(func(e server.CustomEvent) {
			r.Print(map[string]any{"event": "custom-event", "guid": e.GUID, "device": e.DeviceID, "data": fmt.Sprintf("%x", e.Data)})
		})
		select {
		case <-ctx.Done():
			srv.Close()
			return 0
		case <-srv.Done():
		}
		err := srv.Err()
		srv.Close()
		r.Print(map[string]any{"event": "disconnected", "error": errString(err)})
		if xo == nil || !errors.Is(err, dvc.ErrConnectionLost) || errors.Is(err, xrdp.ErrSessionEnded) {
			return 0
		}
		r.Print(map[string]any{"event": "waiting", "for": "a client to reconnect to the session"})
		if prev != nil {
			prev.stop() // the previous client's watch: one at a time, not one per reconnect
		}
		co := watchClient(ctx, xo, xo.WhenConnected())
		prev = co
		var serr error
		srv, serr = server.Start(ctx, rec.Opener(co), cfg)
		if serr != nil {
			if ctx.Err() != nil {
				return 0
			}
			fmt.Fprintln(stderr, "rdpdvc pnp-server:", serr)
			return 1
		}
		r.Attach(srv)
		r.Print(map[string]any{"event": "connected"})
	}
}

// clientOpener is an Opener for one client of an xrdp session. Its Done
// is closed when chansrv reports that the client, once connected, has
// disconnected (xrdp 0.10.5+): pnp/server takes that as the end of the
// connection and removes the client's devices (MS-RDPEPNP 3.3.5.1.2.1),
// which it could not learn otherwise, since chansrv passes a disconnect
// on to a channel only when the program writes to it, and PNPDR is quiet
// once the devices are listed. On older xrdp Done never closes.
type clientOpener struct {
	dvc.Opener
	done chan struct{}
	stop func() // ends the watch; safe to call more than once
}

func (c *clientOpener) Done() <-chan struct{} { return c.done }

func watchClient(ctx context.Context, xo *xrdp.Opener, op dvc.Opener) *clientOpener {
	c := &clientOpener{Opener: op, done: make(chan struct{}), stop: func() {}}
	w, err := xo.WatchSession(ctx)
	if err != nil {
		return c // ErrNoSessionEvents, or no chansrv: the open will say
	}
	wctx, cancel := context.WithCancel(ctx)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if w.Wait(wctx, true) == nil && w.Wait(wctx, false) == nil {
			close(c.done)
		}
	}()
	var once sync.Once
	c.stop = func() {
		once.Do(func() {
			cancel()
			w.Close()
			<-finished
		})
	}
	return c
}

// pnpLimits are pnp-server's handshake timeouts and write deadline.
type pnpLimits struct {
	caps, open, version, write time.Duration
}

func (l pnpLimits) portable(log *slog.Logger) portable.Config {
	return portable.Config{
		Logger:       log,
		WriteTimeout: l.write,
		Session:      session.Config{CapsTimeout: l.caps, OpenTimeout: l.open},
	}
}

// maxHandshakes bounds the connections being handshaken at once; more are
// closed as they come.
const maxHandshakes = 64

// firstClient handshakes every client that connects to ln, each on its
// own goroutine with every step timed out (DYNVC_CAPS_RSP, PNPDR's
// DYNVC_CREATE_RSP, Client Version), and returns the first to complete,
// with its server role started. The listener is then closed (one client
// per run) and the other handshakes are abandoned.
func firstClient(ctx context.Context, ln *portable.Listener, cfg server.Config, rec *trace.Recorder, log *slog.Logger) (*portable.Server, *server.Server, error) {
	type winner struct {
		conn *portable.Server
		srv  *server.Server
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// One client per run: later ones are refused, not queued. (Accept's
	// cancellation leaves the listener open.)
	defer ln.Close()
	won := make(chan winner, 1)
	acceptErr := make(chan error, 1)
	var picked atomic.Bool
	var pending atomic.Int64
	busy := lograte.New(0, 0)
	n := 0 // connections accepted, for -trace
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer busy.Flush(log)
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				acceptErr <- err
				return
			}
			go conn.Run(context.Background())
			remote := conn.RemoteAddr().String()
			n++
			op := rec.Conn(n).Opener(conn) // here: n changes with the next client
			if pending.Add(1) > maxHandshakes {
				pending.Add(-1)
				busy.Log(log, slog.LevelWarn, "busy", "pnp-server: too many clients in their handshake; closing a new one", "remote", remote, "max", maxHandshakes)
				conn.Close()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer pending.Add(-1)
				srv, err := server.Start(ctx, op, cfg)
				if err == nil {
					_, err = srv.WaitVersion(ctx)
				}
				if err == nil && picked.CompareAndSwap(false, true) {
					won <- winner{conn, srv}
					return
				}
				if err != nil && ctx.Err() == nil {
					log.Warn("pnp-server: dropping a client in its handshake", "remote", remote, "err", err)
				}
				if srv != nil {
					srv.Close()
				}
				conn.Close()
			}()
		}
	}()
	select {
	case w := <-won:
		return w.conn, w.srv, nil
	case err := <-acceptErr:
		cancel()
		wg.Wait()
		select {
		case w := <-won: // completed as the listener failed: nobody will serve it
			w.srv.Close()
			w.conn.Close()
		default:
		}
		return nil, nil, err
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
