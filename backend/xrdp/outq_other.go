//go:build !linux

package xrdp

import (
	"context"
	"net"
)

// Without SIOCOUTQ there is no way to see whether chansrv has read the
// previous message; messages written back to back may reach the client
// merged. xrdp runs on Linux and the BSDs; only Linux is supported here.
func prepareWrites(*net.UnixConn) {}

func waitDrained(context.Context, *net.UnixConn, <-chan struct{}) error { return nil }

func writeMessage(uc *net.UnixConn, p []byte, _ *bool) (int, error) { return uc.Write(p) }
