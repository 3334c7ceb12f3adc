package socks

import "golang.org/x/sys/windows"

// Winsock's connect errors are WSAE* values, which syscall's ECONNREFUSED
// and friends (invented numbers on Windows) do not match.
var (
	errConnRefused = []error{windows.WSAECONNREFUSED}
	errNetUnreach  = []error{windows.WSAENETUNREACH, windows.WSAENETDOWN}
	errHostUnreach = []error{windows.WSAEHOSTUNREACH, windows.WSAEHOSTDOWN}
	errTimedOut    = []error{windows.WSAETIMEDOUT}
)
