package socks

import (
	"context"
	"errors"
	"net"
	"os"

	"github.com/rdpdvc/rdpdvc/tunnel/allow"
)

// ReplyFor maps a dial's error to the reply that tells the client most:
//
//	nil                                       Succeeded
//	a refusal by the rules (allow.ErrDenied)  NotAllowed
//	connection refused                        ConnectionRefused
//	network unreachable or down               NetworkUnreachable
//	host unreachable or down, a DNS failure   HostUnreachable
//	a timeout                                 HostUnreachable
//	anything else (cancelled, reset, …)       GeneralFailure
//
// A timeout is HostUnreachable, not TTLExpired: RFC 1928 does not say what
// TTL expired means for TCP, and a host that does not answer a connect is,
// to the client, a host it cannot reach; clients such as curl print the
// reply's name. TTLExpired is never sent.
//
// The errno cases work on the error chain (errors.Is), so an error that
// crossed the tunnel must be rebuilt as one that wraps the errno or, more
// simply, carried as the Reply itself.
func ReplyFor(err error) Reply {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case err == nil:
		return Succeeded
	case errors.Is(err, allow.ErrDenied):
		return NotAllowed
	case errors.Is(err, context.Canceled):
		return GeneralFailure
	case isErrno(err, errConnRefused):
		return ConnectionRefused
	case isErrno(err, errNetUnreach):
		return NetworkUnreachable
	case isErrno(err, errHostUnreach), errors.As(err, &dnsErr):
		return HostUnreachable
	case isErrno(err, errTimedOut), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return HostUnreachable
	}
	return GeneralFailure
}

func isErrno(err error, set []error) bool {
	for _, e := range set {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
