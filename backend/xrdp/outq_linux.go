//go:build linux

package xrdp

import (
	"context"
	"fmt"
	"net"
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

// waitDrained returns once chansrv has read everything written to uc, so
// that its next recv() returns only the next message.
func waitDrained(ctx context.Context, uc *net.UnixConn, done <-chan struct{}) error {
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
