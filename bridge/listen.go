package bridge

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// Listen makes the server side's local socket. A unix socket is created
// with mode 0600, so that only the session's user can connect, and a
// file already at the path is removed only if it is a socket nobody
// answers on (one left by a bridge that died); anything else there is an
// error. Closing the listener removes the socket file. A tcp address
// should be loopback: anyone who can reach it can use the channel.
func Listen(a Addr) (net.Listener, error) {
	if a.Network != "unix" {
		return net.Listen(a.Network, a.Address)
	}
	if err := removeStale(a.Address); err != nil {
		return nil, err
	}
	return listenUnix(a.Address)
}

// removeStale removes a socket file at path that nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge: %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("bridge: %s exists and is not a socket; not replacing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("bridge: %s: another program is listening on it", path)
	}
	// Only "connection refused" says nobody listens: a full accept
	// backlog (EAGAIN), a permission error or a timeout come from a live
	// listener, or one this side cannot judge, and are not stale.
	if !connRefused(err) {
		return fmt.Errorf("bridge: %s: not replacing it: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("bridge: removing the stale socket %s: %w", path, err)
	}
	return nil
}
