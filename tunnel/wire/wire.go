// Package wire is the codec of the rdpdvc::tunnel channel (docs/tunnel.md):
// its messages as Go values and bytes, and nothing else (no I/O, no
// state).
//
// Every message is a u32 little-endian Length (the bytes after it), a u8
// Type, then the type's body; every integer is little-endian. The length
// prefix lets stream-only backends (xrdp) recover messages: pass [Framer]
// to dvc.WithFramer at Open.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// ChannelName is the dynamic virtual channel the tunnel runs on: ASCII,
// within MS-RDPEDYC 2.2.2.1's name rule.
const ChannelName = "rdpdvc::tunnel"

// Sizes and ceilings.
const (
	// HeaderLen is the Length and Type fields.
	HeaderLen = 5
	// MaxMessage is the largest message, header included: 64 KiB, the
	// ceiling of the xrdp backend's messages and of the portable
	// transport's PDUs. Framer and Parse refuse anything longer before
	// allocating.
	MaxMessage = 64 << 10
	// MaxData is the largest DATA payload (MaxMessage less the header).
	MaxData = MaxMessage - HeaderLen
	// MaxDomain is the longest domain name an address carries (its u8
	// length, as in RFC 1928 section 5).
	MaxDomain = 255
)

// Type is a message's Type field.
type Type uint8

// The message types (docs/tunnel.md).
const (
	TypeOpen     Type = 0x01 // server → client: connect to a target
	TypeReply    Type = 0x02 // client → server: the answer to OPEN, LISTEN or ATTACH
	TypeData     Type = 0x03 // either way: stream bytes
	TypeCredit   Type = 0x04 // either way: the receiver wrote bytes out; more may be sent
	TypeEOF      Type = 0x05 // either way: no more DATA from this end (half-close)
	TypeClose    Type = 0x06 // either way: the stream is over
	TypeListen   Type = 0x07 // server → client: listen on a client-side address (reverse forward)
	TypeAccepted Type = 0x08 // client → server, on a LISTEN instance: a connection came in
	TypeAttach   Type = 0x09 // server → client: this instance carries that accepted connection
)

var typeNames = map[Type]string{
	TypeOpen: "OPEN", TypeReply: "REPLY", TypeData: "DATA", TypeCredit: "CREDIT",
	TypeEOF: "EOF", TypeClose: "CLOSE", TypeListen: "LISTEN", TypeAccepted: "ACCEPTED",
	TypeAttach: "ATTACH",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("Type(0x%02x)", uint8(t))
}

// Address types, as RFC 1928 section 5's ATYP.
const (
	AddrIPv4   = 0x01
	AddrDomain = 0x03
	AddrIPv6   = 0x04
)

// Reply codes are RFC 1928 section 6's REP values.
const (
	ReplySucceeded           = 0x00
	ReplyGeneralFailure      = 0x01
	ReplyNotAllowed          = 0x02 // connection not allowed by ruleset
	ReplyNetworkUnreachable  = 0x03
	ReplyHostUnreachable     = 0x04
	ReplyConnectionRefused   = 0x05
	ReplyTTLExpired          = 0x06
	ReplyCommandNotSupported = 0x07
	ReplyAddressNotSupported = 0x08
)

// Close reasons (CLOSE.Reason).
const (
	CloseNormal   = 0x00 // both ways done, or the endpoint closed its socket
	CloseProtocol = 0x01 // the peer broke a rule (window overrun, bad message)
	CloseReset    = 0x02 // this end's socket failed or was reset
	CloseShutdown = 0x03 // the tunnel is shutting down
)

// Addr is a host (an IPv4 or IPv6 literal, or a domain name) and a port.
type Addr struct {
	Host string
	Port uint16
}

// String is host:port, with an IPv6 host in brackets.
func (a Addr) String() string { return net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port))) }

// Open is OPEN (server → client), the first message of a stream
// instance: connect to Target.
type Open struct {
	Window uint32 // bytes the client may send before the server's first CREDIT
	Target Addr
}

// Reply is REPLY (client → server), the first message the client sends on
// an instance: the answer to OPEN, LISTEN or ATTACH.
type Reply struct {
	Code   uint8  // RFC 1928 REP: 0 succeeded
	Window uint32 // bytes the server may send before the client's first CREDIT (0 on failure)
	Bound  Addr   // the client's local address of the connection (or listener); zero on failure
}

// Data is DATA: stream bytes. Parse aliases Payload into its input.
type Data struct{ Payload []byte }

// Credit is CREDIT: the sender has written Increment more received bytes
// out, so its peer may send that many more.
type Credit struct{ Increment uint32 }

// EOF is EOF: the sender sends no more DATA (its socket's read side ended).
type EOF struct{}

// Close is CLOSE: the stream is over; the sender closes the instance next.
type Close struct{ Reason uint8 }

// Listen is LISTEN (server → client), the first message of a control
// instance: listen on Addr on the client's side.
type Listen struct{ Addr Addr }

// Accepted is ACCEPTED (client → server, on a LISTEN instance): connection
// ID came in from Peer.
type Accepted struct {
	ID   uint32
	Peer Addr
}

// Attach is ATTACH (server → client), the first message of an instance
// that carries accepted connection ID.
type Attach struct {
	ID     uint32
	Window uint32
}

// Message is any of the messages above.
type Message interface {
	// Type is the message's Type field.
	Type() Type
	// Append appends the whole message, header included, to b.
	Append(b []byte) ([]byte, error)
}

func (Open) Type() Type     { return TypeOpen }
func (Reply) Type() Type    { return TypeReply }
func (Data) Type() Type     { return TypeData }
func (Credit) Type() Type   { return TypeCredit }
func (EOF) Type() Type      { return TypeEOF }
func (Close) Type() Type    { return TypeClose }
func (Listen) Type() Type   { return TypeListen }
func (Accepted) Type() Type { return TypeAccepted }
func (Attach) Type() Type   { return TypeAttach }

// Error names the message and field a decoder or encoder rejected.
type Error struct {
	Message string // OPEN, REPLY, ... or "message" for the header
	Field   string
	Err     error
}

func (e *Error) Error() string {
	return "tunnel/wire: " + e.Message + "." + e.Field + ": " + e.Err.Error()
}
func (e *Error) Unwrap() error { return e.Err }

var (
	// ErrShort is wrapped by errors for input that ends inside a field.
	ErrShort = errors.New("truncated")
	// ErrTooLarge is wrapped by errors for a length over its ceiling.
	ErrTooLarge = errors.New("over the ceiling")
	// ErrInvalid is wrapped by errors for a value the field cannot take.
	ErrInvalid = errors.New("invalid value")
	// ErrTrailing is wrapped by errors for bytes after the last field.
	ErrTrailing = errors.New("bytes after the last field")
)

func errf(msg, field string, err error, format string, a ...any) error {
	if format != "" {
		err = fmt.Errorf("%w: "+format, append([]any{err}, a...)...)
	}
	return &Error{Message: msg, Field: field, Err: err}
}

// Framer is the dvc.Framer of the channel: given the bytes received so
// far it returns the length of the first whole message, 0 while more
// are needed, or an error for a Length out of range or an unknown Type
// (the backend then closes the instance).
func Framer(buf []byte) (int, error) {
	if len(buf) < 4 {
		return 0, nil
	}
	n := binary.LittleEndian.Uint32(buf)
	if n < 1 || n > MaxMessage-4 {
		return 0, errf("message", "Length", ErrTooLarge, "%d (want 1 to %d)", n, MaxMessage-4)
	}
	if len(buf) >= 5 {
		if _, ok := typeNames[Type(buf[4])]; !ok {
			return 0, errf("message", "Type", ErrInvalid, "0x%02x", buf[4])
		}
	}
	if len(buf) < 4+int(n) {
		return 0, nil
	}
	return 4 + int(n), nil
}

// Parse decodes one whole message (header included), as Framer delimits
// it or as a message-keeping backend delivers it. A Data's Payload
// aliases msg.
func Parse(msg []byte) (Message, error) {
	if len(msg) < HeaderLen {
		return nil, errf("message", "Length", ErrShort, "%d bytes (want at least %d)", len(msg), HeaderLen)
	}
	if len(msg) > MaxMessage {
		return nil, errf("message", "Length", ErrTooLarge, "%d bytes (want at most %d)", len(msg), MaxMessage)
	}
	if n := binary.LittleEndian.Uint32(msg); int(n) != len(msg)-4 {
		return nil, errf("message", "Length", ErrInvalid, "%d, but %d bytes follow it", n, len(msg)-4)
	}
	t := Type(msg[4])
	r := reader{b: msg[HeaderLen:], msg: t.String()}
	var m Message
	switch t {
	case TypeOpen:
		var o Open
		o.Window = r.u32("Window")
		o.Target = r.addr("Target")
		if r.err == nil && o.Window == 0 {
			r.fail("Window", ErrInvalid, "0 (want at least 1)")
		}
		m = o
	case TypeReply:
		var p Reply
		p.Code = r.u8("Code")
		p.Window = r.u32("Window")
		p.Bound = r.addr("Bound")
		if r.err == nil && p.Code == ReplySucceeded && p.Window == 0 {
			r.fail("Window", ErrInvalid, "0 in a success (want at least 1)")
		}
		m = p
	case TypeData:
		m = Data{Payload: r.rest()}
	case TypeCredit:
		c := Credit{Increment: r.u32("Increment")}
		if r.err == nil && c.Increment == 0 {
			r.fail("Increment", ErrInvalid, "0 (want at least 1)")
		}
		m = c
	case TypeEOF:
		m = EOF{}
	case TypeClose:
		m = Close{Reason: r.u8("Reason")}
	case TypeListen:
		m = Listen{Addr: r.addr("Addr")}
	case TypeAccepted:
		var a Accepted
		a.ID = r.u32("ID")
		a.Peer = r.addr("Peer")
		m = a
	case TypeAttach:
		var a Attach
		a.ID = r.u32("ID")
		a.Window = r.u32("Window")
		if r.err == nil && a.Window == 0 {
			r.fail("Window", ErrInvalid, "0 (want at least 1)")
		}
		m = a
	default:
		return nil, errf("message", "Type", ErrInvalid, "0x%02x", uint8(t))
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail("", ErrTrailing, "%d", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}

// reader threads an offset through a body and keeps the first error, so
// no field can be read past the end (after miekg/dns's unpack helpers).
type reader struct {
	b   []byte
	msg string
	err error
}

func (r *reader) fail(field string, err error, format string, a ...any) {
	if r.err == nil {
		if field == "" {
			field = "body"
		}
		r.err = errf(r.msg, field, err, format, a...)
	}
}

func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail(field, ErrShort, "%d bytes left (want %d)", len(r.b), n)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(field string) uint8 {
	if b := r.take(field, 1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if b := r.take(field, 2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if b := r.take(field, 4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) rest() []byte {
	v := r.b
	r.b = nil
	return v
}

// addr reads ATYP, the address and the port.
func (r *reader) addr(field string) Addr {
	var a Addr
	switch t := r.u8(field + ".Type"); {
	case r.err != nil:
	case t == AddrIPv4:
		if b := r.take(field+".Address", 4); b != nil {
			a.Host = netip.AddrFrom4([4]byte(b)).String()
		}
	case t == AddrIPv6:
		if b := r.take(field+".Address", 16); b != nil {
			a.Host = netip.AddrFrom16([16]byte(b)).String()
		}
	case t == AddrDomain:
		n := int(r.u8(field + ".Length"))
		if r.err == nil && n == 0 {
			r.fail(field+".Length", ErrInvalid, "0 (want 1 to %d)", MaxDomain)
		}
		if b := r.take(field+".Address", n); b != nil {
			a.Host = string(b)
			// A name that is an IP literal is that address (encoders
			// send it as one); a zone cannot be meant.
			if ip, err := netip.ParseAddr(a.Host); err == nil {
				if ip.Zone() != "" {
					r.fail(field+".Address", ErrInvalid, "%q: a scoped address", a.Host)
				}
				a.Host = ip.Unmap().String()
			}
		}
	default:
		r.fail(field+".Type", ErrInvalid, "0x%02x (want 1, 3 or 4)", t)
	}
	a.Port = r.u16(field + ".Port")
	return a
}

// appendAddr encodes a: an IP literal (an IPv4-mapped IPv6 one as IPv4)
// or a domain name of 1 to MaxDomain bytes. An empty Host is 0.0.0.0.
func appendAddr(b []byte, msg, field string, a Addr) ([]byte, error) {
	h := a.Host
	if h == "" {
		h = "0.0.0.0"
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Zone() != "" {
			return nil, errf(msg, field+".Address", ErrInvalid, "%q: a zone cannot be carried", h)
		}
		ip = ip.Unmap()
		if ip.Is4() {
			v := ip.As4()
			b = append(append(b, AddrIPv4), v[:]...)
		} else {
			v := ip.As16()
			b = append(append(b, AddrIPv6), v[:]...)
		}
	} else {
		if len(h) > MaxDomain {
			return nil, errf(msg, field+".Length", ErrTooLarge, "%d bytes (want at most %d)", len(h), MaxDomain)
		}
		b = append(append(b, AddrDomain, byte(len(h))), h...)
	}
	return binary.LittleEndian.AppendUint16(b, a.Port), nil
}

// header appends the Length (patched by finish) and Type.
func header(b []byte, t Type) ([]byte, int) {
	return append(b, 0, 0, 0, 0, byte(t)), len(b)
}

func finish(b []byte, start int) ([]byte, error) {
	n := len(b) - start
	if n > MaxMessage {
		return nil, errf(Type(b[start+4]).String(), "Length", ErrTooLarge, "%d bytes (want at most %d)", n, MaxMessage)
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(n-4))
	return b, nil
}

// Append encodes OPEN.
func (o Open) Append(b []byte) ([]byte, error) {
	if o.Window == 0 {
		return nil, errf("OPEN", "Window", ErrInvalid, "0 (want at least 1)")
	}
	b, s := header(b, TypeOpen)
	b = binary.LittleEndian.AppendUint32(b, o.Window)
	b, err := appendAddr(b, "OPEN", "Target", o.Target)
	if err != nil {
		return nil, err
	}
	return finish(b, s)
}

// Append encodes REPLY.
func (p Reply) Append(b []byte) ([]byte, error) {
	if p.Code == ReplySucceeded && p.Window == 0 {
		return nil, errf("REPLY", "Window", ErrInvalid, "0 in a success (want at least 1)")
	}
	b, s := header(b, TypeReply)
	b = append(b, p.Code)
	b = binary.LittleEndian.AppendUint32(b, p.Window)
	b, err := appendAddr(b, "REPLY", "Bound", p.Bound)
	if err != nil {
		return nil, err
	}
	return finish(b, s)
}

// PutDataHeader writes the header of a DATA message with an n-byte
// payload into b[:HeaderLen], for a sender that has the payload in place
// after it (no copy); b must be HeaderLen+n bytes.
func PutDataHeader(b []byte, n int) error {
	if n < 0 || n > MaxData || len(b) != HeaderLen+n {
		return errf("DATA", "Payload", ErrTooLarge, "%d bytes in a %d-byte message (want at most %d)", n, len(b), MaxData)
	}
	binary.LittleEndian.PutUint32(b, uint32(n+1))
	b[4] = byte(TypeData)
	return nil
}

// Append encodes DATA.
func (d Data) Append(b []byte) ([]byte, error) {
	if len(d.Payload) > MaxData {
		return nil, errf("DATA", "Payload", ErrTooLarge, "%d bytes (want at most %d)", len(d.Payload), MaxData)
	}
	b, s := header(b, TypeData)
	return finish(append(b, d.Payload...), s)
}

// Append encodes CREDIT.
func (c Credit) Append(b []byte) ([]byte, error) {
	if c.Increment == 0 {
		return nil, errf("CREDIT", "Increment", ErrInvalid, "0 (want at least 1)")
	}
	b, s := header(b, TypeCredit)
	return finish(binary.LittleEndian.AppendUint32(b, c.Increment), s)
}

// Append encodes EOF.
func (EOF) Append(b []byte) ([]byte, error) {
	b, s := header(b, TypeEOF)
	return finish(b, s)
}

// Append encodes CLOSE.
func (c Close) Append(b []byte) ([]byte, error) {
	b, s := header(b, TypeClose)
	return finish(append(b, c.Reason), s)
}

// Append encodes LISTEN.
func (l Listen) Append(b []byte) ([]byte, error) {
	b, s := header(b, TypeListen)
	b, err := appendAddr(b, "LISTEN", "Addr", l.Addr)
	if err != nil {
		return nil, err
	}
	return finish(b, s)
}

// Append encodes ACCEPTED.
func (a Accepted) Append(b []byte) ([]byte, error) {
	b, s := header(b, TypeAccepted)
	b = binary.LittleEndian.AppendUint32(b, a.ID)
	b, err := appendAddr(b, "ACCEPTED", "Peer", a.Peer)
	if err != nil {
		return nil, err
	}
	return finish(b, s)
}

// Append encodes ATTACH.
func (a Attach) Append(b []byte) ([]byte, error) {
	if a.Window == 0 {
		return nil, errf("ATTACH", "Window", ErrInvalid, "0 (want at least 1)")
	}
	b, s := header(b, TypeAttach)
	b = binary.LittleEndian.AppendUint32(b, a.ID)
	return finish(binary.LittleEndian.AppendUint32(b, a.Window), s)
}
