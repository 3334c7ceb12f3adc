package xrdp

import (
	"fmt"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// reassembler recovers messages from the xrdpapi byte stream with a
// dvc.Framer. It does no I/O: the conn appends what it reads and asks for
// the next whole message.
type reassembler struct {
	framer dvc.Framer
	max    int
	buf    []byte
	off    int // start of the unconsumed bytes in buf
	want   int // length of the message in progress, once the framer knows it
}

// space returns a slice of free bytes at the end of the buffer, at least
// min long, compacting or growing the buffer as needed.
func (r *reassembler) space(min int) []byte {
	if r.off > 0 && (r.off == len(r.buf) || cap(r.buf)-len(r.buf) < min) {
		n := copy(r.buf, r.buf[r.off:])
		r.buf = r.buf[:n]
		r.off = 0
	}
	if cap(r.buf)-len(r.buf) < min {
		nb := make([]byte, len(r.buf), len(r.buf)+max(min, len(r.buf)))
		copy(nb, r.buf)
		r.buf = nb
	}
	return r.buf[len(r.buf):cap(r.buf)]
}

// added records that n bytes were written into the slice space returned.
func (r *reassembler) added(n int) { r.buf = r.buf[:len(r.buf)+n] }

// buffered is the number of bytes received and not yet returned.
func (r *reassembler) buffered() int { return len(r.buf) - r.off }

// next returns the next whole message (a copy the caller owns), or nil if
// more bytes are needed. Without a framer every buffered byte is one
// message. Errors are final: the stream cannot be resynchronized.
func (r *reassembler) next() ([]byte, error) {
	avail := r.buf[r.off:]
	if len(avail) == 0 {
		return nil, nil
	}
	if r.framer == nil {
		msg := append([]byte(nil), avail...)
		r.off = len(r.buf)
		return msg, nil
	}
	if r.want == 0 {
		n, err := r.framer(avail)
		if err != nil {
			return nil, fmt.Errorf("xrdp: framing the received stream: %w", err)
		}
		if n < 0 {
			return nil, fmt.Errorf("xrdp: framer returned a negative length %d", n)
		}
		if n == 0 {
			if len(avail) > r.max {
				return nil, fmt.Errorf("xrdp: %d bytes buffered and the framer still needs more: %w", len(avail), dvc.ErrTooLarge)
			}
			return nil, nil
		}
		if n > r.max {
			return nil, fmt.Errorf("xrdp: message of %d bytes is over the %d-byte ceiling: %w", n, r.max, dvc.ErrTooLarge)
		}
		r.want = n
	}
	if len(avail) < r.want {
		return nil, nil
	}
	msg := append([]byte(nil), avail[:r.want]...)
	r.off += r.want
	r.want = 0
	return msg, nil
}
