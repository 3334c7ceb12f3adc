package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/internal/lograte"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/trace"
	"github.com/rdpdvc/rdpdvc/tunnel"
	"github.com/rdpdvc/rdpdvc/tunnel/socks"
	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

func init() {
	register(&command{
		name:    "tunnel",
		summary: "TCP through the RDP connection, server side: a SOCKS5 proxy and forwards whose connections leave from the client",
		run:     runTunnel,
	})
}

const tunnelUsage = `usage: rdpdvc tunnel [-socks ADDR] [-forward LOCAL=HOST:PORT ...] [-reverse CLIENTADDR=HOST:PORT ...] [-xrdp | -listen ADDR] [flags]

The server side of the rdpdvc::tunnel channel (docs/tunnel.md), run in the
RDP session. Connections made to its listeners leave from the RDP
client's network, where rdpdvc tunnel-client (or the FreeRDP plugin's
tunnel feature) connects them if its -allow rules let it:

  -socks ADDR              a SOCKS5 proxy (RFC 1928: CONNECT to IPv4, IPv6
                           or a domain name, resolved on the client side)
  -forward LOCAL=HOST:PORT connections to LOCAL go to HOST:PORT (repeatable)
                           (a bare port as ADDR or LOCAL is on 127.0.0.1)
  -reverse CLIENTADDR=HOST:PORT
                           the client listens on CLIENTADDR (if it allowed
                           it with -allow-listen) and each connection there
                           comes to HOST:PORT from here (repeatable)

Listeners bind to loopback only: anyone who reaches them reaches the
client's network. -expose allows other addresses (with a warning);
-socks-user with -socks-pass-file requires RFC 1929 username/password.

Where the client is:
  -listen ADDR   the portable transport: wait for rdpdvc tunnel-client
                 -connect ADDR (default 127.0.0.1:3390 outside xrdp); one
                 client at a time, and the next one when it goes away
  -xrdp          the RDP client of this xrdp session (default inside one)

Each listener is printed on stdout as it opens ("socks5 ADDR", "forward
ADDR HOST:PORT", "reverse CLIENTADDR HOST:PORT"). It runs until Ctrl+C.

flags:
`

type tunnelSpecs []string

func (d *tunnelSpecs) String() string     { return strings.Join(*d, " ") }
func (d *tunnelSpecs) Set(s string) error { *d = append(*d, s); return nil }

// forwardSpec is LOCAL=HOST:PORT of -forward and -reverse.
type forwardSpec struct {
	local, host string
	port        uint16
}

// loopbackPort reads a bare port ("1080") as 127.0.0.1:1080, the
// listeners' default address.
func loopbackPort(a string) string {
	if _, err := strconv.ParseUint(a, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", a)
	}
	return a
}

func parseForward(flagName, s string) (forwardSpec, error) {
	local, target, ok := strings.Cut(s, "=")
	if !ok || local == "" || target == "" {
		return forwardSpec{}, fmt.Errorf("%s %q: want ADDR=HOST:PORT", flagName, s)
	}
	if _, _, err := net.SplitHostPort(loopbackPort(local)); err != nil {
		return forwardSpec{}, fmt.Errorf("%s %q: %v", flagName, s, err)
	}
	host, ps, err := net.SplitHostPort(target)
	if err != nil {
		return forwardSpec{}, fmt.Errorf("%s %q: %v", flagName, s, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 || host == "" {
		return forwardSpec{}, fmt.Errorf("%s %q: want a host and a port 1-65535 after =", flagName, s)
	}
	return forwardSpec{local: local, host: host, port: uint16(port)}, nil
}

// tunnelXRDPDetect reports whether we run inside an xrdp session; tests
// replace it.
var tunnelXRDPDetect = xrdp.Detect

func runTunnel(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		socksAddr, socksUser, passFile string
		forwards, reverses             tunnelSpecs
		listen, display                string
		useXRDP, expose                bool
		window, maxStreams             int
		lf                             cli.LogFlags
		tf                             cli.TraceFlag
	)
	fs := flag.NewFlagSet("rdpdvc tunnel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tunnelUsage); fs.PrintDefaults(); fmt.Fprintln(stderr, "\n"+cli.ExitStatus) }
	fs.StringVar(&socksAddr, "socks", "", "serve SOCKS5 on `host:port` (e.g. 127.0.0.1:1080)")
	fs.StringVar(&socksUser, "socks-user", "", "require RFC 1929 authentication as `user` (with -socks-pass-file)")
	fs.StringVar(&passFile, "socks-pass-file", "", "the password for -socks-user, the first line of `FILE`")
	fs.Var(&forwards, "forward", "connections to LOCAL go to HOST:PORT from the client (repeatable; `LOCAL=HOST:PORT`)")
	fs.Var(&reverses, "reverse", "the client listens on CLIENTADDR, connections there come to HOST:PORT from here (repeatable; `CLIENTADDR=HOST:PORT`)")
	fs.BoolVar(&expose, "expose", false, "allow -socks and -forward on non-loopback addresses")
	fs.StringVar(&listen, "listen", "", "portable transport: wait for the client on `host:port` (default "+cli.DefaultAddr+" outside xrdp)")
	fs.BoolVar(&useXRDP, "xrdp", false, "reach the client of this xrdp session through chansrv (default inside one)")
	fs.StringVar(&display, "display", "", "xrdp: the session's X `display` (default $DISPLAY)")
	fs.IntVar(&window, "window", tunnel.DefaultWindow, "receive window per stream, `bytes` (at most 16 MiB)")
	fs.IntVar(&maxStreams, "max-streams", tunnel.DefaultMaxStreams, "streams open at once")
	lf.Register(fs)
	tf.Register(fs)
	log, code, ok := lf.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "rdpdvc tunnel: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q", fs.Arg(0))
	}
	if socksAddr == "" && len(forwards) == 0 && len(reverses) == 0 {
		return usage("nothing to do: give -socks, -forward or -reverse (-h for help)")
	}
	if useXRDP && listen != "" {
		return usage("-listen and -xrdp exclude each other")
	}
	if window < 1 || window > tunnel.MaxWindow || maxStreams < 1 {
		return usage("-window wants 1 to %d bytes, -max-streams at least 1", tunnel.MaxWindow)
	}
	var fwd, rev []forwardSpec
	for _, s := range forwards {
		f, err := parseForward("-forward", s)
		if err != nil {
			return usage("%v", err)
		}
		fwd = append(fwd, f)
	}
	for _, s := range reverses {
		f, err := parseForward("-reverse", s)
		if err != nil {
			return usage("%v", err)
		}
		rev = append(rev, f)
	}
	socksAddr = loopbackPort(socksAddr)
	for i := range fwd {
		fwd[i].local = loopbackPort(fwd[i].local)
	}
	for i := range rev {
		rev[i].local = loopbackPort(rev[i].local)
	}
	var users map[string]string
	if (socksUser == "") != (passFile == "") {
		return usage("-socks-user and -socks-pass-file go together")
	}
	if socksUser != "" {
		b, err := os.ReadFile(passFile)
		if err != nil {
			return usage("-socks-pass-file: %v", err)
		}
		pass, _, _ := strings.Cut(string(b), "\n")
		pass = strings.TrimSuffix(pass, "\r")
		if len(socksUser) > 255 || pass == "" || len(pass) > 255 {
			return usage("-socks-user and the password must be 1 to 255 bytes")
		}
		users = map[string]string{socksUser: pass}
	}
	local := []string{}
	if socksAddr != "" {
		local = append(local, socksAddr)
	}
	for _, f := range fwd {
		local = append(local, f.local)
	}
	for _, a := range local {
		if cli.IsLoopbackAddr(a) {
			continue
		}
		if !expose {
			return usage("%s is not a loopback address: anyone who reaches it reaches the client's network; give -expose to listen there anyway", a)
		}
		fmt.Fprintf(stderr, "WARNING: %s is not a loopback address: anyone who can reach it can make connections from the RDP client's network.\n", a)
	}
	rec, err := tf.Recorder(trace.Server)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc tunnel:", err)
		return 1
	}
	defer rec.Close()

	front := &tunnelFront{log: log, users: users, lim: lograte.New(0, 0), out: stdout}
	defer front.lim.Flush(log)
	newServer := func(op dvc.Opener) *tunnel.Server {
		return &tunnel.Server{Opener: op, Logger: log, Window: window, MaxStreams: maxStreams}
	}
	// The local listeners first, so that a port in use fails at once.
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
		front.wg.Wait()
	}()
	if socksAddr != "" {
		ln, err := net.Listen("tcp", socksAddr)
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc tunnel: -socks:", err)
			return 1
		}
		lns = append(lns, ln)
		front.printf("socks5 %s\n", ln.Addr())
		front.serve(ctx, ln, func(c net.Conn) { front.socks(ctx, c) })
	}
	for _, f := range fwd {
		ln, err := net.Listen("tcp", f.local)
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc tunnel: -forward:", err)
			return 1
		}
		lns = append(lns, ln)
		front.printf("forward %s %s\n", ln.Addr(), net.JoinHostPort(f.host, strconv.Itoa(int(f.port))))
		front.serve(ctx, ln, func(c net.Conn) { front.forward(ctx, c, f) })
	}

	if useXRDP || (listen == "" && tunnelXRDPDetect()) {
		op, err := xrdp.New(xrdp.Options{Display: display})
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc tunnel:", err)
			return 1
		}
		log.Info("using the xrdp session", "socket", op.SocketPath())
		ts := newServer(rec.Opener(op))
		front.current.Store(ts)
		closeRev := front.reverse(ctx, ts, rev)
		<-ctx.Done()
		closeRev()
		ts.Close()
		return 0
	}
	pl, err := portable.Listen(cli.ListenAddr(listen, stderr), portable.Config{Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc tunnel:", err)
		return 1
	}
	defer pl.Close()
	log.Info("waiting for a client (portable transport): rdpdvc tunnel-client -connect "+cli.DialAddr(pl.Addr()), "addr", pl.Addr().String())
	front.printf("tunnel %s\n", pl.Addr())
	for n := 1; ; n++ {
		srv, err := pl.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			fmt.Fprintln(stderr, "rdpdvc tunnel:", err)
			return 1
		}
		log.Info("client connected", "remote", srv.RemoteAddr().String())
		ts := newServer(rec.Conn(n).Opener(srv))
		front.current.Store(ts)
		closeRev := front.reverse(ctx, ts, rev)
		select {
		case <-ctx.Done():
		case <-srvDone(srv):
		}
		front.current.CompareAndSwap(ts, nil)
		closeRev()
		ts.Close()
		srv.Close()
		if ctx.Err() != nil {
			return 0
		}
		log.Info("client went away; waiting for the next", "err", srv.Wait())
	}
}

func srvDone(s *portable.Server) <-chan struct{} {
	c := make(chan struct{})
	go func() { s.Wait(); close(c) }()
	return c
}

// tunnelFront is the program's local side: the SOCKS5 and forward
// listeners, and the tunnel of the client connected now.
type tunnelFront struct {
	log     *slog.Logger
	users   map[string]string
	lim     *lograte.Limiter
	current atomic.Pointer[tunnel.Server]
	wg      sync.WaitGroup
	outMu   sync.Mutex
	out     io.Writer
}

func (t *tunnelFront) printf(format string, a ...any) {
	t.outMu.Lock()
	defer t.outMu.Unlock()
	fmt.Fprintf(t.out, format, a...)
}

// serve accepts on ln until it is closed, each connection on a goroutine
// of its own.
func (t *tunnelFront) serve(ctx context.Context, ln net.Listener, handle func(net.Conn)) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetNoDelay(true)
			}
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				// At exit every connection is dropped, so that none keeps
				// the program waiting (a silent SOCKS client, say).
				stop := context.AfterFunc(ctx, func() { c.Close() })
				defer stop()
				handle(c)
			}()
		}
	}()
}

var errNoClient = &tunnel.DialError{Code: wire.ReplyGeneralFailure, Err: errors.New("no RDP client is connected")}

func (t *tunnelFront) dial(ctx context.Context, host string, port uint16) (*tunnel.Stream, error) {
	ts := t.current.Load()
	if ts == nil {
		return nil, errNoClient
	}
	return ts.DialStream(ctx, host, port)
}

// socks serves one SOCKS5 client: the handshake, the tunnel's Dial, the
// reply with its code, then the stream.
func (t *tunnelFront) socks(ctx context.Context, c net.Conn) {
	defer c.Close()
	req, err := socks.Handshake(c, socks.Config{Users: t.users})
	if err != nil {
		t.lim.Log(t.log, slog.LevelInfo, "socks handshake", "socks5: handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, tunnel.DefaultOpenTimeout)
	st, err := t.dial(ctx, req.Host, req.Port)
	cancel()
	target := net.JoinHostPort(req.Host, strconv.Itoa(int(req.Port)))
	if err != nil {
		code := byte(wire.ReplyGeneralFailure)
		var de *tunnel.DialError
		if errors.As(err, &de) {
			code = de.Code
		}
		t.lim.Log(t.log, slog.LevelInfo, "socks connect", "socks5: connect failed", "target", target, "err", err)
		socks.WriteReply(c, socks.Reply(code), netip.AddrPort{})
		return
	}
	bound, _ := netip.ParseAddrPort(st.LocalAddr().String())
	if err := socks.WriteReply(c, socks.Succeeded, bound); err != nil {
		st.Close()
		return
	}
	t.log.Debug("socks5: connected", "target", target, "channel", st.ChannelID())
	tunnel.Join(c, st)
}

func (t *tunnelFront) forward(ctx context.Context, c net.Conn, f forwardSpec) {
	st, err := t.dial(ctx, f.host, f.port)
	if err != nil {
		t.lim.Log(t.log, slog.LevelWarn, "forward connect", "forward: connect failed", "target", net.JoinHostPort(f.host, strconv.Itoa(int(f.port))), "err", err)
		c.Close()
		return
	}
	tunnel.Join(c, st)
}

// reverse sets up the -reverse forwards on ts and returns what closes
// them. One the client refuses is logged and left out.
func (t *tunnelFront) reverse(ctx context.Context, ts *tunnel.Server, specs []forwardSpec) func() {
	var rs []*tunnel.Reverse
	for _, f := range specs {
		target := net.JoinHostPort(f.host, strconv.Itoa(int(f.port)))
		r, err := ts.Reverse(ctx, f.local, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", target)
		})
		if err != nil {
			t.log.Error("reverse forward refused", "client-addr", f.local, "target", target, "err", err)
			continue
		}
		t.printf("reverse %s %s\n", r.Addr(), target)
		rs = append(rs, r)
	}
	return func() {
		for _, r := range rs {
			r.Close()
		}
	}
}
