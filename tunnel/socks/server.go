package socks

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// DefaultTimeout bounds a whole handshake when Config.Timeout is zero: a
// client that connects and says nothing must not hold a connection
// forever.
const DefaultTimeout = 10 * time.Second

// Config is the server's side of a handshake.
type Config struct {
	// Users, if not empty, requires RFC 1929 username/password
	// authentication with one of these user → password pairs; nil or
	// empty offers only NO AUTHENTICATION REQUIRED.
	Users map[string]string
	// Timeout bounds the whole handshake, from the greeting to the
	// request; zero means DefaultTimeout.
	Timeout time.Duration
}

// Handshake runs the server's side of a SOCKS5 handshake on conn: method
// negotiation, authentication if cfg.Users asks for it, and the request,
// which it returns. It reads exactly the handshake's bytes, so whatever
// the client sends next is still in conn.
//
// On success the caller dials Request's Host and Port and answers with
// WriteReply: Succeeded, or ReplyFor(the dial error). On an error
// Handshake has already sent the client what the protocol asks for (no
// acceptable method, authentication failure, or a reply of
// CommandNotSupported, AddrTypeNotSupported or GeneralFailure) when the
// connection still worked; the caller only closes conn. Errors name the
// message and the field ("socks: request: ATYP 0x05 unknown").
//
// Handshake sets conn's deadline for the handshake and clears it before
// returning.
func Handshake(conn net.Conn, cfg Config) (Request, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return Request{}, fmt.Errorf("socks: greeting: %w", err)
	}
	r, err := handshake(conn, cfg)
	if cerr := conn.SetDeadline(time.Time{}); err == nil && cerr != nil {
		err = fmt.Errorf("socks: request: %w", cerr)
	}
	return r, err
}

func handshake(conn net.Conn, cfg Config) (Request, error) {
	var buf [MaxAuth]byte // the largest of the three messages

	g, err := readMsg(conn, buf[:0], "greeting", ParseGreeting)
	if err != nil {
		return Request{}, err
	}
	method := byte(MethodNoAuth)
	if len(cfg.Users) > 0 {
		method = MethodUserPass
	}
	if !g.Offers(method) {
		_, _ = conn.Write(AppendMethodSelection(buf[:0], MethodNoAcceptable))
		return Request{}, errorf("greeting", 0, "METHODS % x do not include 0x%02x", g.Methods, method)
	}
	if _, err := conn.Write(AppendMethodSelection(buf[:0], method)); err != nil {
		return Request{}, fmt.Errorf("socks: method selection: %w", err)
	}

	if method == MethodUserPass {
		a, err := readMsg(conn, buf[:0], "auth", ParseAuth)
		if err != nil {
			return Request{}, err
		}
		ok := checkUser(cfg.Users, a)
		if _, err := conn.Write(AppendAuthReply(buf[:0], ok)); err != nil {
			return Request{}, fmt.Errorf("socks: auth reply: %w", err)
		}
		if !ok {
			// Never the password: the caller logs this.
			return Request{}, errorf("auth", 0, "user %q: wrong user name or password", a.User)
		}
	}

	r, err := readMsg(conn, buf[:0], "request", ParseRequest)
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			_, _ = conn.Write(AppendReply(buf[:0], se.Reply, netip.AddrPort{}))
		}
		return Request{}, err
	}
	return r, nil
}

// checkUser compares the password in constant time, so that its timing
// does not tell a guesser how many leading bytes were right.
func checkUser(users map[string]string, a Auth) bool {
	want, known := users[a.User]
	if !known {
		want = a.Password + "x" // compare anyway, and fail
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(a.Password)) == 1 && known
}

// readMsg reads one message into buf with parse, reading only as far as
// parse says the message goes.
func readMsg[T any](conn net.Conn, buf []byte, msg string, parse func([]byte) (T, int, error)) (T, error) {
	for {
		v, n, err := parse(buf)
		if !errors.Is(err, ErrShort) {
			return v, err
		}
		if n > cap(buf) {
			// Cannot happen: every message fits MaxAuth.
			var zero T
			return zero, errorf(msg, GeneralFailure, "longer than %d bytes", cap(buf))
		}
		got, err := io.ReadFull(conn, buf[len(buf):n])
		buf = buf[:len(buf)+got]
		if err != nil {
			var zero T
			if errors.Is(err, io.ErrUnexpectedEOF) || (errors.Is(err, io.EOF) && len(buf) > 0) {
				return zero, errorf(msg, 0, "connection closed after %d bytes", len(buf))
			}
			return zero, fmt.Errorf("socks: %s: %w", msg, err)
		}
	}
}

// WriteReply sends a reply (RFC 1928 section 6) with code and the bound
// address, which may be the zero AddrPort (sent as 0.0.0.0:0): a tunnel's
// connection leaves from the far side, whose address the client has no use
// for.
func WriteReply(w io.Writer, code Reply, bound netip.AddrPort) error {
	var buf [MaxReply]byte
	_, err := w.Write(AppendReply(buf[:0], code, bound))
	return err
}
