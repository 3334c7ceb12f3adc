package xrdp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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
	// MaxNameLen is the longest channel name chansrv accepts
	// (MAX(CHANNEL_NAME_LEN, MAX_PATH) in chansrv.c); it drops the
	// connection without a status for longer ones.
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
	// $XRDP_SOCKET_PATH, else the first of /run/xrdp/<uid> (xrdp 0.10),
	// /run/xrdp/sockdir and /var/run/xrdp/sockdir (xrdp 0.9) that holds
	// the socket.
	SocketDir string
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
}

var _ dvc.Opener = (*Opener)(nil)

// New finds the session's xrdpapi socket. It fails with an error wrapping
// ErrNotInSession when there is no display or no socket for it.
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
	name := "xrdpapi_" + strconv.Itoa(n)
	var dirs []string
	switch {
	case o.SocketDir != "":
		dirs = []string{o.SocketDir}
	case os.Getenv("XRDP_SOCKET_PATH") != "":
		dirs = []string{os.Getenv("XRDP_SOCKET_PATH")}
	default:
		dirs = []string{
			filepath.Join("/run/xrdp", strconv.Itoa(os.Getuid())),
			"/run/xrdp/sockdir",
			"/var/run/xrdp/sockdir",
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if o.MaxMessage <= 0 {
				o.MaxMessage = DefaultMaxMessage
			}
			return &Opener{path: p, opts: o}, nil
		}
	}
	return nil, fmt.Errorf("%w: no socket %s in %s (is xrdp-chansrv running for display :%d? set XRDP_SOCKET_PATH or Options.SocketDir)",
		ErrNotInSession, name, strings.Join(dirs, ", "), n)
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

// appendHandshake appends the xrdpapi open request (see the package doc).
func appendHandshake(b []byte, name string, flags uint32) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(handshakeFixed+len(name)))
	b = binary.LittleEndian.AppendUint32(b, xrdpapiVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	return binary.LittleEndian.AppendUint32(b, flags)
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
// priority.
func (op *Opener) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("xrdp: open %q: %w", name, err)
	}
	o := dvc.ApplyOpenOptions(opts)
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", op.path)
	if err != nil {
		return nil, fmt.Errorf("xrdp: open %q: %w: %w", name, dvc.ErrConnectionLost, err)
	}
	uc := nc.(*net.UnixConn)
	status, err := handshake(ctx, uc, name)
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("xrdp: open %q: %w", name, err)
	}
	if status != 0 {
		uc.Close()
		return nil, &dvc.OpenError{Name: name, Status: hresult.HRESULT(status)}
	}
	prepareWrites(uc)
	return newConn(uc, name, op.nextID.Add(1), o.Framer, op.opts.MaxMessage, op.opts.SplitLarge), nil
}

// handshake sends the open request and waits for the creation status.
func handshake(ctx context.Context, uc *net.UnixConn, name string) (uint32, error) {
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
	if _, err := uc.Write(appendHandshake(nil, name, flagDynamic)); err != nil {
		return 0, ioError(ctx, "sending the open request", err)
	}
	var st [4]byte
	if _, err := io.ReadFull(uc, st[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, fmt.Errorf("%w: chansrv closed the socket without a creation status (too many open channels, or a rejected name)", dvc.ErrConnectionLost)
		}
		return 0, ioError(ctx, "waiting for the creation status", err)
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
		return fmt.Errorf("%s: no answer from the client before the deadline (the Open context's, else %v): %w", what, DefaultOpenTimeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("%s: %w: %w", what, dvc.ErrConnectionLost, err)
}
