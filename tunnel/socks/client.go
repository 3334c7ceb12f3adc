package socks

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// Connect runs a client's side of the handshake on conn, for tests and
// benchmarks: it offers NO AUTHENTICATION REQUIRED, or USERNAME/PASSWORD
// when user is not empty, and asks to CONNECT to host:port (an IP literal
// goes as an address, anything else as a domain name). It returns the
// bound address of a Succeeded reply; any other reply is a *ReplyError.
// timeout bounds the whole handshake (zero: DefaultTimeout).
func Connect(conn net.Conn, host string, port uint16, user, password string, timeout time.Duration) (netip.AddrPort, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return netip.AddrPort{}, err
	}
	bound, err := connect(conn, host, port, user, password)
	if cerr := conn.SetDeadline(time.Time{}); err == nil {
		err = cerr
	}
	return bound, err
}

// ReplyError is a reply other than Succeeded, as Connect received it.
type ReplyError struct{ Reply Reply }

func (e *ReplyError) Error() string { return "socks: reply: " + e.Reply.String() }

func connect(conn net.Conn, host string, port uint16, user, password string) (netip.AddrPort, error) {
	var buf [MaxAuth]byte
	method := byte(MethodNoAuth)
	if user != "" {
		method = MethodUserPass
	}
	if _, err := conn.Write([]byte{Version, 1, method}); err != nil {
		return netip.AddrPort{}, err
	}
	sel, err := readFull(conn, buf[:2])
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("socks: method selection: %w", err)
	}
	if sel[0] != Version || sel[1] != method {
		return netip.AddrPort{}, fmt.Errorf("socks: method selection: server chose 0x%02x, not 0x%02x", sel[1], method)
	}
	if method == MethodUserPass {
		if len(user) > 255 || len(password) < 1 || len(password) > 255 {
			return netip.AddrPort{}, errors.New("socks: auth: user name and password must be 1-255 bytes")
		}
		b := append(buf[:0], authVersion, byte(len(user)))
		b = append(append(b, user...), byte(len(password)))
		if _, err := conn.Write(append(b, password...)); err != nil {
			return netip.AddrPort{}, err
		}
		st, err := readFull(conn, buf[:2])
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("socks: auth reply: %w", err)
		}
		if st[1] != 0 {
			return netip.AddrPort{}, fmt.Errorf("socks: auth reply: STATUS 0x%02x: refused", st[1])
		}
	}
	req, err := AppendRequest(buf[:0], host, port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if _, err := conn.Write(req); err != nil {
		return netip.AddrPort{}, err
	}
	b := buf[:0]
	for {
		code, bound, n, err := ParseReply(b)
		switch {
		case errors.Is(err, ErrShort):
			more, err := readFull(conn, buf[len(b):n])
			if err != nil {
				return netip.AddrPort{}, fmt.Errorf("socks: reply: %w", err)
			}
			b = buf[:len(b)+len(more)]
			continue
		case err != nil:
			return netip.AddrPort{}, err
		case code != Succeeded:
			return netip.AddrPort{}, &ReplyError{Reply: code}
		}
		return bound, nil
	}
}

func readFull(conn net.Conn, b []byte) ([]byte, error) {
	_, err := io.ReadFull(conn, b)
	return b, err
}
