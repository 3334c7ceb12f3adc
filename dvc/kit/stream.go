package kit

import (
	"fmt"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// Stream recovers messages from a byte stream with a dvc.Framer: what a
// backend needs when its carrier keeps no message boundaries (xrdp's
// xrdpapi socket; a FreeRDP client whose server sits behind xrdp, where
// chansrv merges messages written back to back and splits those over
// 32768 bytes). It does no I/O: the backend adds what it reads and asks
// for the next whole message. The zero value with Framer and Max set is
// ready; without a Framer every call of Next returns all buffered bytes
// as one message.
type Stream struct {
	Framer dvc.Framer
	Max    int // the longest message; longer, or that many bytes buffered with no length known, fails

	buf  []byte
	off  int // start of the unconsumed bytes in buf
	want int // length of the message in progress, once the framer knows it
}

// Space returns free bytes at the end of the buffer, at least min long,
// compacting or growing the buffer as needed; fill some and call Added.
func (s *Stream) Space(min int) []byte {
	if s.off > 0 && (s.off == len(s.buf) || cap(s.buf)-len(s.buf) < min) {
		n := copy(s.buf, s.buf[s.off:])
		s.buf = s.buf[:n]
		s.off = 0
	}
	if cap(s.buf)-len(s.buf) < min {
		nb := make([]byte, len(s.buf), len(s.buf)+max(min, len(s.buf)))
		copy(nb, s.buf)
		s.buf = nb
	}
	return s.buf[len(s.buf):cap(s.buf)]
}

// Added records that n bytes were written into the slice Space returned.
func (s *Stream) Added(n int) { s.buf = s.buf[:len(s.buf)+n] }

// Write adds a copy of p.
func (s *Stream) Write(p []byte) {
	if len(p) > 0 {
		s.Added(copy(s.Space(len(p)), p))
	}
}

// Buffered is the number of bytes added and not yet returned by Next.
func (s *Stream) Buffered() int { return len(s.buf) - s.off }

// Reset drops everything buffered.
func (s *Stream) Reset() { s.buf, s.off, s.want = s.buf[:0], 0, 0 }

// Next returns the next whole message, or nil if more bytes are needed.
// The message aliases the buffer: it is valid until the next call of
// Space, Write, Next or Reset. Errors are final: a stream cannot be
// resynchronized.
func (s *Stream) Next() ([]byte, error) {
	avail := s.buf[s.off:]
	if len(avail) == 0 {
		return nil, nil
	}
	if s.Framer == nil {
		s.off = len(s.buf)
		return avail, nil
	}
	if s.want == 0 {
		n, err := s.frame(avail)
		if err != nil || n == 0 {
			return nil, err
		}
		s.want = n
	}
	if len(avail) < s.want {
		return nil, nil
	}
	msg := avail[:s.want:s.want]
	s.off += s.want
	s.want = 0
	return msg, nil
}

// frame asks the Framer for the length of the message p starts with, and
// checks it against Max: 0 means more bytes are needed.
func (s *Stream) frame(p []byte) (int, error) {
	n, err := s.Framer(p)
	switch {
	case err != nil:
		return 0, fmt.Errorf("framing the received stream: %w", err)
	case n < 0:
		return 0, fmt.Errorf("framer returned a negative length %d", n)
	case n == 0 && len(p) > s.Max:
		return 0, fmt.Errorf("%d bytes buffered and the framer still needs more: %w", len(p), dvc.ErrTooLarge)
	case n > s.Max:
		return 0, fmt.Errorf("message of %d bytes is over the %d-byte ceiling: %w", n, s.Max, dvc.ErrTooLarge)
	}
	return n, nil
}

// Reframe wraps l so that its handlers receive whole messages as f
// delimits them, whatever pieces the channel delivers: for a client
// whose server writes a byte stream (behind xrdp, a server that does not
// write one message at a time the way backend/xrdp does). maxMsg bounds
// what is buffered for one message; a framing error or a message over it
// closes the channel and is passed to the handler's Closed.
func Reframe(l dvc.Listener, f dvc.Framer, maxMsg int) dvc.Listener {
	return dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		h, err := l.Accept(ch)
		if err != nil || h == nil {
			return h, err
		}
		return &reframer{h: h, ch: ch, s: Stream{Framer: f, Max: maxMsg}}, nil
	})
}

type reframer struct {
	h   dvc.Handler
	ch  dvc.Channel
	s   Stream
	err error // framing failed; the channel is being closed
}

func (r *reframer) Received(msg []byte) {
	if r.err != nil {
		return
	}
	p := msg
	if r.s.Buffered() == 0 {
		// Nothing held back: deliver whole messages straight from msg.
		for len(p) > 0 {
			n, err := r.s.frame(p)
			if err != nil {
				r.fail(err)
				return
			}
			if n == 0 || n > len(p) {
				break
			}
			r.h.Received(p[:n:n])
			p = p[n:]
		}
	}
	r.s.Write(p)
	for r.err == nil {
		m, err := r.s.Next()
		if err != nil {
			r.fail(err)
			return
		}
		if m == nil {
			return
		}
		r.h.Received(m)
	}
}

func (r *reframer) fail(err error) {
	r.err = fmt.Errorf("channel %q: %w", r.ch.Name(), err)
	r.s = Stream{}
	r.ch.Close()
}

func (r *reframer) Closed(err error) {
	if r.err != nil {
		err = r.err
	} else if err == nil && r.s.Buffered() > 0 {
		err = fmt.Errorf("channel %q closed %d bytes into a message", r.ch.Name(), r.s.Buffered())
	}
	r.h.Closed(err)
}
