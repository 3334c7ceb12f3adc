package bridge

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Defaults of Server and Client.
const (
	// DefaultTimeout bounds every wait on a peer: the dial of a client's
	// socket, a server's Open (waiting for an RDP client included), and
	// each write to a socket or a channel. A peer that takes longer ends
	// that bridge connection.
	DefaultTimeout = 10 * time.Second
	// DefaultQueueBytes bounds what a client queues for its socket, whose
	// program reads slower than the channel delivers. It holds at least
	// one message of the largest size.
	DefaultQueueBytes = 4 << 20
	// DefaultMaxConns bounds a server's bridge connections at once;
	// connections beyond it are closed as they come.
	DefaultMaxConns = 1024
	// DefaultClientMaxConns bounds a client's bridge connections at
	// once, each a dial of the local program and a queue of up to
	// QueueBytes: a server opening instance after instance reaches at
	// most 64 connections and 256 MiB of queues with the defaults.
	// Instances beyond it are refused.
	DefaultClientMaxConns = 64
)

// errHalf is what readMessages returns when the local program shut down
// its write side (or closed) between messages: the orderly end.
var errHalf = errors.New("bridge: the local socket's peer ended its side")

// readMessages reads the socket and calls send with each channel message,
// until the socket ends. send must not keep the slice. An end between
// messages returns errHalf; anything else is a failure (a Message
// framing header over MaxMessage, an end inside a message, a read or a
// send error).
func readMessages(c io.Reader, f Framing, send func([]byte) error) error {
	if f == Stream {
		buf := make([]byte, MaxChunk)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if serr := send(buf[:n]); serr != nil {
					return serr
				}
			}
			if errors.Is(err, io.EOF) {
				return errHalf
			}
			if err != nil {
				return err
			}
		}
	}
	buf := make([]byte, HeaderLen, HeaderLen+4096)
	for {
		if _, err := io.ReadFull(c, buf[:HeaderLen]); err != nil {
			if errors.Is(err, io.EOF) {
				return errHalf
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return errors.New("bridge: the local socket ended inside a message header")
			}
			return err
		}
		n, _, err := ParseHeader(buf)
		if err != nil {
			return fmt.Errorf("%w, from the local socket", err)
		}
		if cap(buf) < HeaderLen+n {
			nb := make([]byte, HeaderLen, HeaderLen+n)
			copy(nb, buf[:HeaderLen])
			buf = nb
		}
		buf = buf[:HeaderLen+n]
		if _, err := io.ReadFull(c, buf[HeaderLen:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("bridge: the local socket ended inside a %d-byte message", n)
			}
			return err
		}
		if err := send(buf); err != nil {
			return err
		}
	}
}

// writeSocket writes bufs whole to c (consuming them, as net.Buffers
// does), calling progress with each count written. A write fails only
// when the program reads nothing for timeout: each bit of progress
// renews the deadline, so a slow reader is slow, not failed.
func writeSocket(c net.Conn, bufs net.Buffers, timeout time.Duration, progress func(int)) error {
	for len(bufs) > 0 {
		c.SetWriteDeadline(time.Now().Add(timeout))
		n, err := bufs.WriteTo(c)
		if n > 0 && progress != nil {
			progress(int(n))
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && n > 0:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("bridge: the local socket's program read nothing for %v: %w", timeout, err)
		}
		return err
	}
	return nil
}
