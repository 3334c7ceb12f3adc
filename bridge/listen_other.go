//go:build !unix

package bridge

import (
	"errors"
	"net"
	"syscall"
)

// listenUnix binds path. Windows has no socket file modes; the file
// takes its folder's ACL, so put it in a folder only the user can reach.
func listenUnix(path string) (net.Listener, error) {
	return net.Listen("unix", path)
}

// connRefused reports whether a dial failed because nothing listens
// (WSAECONNREFUSED on Windows, whose AF_UNIX sockets say so too).
func connRefused(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && (errno == syscall.ECONNREFUSED || errno == 10061)
}
