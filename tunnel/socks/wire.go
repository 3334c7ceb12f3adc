// Package socks is the server side of SOCKS5 (RFC 1928) with the
// username/password method (RFC 1929), for the session end of the tunnel:
// Handshake reads a client's greeting, optional authentication and
// request, and the caller dials (through the tunnel) and answers with
// WriteReply. Only CONNECT is supported.
//
// The messages are parsed by pure functions (ParseGreeting, ParseAuth,
// ParseRequest) that take the bytes read so far and either return the
// message and the number of bytes it used, or ErrShort with the number of
// bytes the message has at least, so that the reader reads exactly that
// far and never past the handshake into the data that follows it.
//
// The client's side (Connect, AppendRequest, ParseReply) is here for tests
// and benchmarks.
package socks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Version is the VER of every SOCKS5 message (RFC 1928 section 3).
const Version = 0x05

// Methods (RFC 1928 section 3).
const (
	MethodNoAuth       = 0x00 // NO AUTHENTICATION REQUIRED
	MethodUserPass     = 0x02 // USERNAME/PASSWORD (RFC 1929)
	MethodNoAcceptable = 0xFF // NO ACCEPTABLE METHODS
)

// Commands (RFC 1928 section 4).
const (
	CmdConnect      = 0x01 // CONNECT
	CmdBind         = 0x02 // BIND
	CmdUDPAssociate = 0x03 // UDP ASSOCIATE
)

// authVersion is the VER of RFC 1929's messages: the version of the
// subnegotiation, not of SOCKS.
const authVersion = 0x01

// AddrKind is a request's ATYP (RFC 1928 section 5).
type AddrKind byte

const (
	AddrIPv4   AddrKind = 0x01 // IP V4 address: 4 bytes
	AddrDomain AddrKind = 0x03 // DOMAINNAME: a length byte, then the name
	AddrIPv6   AddrKind = 0x04 // IP V6 address: 16 bytes
)

func (k AddrKind) String() string {
	switch k {
	case AddrIPv4:
		return "IPv4"
	case AddrDomain:
		return "domain"
	case AddrIPv6:
		return "IPv6"
	}
	return fmt.Sprintf("ATYP 0x%02x", byte(k))
}

// Reply is a reply's REP field (RFC 1928 section 6).
type Reply byte

const (
	Succeeded            Reply = 0x00 // succeeded
	GeneralFailure       Reply = 0x01 // general SOCKS server failure
	NotAllowed           Reply = 0x02 // connection not allowed by ruleset
	NetworkUnreachable   Reply = 0x03 // Network unreachable
	HostUnreachable      Reply = 0x04 // Host unreachable
	ConnectionRefused    Reply = 0x05 // Connection refused
	TTLExpired           Reply = 0x06 // TTL expired
	CommandNotSupported  Reply = 0x07 // Command not supported
	AddrTypeNotSupported Reply = 0x08 // Address type not supported
)

func (r Reply) String() string {
	switch r {
	case Succeeded:
		return "succeeded"
	case GeneralFailure:
		return "general failure"
	case NotAllowed:
		return "not allowed by ruleset"
	case NetworkUnreachable:
		return "network unreachable"
	case HostUnreachable:
		return "host unreachable"
	case ConnectionRefused:
		return "connection refused"
	case TTLExpired:
		return "TTL expired"
	case CommandNotSupported:
		return "command not supported"
	case AddrTypeNotSupported:
		return "address type not supported"
	}
	return fmt.Sprintf("reply 0x%02x", byte(r))
}

// ErrShort is returned by the Parse functions when b holds only the start
// of a message; the n they return with it is the length the message has
// at least, so read up to n bytes and parse again.
var ErrShort = errors.New("socks: message incomplete")

// Error is a malformed or refused message. Reply is the REP a request
// error is answered with (CommandNotSupported, AddrTypeNotSupported or
// GeneralFailure); it means nothing for the other messages.
type Error struct {
	Msg    string // "greeting", "auth" or "request"
	Reason string // which field and what is wrong with it
	Reply  Reply
}

func (e *Error) Error() string { return "socks: " + e.Msg + ": " + e.Reason }

func errorf(msg string, reply Reply, format string, args ...any) error {
	return &Error{Msg: msg, Reason: fmt.Sprintf(format, args...), Reply: reply}
}

// The longest message of each kind: every length in them is one byte, so
// a reader needs no other ceiling.
const (
	MaxGreeting = 2 + 255           // VER NMETHODS METHODS
	MaxAuth     = 2 + 255 + 1 + 255 // VER ULEN UNAME PLEN PASSWD
	MaxRequest  = 4 + 1 + 255 + 2   // VER CMD RSV ATYP, a domain name, DST.PORT
	MaxReply    = MaxRequest        // the same layout, with BND for DST
)

// RFC 1928 section 5: a domain name has one length byte; an empty one
// names nothing.
const (
	minDomain = 1
	maxDomain = 255
)

// Greeting is the client's version identifier/method selection message
// (RFC 1928 section 3): the methods it offers.
type Greeting struct {
	Methods []byte // 1 to 255 of them; a sub-slice of the input
}

// Offers reports whether the client offered method m.
func (g Greeting) Offers(m byte) bool {
	for _, x := range g.Methods {
		if x == m {
			return true
		}
	}
	return false
}

// ParseGreeting parses +----+----------+----------+ VER NMETHODS METHODS.
func ParseGreeting(b []byte) (Greeting, int, error) {
	const msg = "greeting"
	if len(b) < 2 {
		if len(b) == 1 && b[0] != Version {
			return Greeting{}, 0, errorf(msg, 0, "VER 0x%02x is not 5", b[0])
		}
		return Greeting{}, 2, ErrShort
	}
	if b[0] != Version {
		return Greeting{}, 0, errorf(msg, 0, "VER 0x%02x is not 5", b[0])
	}
	n := int(b[1])
	if n == 0 {
		return Greeting{}, 0, errorf(msg, 0, "NMETHODS 0")
	}
	if len(b) < 2+n {
		return Greeting{}, 2 + n, ErrShort
	}
	return Greeting{Methods: b[2 : 2+n]}, 2 + n, nil
}

// AppendMethodSelection appends the server's answer to a greeting: VER
// METHOD, where METHOD is the chosen one or MethodNoAcceptable.
func AppendMethodSelection(b []byte, method byte) []byte {
	return append(b, Version, method)
}

// Auth is RFC 1929's username/password request.
type Auth struct {
	User, Password string
}

// ParseAuth parses VER(1) ULEN UNAME PLEN PASSWD (RFC 1929 section 2).
// RFC 1929 allows any bytes; empty fields are refused, as the RFC's
// lengths start at 1.
func ParseAuth(b []byte) (Auth, int, error) {
	const msg = "auth"
	if len(b) < 2 {
		if len(b) == 1 && b[0] != authVersion {
			return Auth{}, 0, errorf(msg, 0, "VER 0x%02x is not 1", b[0])
		}
		return Auth{}, 2, ErrShort
	}
	if b[0] != authVersion {
		return Auth{}, 0, errorf(msg, 0, "VER 0x%02x is not 1", b[0])
	}
	ulen := int(b[1])
	if ulen == 0 {
		return Auth{}, 0, errorf(msg, 0, "ULEN 0")
	}
	if len(b) < 2+ulen+1 {
		return Auth{}, 2 + ulen + 1, ErrShort
	}
	plen := int(b[2+ulen])
	if plen == 0 {
		return Auth{}, 0, errorf(msg, 0, "PLEN 0")
	}
	end := 2 + ulen + 1 + plen
	if len(b) < end {
		return Auth{}, end, ErrShort
	}
	return Auth{User: string(b[2 : 2+ulen]), Password: string(b[3+ulen : end])}, end, nil
}

// AppendAuthReply appends RFC 1929's answer: VER(1) STATUS, 0 for success.
func AppendAuthReply(b []byte, ok bool) []byte {
	status := byte(0x01)
	if ok {
		status = 0x00
	}
	return append(b, authVersion, status)
}

// Request is a CONNECT request: where the client wants to go.
type Request struct {
	// Host as the client sent it: an IPv4 or IPv6 literal (without
	// brackets), or a domain name, left unresolved because it is resolved
	// on the client side of the RDP connection.
	Host string
	Port uint16
	Kind AddrKind
}

// ParseRequest parses VER CMD RSV ATYP DST.ADDR DST.PORT (RFC 1928 section
// 4). A command other than CONNECT is an *Error with Reply
// CommandNotSupported, found as soon as CMD has arrived; an unknown ATYP
// one with AddrTypeNotSupported. RSV is not checked (RFC 1928 only says
// it is reserved). Domain names are 1 to 255 bytes without NUL; port 0 is
// refused, as nothing listens there.
func ParseRequest(b []byte) (Request, int, error) {
	const msg = "request"
	if len(b) > 0 && b[0] != Version {
		return Request{}, 0, errorf(msg, GeneralFailure, "VER 0x%02x is not 5", b[0])
	}
	if len(b) > 1 && b[1] != CmdConnect {
		return Request{}, 0, errorf(msg, CommandNotSupported, "CMD 0x%02x is not CONNECT", b[1])
	}
	if len(b) < 4 {
		return Request{}, 4, ErrShort
	}
	var r Request
	r.Kind = AddrKind(b[3])
	off := 4
	switch r.Kind {
	case AddrIPv4, AddrIPv6:
		n := 4
		if r.Kind == AddrIPv6 {
			n = 16
		}
		if len(b) < off+n+2 {
			return Request{}, off + n + 2, ErrShort
		}
		a, _ := netip.AddrFromSlice(b[off : off+n])
		r.Host = a.String()
		off += n
	case AddrDomain:
		if len(b) < off+1 {
			return Request{}, off + 1, ErrShort
		}
		n := int(b[off])
		if n < minDomain {
			return Request{}, 0, errorf(msg, GeneralFailure, "DST.ADDR domain name of length 0")
		}
		off++
		if len(b) < off+n+2 {
			return Request{}, off + n + 2, ErrShort
		}
		name := b[off : off+n]
		if i := strings.IndexByte(string(name), 0); i >= 0 {
			return Request{}, 0, errorf(msg, GeneralFailure, "DST.ADDR domain name has NUL at byte %d", i)
		}
		r.Host = string(name)
		off += n
	default:
		return Request{}, 0, errorf(msg, AddrTypeNotSupported, "ATYP 0x%02x unknown", b[3])
	}
	r.Port = binary.BigEndian.Uint16(b[off:])
	off += 2
	if r.Port == 0 {
		return Request{}, 0, errorf(msg, GeneralFailure, "DST.PORT 0")
	}
	return r, off, nil
}

// AppendRequest appends a CONNECT request for host:port: ATYP IPv4 or IPv6
// when host is an IP literal, else a domain name (1 to 255 bytes). It is
// the client's side, for tests and benchmarks.
func AppendRequest(b []byte, host string, port uint16) ([]byte, error) {
	b = append(b, Version, CmdConnect, 0)
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
		if a.Is4() {
			b = append(b, byte(AddrIPv4))
		} else {
			b = append(b, byte(AddrIPv6))
		}
		b = append(b, a.AsSlice()...)
	} else {
		if len(host) < minDomain || len(host) > maxDomain {
			return nil, fmt.Errorf("socks: request: domain name of %d bytes is not 1-255", len(host))
		}
		b = append(b, byte(AddrDomain), byte(len(host)))
		b = append(b, host...)
	}
	return binary.BigEndian.AppendUint16(b, port), nil
}

// AppendReply appends a reply (RFC 1928 section 6): VER REP RSV ATYP
// BND.ADDR BND.PORT. An invalid bound (the zero AddrPort) is sent as
// 0.0.0.0:0, which clients take as "no address to report"; IPv4-mapped
// addresses are sent as IPv4.
func AppendReply(b []byte, code Reply, bound netip.AddrPort) []byte {
	a := bound.Addr().Unmap()
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	b = append(b, Version, byte(code), 0)
	if a.Is4() {
		b = append(b, byte(AddrIPv4))
	} else {
		b = append(b, byte(AddrIPv6))
	}
	b = append(b, a.AsSlice()...)
	return binary.BigEndian.AppendUint16(b, bound.Port())
}

// ParseReply parses a reply, for the client's side: the REP and the bound
// address. A domain name in BND.ADDR is skipped (the zero AddrPort).
func ParseReply(b []byte) (Reply, netip.AddrPort, int, error) {
	const msg = "reply"
	if len(b) > 0 && b[0] != Version {
		return 0, netip.AddrPort{}, 0, errorf(msg, 0, "VER 0x%02x is not 5", b[0])
	}
	if len(b) < 5 {
		return 0, netip.AddrPort{}, 5, ErrShort
	}
	code := Reply(b[1])
	var n int
	switch AddrKind(b[3]) {
	case AddrIPv4:
		n = 4
	case AddrIPv6:
		n = 16
	case AddrDomain:
		n = 1 + int(b[4])
	default:
		return 0, netip.AddrPort{}, 0, errorf(msg, 0, "ATYP 0x%02x unknown", b[3])
	}
	end := 4 + n + 2
	if len(b) < end {
		return 0, netip.AddrPort{}, end, ErrShort
	}
	port := binary.BigEndian.Uint16(b[4+n:])
	if AddrKind(b[3]) == AddrDomain {
		return code, netip.AddrPort{}, end, nil
	}
	a, _ := netip.AddrFromSlice(b[4 : 4+n])
	return code, netip.AddrPortFrom(a, port), end, nil
}
