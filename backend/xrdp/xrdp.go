package xrdp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// Limits and wire values of the xrdpapi socket.
const (
	// MaxWrite is the largest message Write sends so that the client
	// receives it whole: chansrv reads the socket 32768 bytes at a time
	// (trans_create(TRANS_MODE_UNIX, 8192 * 4, ...) in chansrv.c) and
	// forwards each read as one DVC message.
	MaxWrite = 32768
	// MaxNameLen is the longest channel name chansrv accepts: 0.9 to
	// 0.10.4 (MAX(CHANNEL_NAME_LEN, MAX_PATH) in chansrv.c) drop the
	// connection without a status for longer ones, and 0.10.5+
	// (MAX_DVC_NAME_LEN in channel_defs.h) has room for no more.
	MaxNameLen = 260
	// DefaultMaxMessage is the receive ceiling when Options.MaxMessage is
	// 0: a Framer asking for more than this many bytes fails Read with
	// dvc.ErrTooLarge.
	DefaultMaxMessage = 16 << 20
	// DefaultOpenTimeout bounds the wait for the client's CreationStatus
	// when the Open context has no deadline. chansrv never times out: a
	// client that does not answer DYNVC_CREATE_REQ would hang Open.
	DefaultOpenTimeout = 30 * time.Second

	// xrdpapiVersion is the handshake's version field; chansrv rejects
	// anything else.
	xrdpapiVersion = 0
	// flagDynamic is WTS_CHANNEL_OPTION_DYNAMIC (xrdpapi.h); 0 would ask
	// for a static channel.
	flagDynamic = 0x00000001
	// handshakeFixed is the handshake size without the name: total,
	// version, nameLen and flags.
	handshakeFixed = 16
)

// ErrNotInSession is returned by New when the process does not appear to
// run in an xrdp session: no display, or no xrdpapi socket for it.
var ErrNotInSession = errors.New("xrdp: not in an xrdp session")

// Options configure an Opener. The zero value finds everything from the
// session's environment.
type Options struct {
	// Display is the X display of the session (":10", ":10.0" or "10").
	// Empty means $DISPLAY.
	Display string
	// SocketDir is the folder holding xrdpapi_<display>. Empty means
	// $XRDP_SOCKET_PATH, else the first folder of SocketDirs that holds
	// the socket.
	SocketDir string
	// User is the session's user, by name or number, whose uid names
	// xrdp 0.10's socket folder. Empty means the process's own user
	// (who must own the session anyway, unless root).
	User string
	// Protocol forces the open request (ProtocolV0 or ProtocolV1). The
	// zero value, ProtocolAuto, probes chansrv before the first open.
	Protocol Protocol
	// MaxMessage is the receive ceiling for framed reads
	// (DefaultMaxMessage if 0).
	MaxMessage int
	// SplitLarge lets Write send messages over MaxWrite bytes. chansrv
	// then forwards them as several DVC messages of at most 32768 bytes,
	// which only a client that reassembles by itself (a Framer on the
	// client side) can use. Without it such writes fail with
	// dvc.ErrTooLarge.
	SplitLarge bool
}

// Opener opens dynamic channels through one session's xrdpapi socket. It
// implements dvc.Opener and is safe for concurrent use.
type Opener struct {
	path   string
	opts   Options
	nextID atomic.Uint32
	proto  protocolCache
}

var _ dvc.Opener = (*Opener)(nil)

// SocketDirs lists the folders New looks in for xrdpapi_<display> when
// neither Options.SocketDir nor $XRDP_SOCKET_PATH says, in order: xrdp
// 0.10 keeps a folder per user under its socket folder, which Debian and
// Ubuntu build as /run/xrdp/sockdir (--with-socketdir) and upstream as
// RUNSTATEDIR/xrdp (/run or /var/run); xrdp 0.9 used the socket folder
// itself, /run/xrdp/sockdir on Debian and Ubuntu and /tmp/.xrdp by
// upstream's default.
func SocketDirs(uid int) []string {
	u := strconv.Itoa(uid)
	return []string{
		"/run/xrdp/sockdir/" + u, // Debian and Ubuntu, xrdp 0.10
		"/run/xrdp/" + u,         // upstream 0.10 default
		"/var/run/xrdp/sockdir/" + u,
		"/var/run/xrdp/" + u,
		"/run/xrdp/sockdir", // Debian and Ubuntu, xrdp 0.9
		"/var/run/xrdp/sockdir",
		"/tmp/.xrdp", // upstream 0.9 default
	}
}

// New finds the session's xrdpapi socket. It fails with an error wrapping
// ErrNotInSession when there is no display or no socket for it; the
// error lists every path it tried.
func New(o Options) (*Opener, error) {
	disp := o.Display
	if disp == "" {
		disp = os.Getenv("DISPLAY")
	}
	if disp == "" {
		return nil, fmt.Errorf("%w: DISPLAY is not set (set it, or Options.Display, to the session's display)", ErrNotInSession)
	}
	n, err := ParseDisplay(disp)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotInSession, err)
	}
	switch o.Protocol {
	case ProtocolAuto, ProtocolV0, ProtocolV1:
	default:
		return nil, fmt.Errorf("xrdp: Options.Protocol %v is not one of ProtocolAuto, ProtocolV0, ProtocolV1", o.Protocol)
	}
	name := "xrdpapi_" + strconv.Itoa(n)
	var dirs []string
	switch {
	case o.SocketDir != "":
		dirs = []string{o.SocketDir}
	case os.Getenv("XRDP_SOCKET_PATH") != "":
		dirs = []string{os.Getenv("XRDP_SOCKET_PATH")}
	default:
		uid, err := lookupUID(o.User)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotInSession, err)
		}
		dirs = SocketDirs(uid)
	}
	tried := make([]string, 0, len(dirs))
	for _, d := range dirs {
		p := filepath.Join(d, name)
		tried = append(tried, p)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if o.MaxMessage <= 0 {
				o.MaxMessage = DefaultMaxMessage
			}
			op := &Opener{path: p, opts: o}
			op.proto.known = o.Protocol
			return op, nil
		}
	}
	return nil, fmt.Errorf("%w: no socket for display :%d; tried %s (is xrdp-chansrv running for that display, and is this the session's user? set XRDP_SOCKET_PATH or Options.SocketDir)",
		ErrNotInSession, n, strings.Join(tried, ", "))
}

// lookupUID resolves Options.User.
func lookupUID(u string) (int, error) {
	if u == "" {
		return os.Getuid(), nil
	}
	if n, err := strconv.Atoi(u); err == nil && n >= 0 {
		return n, nil
	}
	usr, err := user.Lookup(u)
	if err != nil {
		return 0, fmt.Errorf("user %q: %w", u, err)
	}
	return strconv.Atoi(usr.Uid)
}

// Detect reports whether the process appears to run inside an xrdp
// session: xrdp's session variables are set, or New finds a socket.
// Programs use it to pick this backend without a flag.
func Detect() bool {
	if os.Getenv("XRDP_SESSION") != "" {
		return true
	}
	_, err := New(Options{})
	return err == nil
}

// SocketPath is the xrdpapi socket the Opener uses.
func (op *Opener) SocketPath() string { return op.path }

// ParseDisplay returns the display number of an X display name for this
// host: ":10", ":10.0", "unix:10" and "10" all give 10.
func ParseDisplay(s string) (int, error) {
	host, rest, ok := strings.Cut(s, ":")
	if !ok {
		host, rest = "", s
	}
	if host != "" && host != "unix" {
		return 0, fmt.Errorf("display %q is not local (xrdpapi sockets exist only on the session's host)", s)
	}
	num, _, _ := strings.Cut(rest, ".")
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("display %q has no display number", s)
	}
	return n, nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty channel name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("channel name is %d bytes, over chansrv's %d", len(name), MaxNameLen)
	case strings.IndexByte(name, 0) >= 0:
		// The name goes on the wire NUL-terminated (MS-RDPEDYC 2.2.2.1).
		return errors.New("channel name contains a NUL byte")
	}
	return nil
}

// Open asks the client for a channel named name. It returns a
// *dvc.OpenError carrying the client's CreationStatus when the client has
// no listener or refuses. Of opts, only the Framer matters: xrdp ignores
// priority. Errors wrap ErrSessionEnded (and dvc.ErrConnectionLost) when
// the socket is gone or refuses connections.
func (op *Opener) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	o := dvc.ApplyOpenOptions(opts)
	uc, err := op.OpenSocket(ctx, name)
	if err != nil {
		return nil, err
	}
	prepareWrites(uc)
	return newConn(uc, name, op.nextID.Add(1), o.Framer, op.opts.MaxMessage, op.opts.SplitLarge), nil
}

// OpenSocket opens the dynamic channel name like Open, and returns the
// xrdpapi socket itself, after the handshake: a raw byte stream to the
// client with none of Conn's framing, fencing or flow control. It is for
// programs that measure or test xrdp itself (cmd/xrdpapi-echo-baseline).
func (op *Opener) OpenSocket(ctx context.Context, name string) (*net.UnixConn, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("xrdp: open %q: %w", name, err)
	}
	proto, err := op.proto.get(ctx, op.path)
	if err != nil {
		op.sessionGone(err)
		return nil, fmt.Errorf("xrdp: open %q: %w", name, err)
	}
	req, _ := AppendOpenRequest(nil, proto, name) // name checked above
	uc, err := dial(ctx, op.path)
	if err != nil {
		op.sessionGone(err)
		return nil, fmt.Errorf("xrdp: open %q: %w", name, err)
	}
	status, err := handshake(ctx, uc, req, proto)
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("xrdp: open %q on %s: %w", name, op.path, err)
	}
	if status != 0 {
		uc.Close()
		return nil, &dvc.OpenError{Name: name, Status: hresult.HRESULT(status)}
	}
	return uc, nil
}

// Protocol returns the open request the session's chansrv speaks,
// probing it if Options.Protocol did not say and no Open has yet.
func (op *Opener) Protocol(ctx context.Context) (Protocol, error) {
	p, err := op.proto.get(ctx, op.path)
	if err != nil {
		op.sessionGone(err)
	}
	return p, err
}

// sessionGone forgets a probed protocol once chansrv is gone: a session
// started later on the same display may run another xrdp.
func (op *Opener) sessionGone(err error) {
	if errors.Is(err, ErrSessionEnded) {
		op.proto.forget(op.opts.Protocol)
	}
}

// handshake sends the open request req and waits for the creation
// status. Both protocols answer the same way: a u32 status, 0 when the
// client opened the channel, else the client's CreationStatus
// (my_api_open_response in chansrv 0.9 to 0.10.6).
func handshake(ctx context.Context, uc *net.UnixConn, req []byte, proto Protocol) (uint32, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultOpenTimeout)
	}
	uc.SetDeadline(deadline)
	// Cancelling ctx moves the deadline into the past; once the handshake
	// is over it must not any more, the socket then belongs to the Conn.
	var mu sync.Mutex
	over := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		if !over {
			uc.SetDeadline(time.Unix(1, 0))
		}
		mu.Unlock()
	})
	defer func() {
		stop()
		mu.Lock()
		over = true
		uc.SetDeadline(time.Time{})
		mu.Unlock()
	}()
	if _, err := uc.Write(req); err != nil {
		return 0, ioError(ctx, fmt.Sprintf("sending the %v open request", proto), err)
	}
	var st [4]byte
	if _, err := io.ReadFull(uc, st[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, fmt.Errorf("%w: chansrv closed the socket without a creation status for the %v open request (no client connected, too many open channels, or a rejected request)", dvc.ErrConnectionLost, proto)
		}
		return 0, ioError(ctx, fmt.Sprintf("waiting for the creation status of the %v open request", proto), err)
	}
	return binary.LittleEndian.Uint32(st[:]), nil
}

// ioError turns a socket error into what callers expect: the context's
// error when it was cancelled, a timeout, or a lost connection.
func ioError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		// chansrv passes the client's answer on as soon as it has it, so
		// either the client never answered DYNVC_CREATE_REQ or chansrv
		// never sent it (a request it is still waiting to complete).
		return fmt.Errorf("%s: no answer from chansrv before the deadline (the Open context's, else %v): the client did not answer, or chansrv did not take the request: %w", what, DefaultOpenTimeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("%s: %w: %w", what, dvc.ErrConnectionLost, err)
}
