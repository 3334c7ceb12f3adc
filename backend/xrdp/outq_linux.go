//go:build linux

package xrdp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// sendBuffer is the SO_SNDBUF asked for (the kernel doubles it). A UNIX
// stream socket queues a write in pieces of at most half its send buffer,
// so it must be well over 2*MaxWrite for a MaxWrite message to be queued,
// and read by chansrv, as one piece.
const sendBuffer = 128 << 10

// Backoff while waiting for chansrv to read the previous message. The
// first check is free: in request/response traffic the queue is empty by
// the time the next message is written.
const (
	drainFirstWait = 20 * time.Microsecond
	drainMaxWait   = 2 * time.Millisecond
)

func prepareWrites(uc *net.UnixConn) {
	if rc, err := uc.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF); err == nil && v >= 2*sendBuffer {
				return
			}
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, sendBuffer)
		})
	}
}

// outq returns the bytes written to uc that the peer has not read yet
// (SIOCOUTQ on a UNIX socket: the send-side memory still charged for
// socket buffers in the peer's receive queue).
func outq(uc *net.UnixConn) (int, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
		return 0, err
	}
	return n, ierr
}

// waitDrained returns once chansrv has read everything written to uc:
// flow control, and at most one fenced message in flight.
func waitDrained(ctx context.Context, uc *net.UnixConn, done <-chan struct{}) error {
	if !drainEnabled {
		return nil
	}
	wait := drainFirstWait
	var t *time.Timer
	for {
		n, err := outq(uc)
		if err != nil {
			return fmt.Errorf("xrdp: SIOCOUTQ: %w", err)
		}
		if n == 0 {
			return nil
		}
		if t == nil {
			t = time.NewTimer(wait)
			defer t.Stop()
		} else {
			t.Reset(wait)
		}
		select {
		case <-t.C:
		case <-done:
			return net.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, drainMaxWait)
	}
}

// The fence. Waiting for an empty send queue is not enough on its own:
// chansrv's recv() may have taken the previous message off the queue and
// still be looping in the kernel when the next one arrives, and then it
// returns both (seen once in 200 pings sent 200 us apart on a loaded
// machine). So each message also carries an SCM_RIGHTS control message
// with one descriptor of /dev/null: the kernel ends a recv() on a UNIX
// stream socket right after a socket buffer that carries descriptors
// (net/unix/af_unix.c, unix_stream_read_generic: "if (scm.fp) break"),
// and since every message is one socket buffer (see sendBuffer), no
// recv() can return more than one message. chansrv reads with plain
// recv(), without a control buffer, so the kernel drops the descriptor
// on delivery and chansrv never sees it.
var (
	fenceOnce sync.Once
	fenceFile *os.File // kept referenced: its finalizer would close the fd
	fenceOOB  []byte   // nil: no fence (could not open /dev/null)
)

// fenceEnabled and drainEnabled turn the two mechanisms off in tests
// that show what each one does alone.
var fenceEnabled, drainEnabled = true, true

func fence() []byte {
	fenceOnce.Do(func() {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return
		}
		// Kept open for the life of the process: it is only ever sent.
		fenceFile = f
		fenceOOB = unix.UnixRights(int(f.Fd()))
	})
	return fenceOOB
}

// writeMessage writes p as one socket buffer carrying the fence. If the
// kernel refuses descriptors (a security module, ETOOMANYREFS), the
// message goes without one and *fenced becomes false for the conn.
func writeMessage(uc *net.UnixConn, p []byte, fenced *bool) (int, error) {
	oob := fence()
	if !*fenced || !fenceEnabled || oob == nil {
		return uc.Write(p)
	}
	n, _, err := uc.WriteMsgUnix(p, oob, nil)
	if err != nil && n == 0 && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.ETOOMANYREFS)) {
		*fenced = false
		return uc.Write(p)
	}
	if err == nil && n < len(p) {
		// A short sendmsg (only when the send buffer is full, which the
		// drain wait prevents): the rest goes unfenced.
		m, err := uc.Write(p[n:])
		return n + m, err
	}
	return n, err
}
