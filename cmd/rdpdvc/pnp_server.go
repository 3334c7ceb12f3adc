package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
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
events until Ctrl+C or until the client hangs up. The exit status is 0 when
every command did what it was expected to, 1 otherwise, 2 for bad usage.

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

Script commands (see package pnp/server/script):
  wait-device [SEL] [timeout=DUR]     SEL: ID | any | hwid:ID | desc:TEXT
  wait-removed SEL [timeout=DUR]
  devices
  open [NAME] SEL [access=N] [share=N] [disposition=N|OPEN_EXISTING...] [flags=N]
  read NAME OFFSET COUNT [timeout=DUR]
  write NAME OFFSET DATA [timeout=DUR]   DATA: hex | text:... | @FILE | -
  ioctl NAME CODE DATA OUTMAX [timeout=DUR]
  close NAME
  subscribe GUID|all
  wait-event GUID [timeout=DUR]
  sleep DUR
  ! COMMAND                           COMMAND must fail

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
	var in io.Reader
	switch scriptPath {
	case "":
	case "-":
		in = os.Stdin
	default:
		f, err := os.Open(scriptPath)
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	r := script.New(stdout)
	cfg := server.Config{Logger: log, OnDevice: r.DeviceEvent, VersionTimeout: lim.version}
	var op dvc.Opener
	var srv *server.Server
	if useXRDP {
		xo, err := xrdp.New(xrdp.Options{Display: display})
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
			return 1
		}
		// chansrv forwards at most 32768 bytes as one DVC message, and
		// backend/xrdp refuses more: split writes to fit (pnp/server).
		cfg.MaxMessage = xrdp.MaxWrite
		r.Print(map[string]any{"event": "session", "backend": "xrdp", "socket": xo.SocketPath()})
		op = xo
	} else {
		ln, err := portable.Listen(cli.ListenAddr(addr, stderr), lim.portable(log))
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
			return 1
		}
		defer ln.Close()
		r.Print(map[string]any{"event": "listening", "addr": ln.Addr().String()})
		conn, s, err := firstClient(ctx, ln, cfg, log)
		if err != nil {
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
			fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
			return 1
		}
	}
	defer srv.Close()
	r.Attach(srv)
	defer r.Close()

	if in == nil {
		srv.SubscribeAll(func(e server.CustomEvent) {
			r.Print(map[string]any{"event": "custom-event", "guid": e.GUID, "device": e.DeviceID, "data": fmt.Sprintf("%x", e.Data)})
		})
		select {
		case <-ctx.Done():
		case <-srv.Done():
			r.Print(map[string]any{"event": "disconnected", "error": errString(srv.Err())})
		}
		return 0
	}
	failed, err := r.Run(ctx, in)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc pnp-server: script:", err)
		return 1
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "rdpdvc pnp-server: %d command(s) did not do what was expected\n", failed)
		return 1
	}
	return 0
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
func firstClient(ctx context.Context, ln *portable.Listener, cfg server.Config, log *slog.Logger) (*portable.Server, *server.Server, error) {
	type winner struct {
		conn *portable.Server
		srv  *server.Server
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	won := make(chan winner, 1)
	acceptErr := make(chan error, 1)
	var picked atomic.Bool
	var pending atomic.Int64
	busy := lograte.New(0, 0)
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
			remote := conn.RemoteAddr().String()
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
				srv, err := server.Start(ctx, conn, cfg)
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
