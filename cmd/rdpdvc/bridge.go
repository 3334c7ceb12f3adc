package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
	"github.com/rdpdvc/rdpdvc/bridge"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/trace"
)

func init() {
	register(&command{
		name:    "bridge",
		summary: "make a channel a local socket (server side): each connection opens one instance of -channel",
		run:     runBridge,
	})
}

const bridgeUsage = `usage: rdpdvc bridge -channel NAME -socket unix:PATH|tcp:127.0.0.1:PORT [-framing stream|message] [-xrdp | -listen ADDR] [flags]

The server side of a bridge (docs/bridge.md): each connection accepted on
-socket opens one instance of channel NAME on the RDP client, and the two
are joined until either closes. The client side is the FreeRDP plugin's
bridge=NAME=unix:PATH feature, the Windows plugin's Bridge value, or
rdpdvc bridge-client over the portable transport:

  rdpdvc bridge -listen 127.0.0.1:3390 -channel my::chan -socket unix:/tmp/in.sock
  rdpdvc bridge-client -connect 127.0.0.1:3390 -channel my::chan -socket unix:/tmp/out.sock

-framing stream (the default) carries bytes: each read of the socket is one
channel message of at most 32768 bytes. -framing message carries messages,
each a u32 little-endian length then that many bytes (at most 1048576), on
the socket and on the channel alike; both sides must use the same framing.

A unix socket is created with mode 0600; a stale socket file at PATH is
replaced, anything else there is an error. A tcp socket should be on
loopback: anyone who can reach it can use the channel.

Where the client is:
  -listen ADDR   the portable transport (the default outside xrdp, on
                 127.0.0.1:3390): one RDP client at a time; when it goes
                 away the next one may connect. A local connection made
                 while no client is connected waits for one, at most
                 -timeout, and is then closed.
  -xrdp          the RDP client of the xrdp session this runs in (the
                 default inside one). A local connection the client does
                 not accept (no client, or no bridge=NAME there) is closed.

Each line on stdout is a JSON event: "socket" once the local socket
listens, and on the portable transport "listening", "connected",
"disconnected". Exit status: 0 on Ctrl+C, 1 on failure, 2 for bad usage.

flags:
`

// bridgeXRDPDetect reports whether we run inside an xrdp session; tests
// replace it.
var bridgeXRDPDetect = xrdp.Detect

type bridgeFlags struct {
	channel, socket, framing string
	timeout                  time.Duration
}

func (b *bridgeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.channel, "channel", "", "the channel's `NAME` (both sides use the same)")
	fs.StringVar(&b.socket, "socket", "", "the local socket: unix:`PATH` or tcp:HOST:PORT")
	fs.StringVar(&b.framing, "framing", "stream", "stream (bytes) or message (u32 little-endian length, then the bytes)")
	fs.DurationVar(&b.timeout, "timeout", bridge.DefaultTimeout, "the longest wait on a peer: a channel's open (or the socket's dial), each write")
}

// parse checks the flags common to both sides.
func (b *bridgeFlags) parse() (bridge.Addr, bridge.Framing, error) {
	if b.channel == "" || b.socket == "" {
		return bridge.Addr{}, 0, errors.New("want -channel NAME and -socket unix:PATH|tcp:HOST:PORT")
	}
	if b.timeout <= 0 {
		return bridge.Addr{}, 0, errors.New("-timeout must be > 0")
	}
	f, err := bridge.ParseFraming(b.framing)
	if err != nil {
		return bridge.Addr{}, 0, err
	}
	a, err := bridge.ParseAddr(b.socket)
	return a, f, err
}

// jsonLines prints one JSON object per line, from any goroutine.
type jsonLines struct {
	mu sync.Mutex
	w  io.Writer
}

func (j *jsonLines) Print(v map[string]any) {
	b, _ := json.Marshal(v)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.w.Write(append(b, '\n'))
}

func runBridge(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		bf       bridgeFlags
		listen   string
		useXRDP  bool
		display  string
		maxConns int
		lf       cli.LogFlags
		tf       cli.TraceFlag
	)
	fs := flag.NewFlagSet("rdpdvc bridge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, bridgeUsage); fs.PrintDefaults() }
	bf.register(fs)
	fs.StringVar(&listen, "listen", "", "portable transport: wait for RDP clients on `host:port` (default "+cli.DefaultAddr+" outside xrdp)")
	fs.BoolVar(&useXRDP, "xrdp", false, "open the channel through xrdp's chansrv (default inside an xrdp session)")
	fs.StringVar(&display, "display", "", "xrdp: the session's X `display` (default $DISPLAY)")
	fs.IntVar(&maxConns, "max-conns", bridge.DefaultMaxConns, "local connections at once; more are closed as they come")
	lf.Register(fs)
	tf.Register(fs)
	log, code, ok := lf.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	addr, framing, err := bf.parse()
	switch {
	case err != nil:
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case useXRDP && listen != "":
		err = errors.New("-listen and -xrdp exclude each other")
	case maxConns < 1:
		err = errors.New("-max-conns must be at least 1")
	}
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc bridge:", err, "(-h for help)")
		return 2
	}
	useXRDP = useXRDP || (listen == "" && bridgeXRDPDetect())
	if addr.Network == "tcp" && !cli.IsLoopbackAddr(addr.Address) {
		log.Warn("the bridge's tcp socket is not on loopback: anyone who can reach it can use the channel", "socket", addr.String())
	}
	rec, err := tf.Recorder(trace.Server)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc bridge:", err)
		return 1
	}
	defer rec.Close()
	out := &jsonLines{w: stdout}

	var op dvc.Opener
	if useXRDP {
		// In message framing a message may exceed what chansrv forwards
		// whole; the client's reframer joins the pieces.
		xo, err := xrdp.New(xrdp.Options{Display: display, SplitLarge: framing == bridge.Message})
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc bridge:", err)
			return 1
		}
		log.Info("using the xrdp session", "socket", xo.SocketPath())
		op = xo
	} else {
		pl, err := portable.Listen(cli.ListenAddr(listen, stderr), portable.Config{Logger: log})
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc bridge:", err)
			return 1
		}
		defer pl.Close()
		out.Print(map[string]any{"event": "listening", "addr": pl.Addr().String()})
		log.Info("waiting for RDP clients (portable transport): rdpdvc bridge-client -connect "+cli.DialAddr(pl.Addr())+" -channel "+bf.channel+" -socket ...", "addr", pl.Addr().String())
		slot := newClientSlot()
		var wg sync.WaitGroup
		defer wg.Wait()
		defer pl.Close()
		wg.Go(func() { slot.serve(ctx, pl, out, log) })
		op = slot
	}
	ln, err := bridge.Listen(addr)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc bridge:", err)
		return 1
	}
	sock := addr.Network + ":" + ln.Addr().String()
	out.Print(map[string]any{"event": "socket", "socket": sock, "channel": bf.channel, "framing": framing.String()})
	log.Info("bridge listening", "channel", bf.channel, "socket", sock, "framing", framing.String())
	s := &bridge.Server{Opener: rec.Opener(op), Channel: bf.channel, Framing: framing, Timeout: bf.timeout, MaxConns: maxConns, Logger: log}
	if err := s.Serve(ctx, ln); err != nil {
		log.Error("bridge socket failed", "err", err)
		return 1
	}
	return 0
}

// clientSlot is the dvc.Opener of a portable bridge: the RDP client
// connected now, one at a time. Open waits for one while there is none,
// as long as its context allows.
type clientSlot struct {
	mu    sync.Mutex
	cur   *portable.Server
	ready chan struct{} // closed once cur is set
}

func newClientSlot() *clientSlot { return &clientSlot{ready: make(chan struct{})} }

func (s *clientSlot) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	for {
		s.mu.Lock()
		cur, ready := s.cur, s.ready
		s.mu.Unlock()
		if cur != nil {
			return cur.Open(ctx, name, opts...)
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("no RDP client connected: %w", ctx.Err())
		}
	}
}

// serve accepts RDP clients on pl until ctx is done, serving one at a
// time: a client that connects while another is served is closed.
func (s *clientSlot) serve(ctx context.Context, pl *portable.Listener, out *jsonLines, log *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		srv, err := pl.Accept(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				log.Error("portable listener failed", "err", err)
			}
			s.mu.Lock()
			cur := s.cur
			s.mu.Unlock()
			if cur != nil {
				cur.Close()
			}
			return
		}
		s.mu.Lock()
		busy := s.cur != nil
		if !busy {
			s.cur = srv
			close(s.ready)
		}
		s.mu.Unlock()
		if busy {
			log.Warn("an RDP client is already connected; closing the new one", "remote", srv.RemoteAddr().String())
			srv.Close()
			continue
		}
		out.Print(map[string]any{"event": "connected", "remote": srv.RemoteAddr().String()})
		log.Info("RDP client connected", "remote", srv.RemoteAddr().String())
		wg.Go(func() {
			err := srv.Run(ctx)
			s.mu.Lock()
			s.cur, s.ready = nil, make(chan struct{})
			s.mu.Unlock()
			srv.Close()
			if ctx.Err() == nil {
				out.Print(map[string]any{"event": "disconnected", "remote": srv.RemoteAddr().String()})
				log.Info("RDP client went away; waiting for the next", "err", err)
			}
		})
	}
}
