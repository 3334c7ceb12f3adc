//go:build !unix

package bridge

import "net"

// listenUnix binds path. Windows has no socket file modes; the file
// takes its folder's ACL, so put it in a folder only the user can reach.
func listenUnix(path string) (net.Listener, error) {
	return net.Listen("unix", path)
}
