package freerdp

import (
	"fmt"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// Reframe wraps l so that its handlers receive whole messages as f
// delimits them, whatever pieces the channel delivers. A client needs it
// when the server sits behind xrdp and does not write one message at a
// time the way backend/xrdp does: chansrv then merges messages written
// back to back and splits those over 32768 bytes (see backend/xrdp), and
// FreeRDP delivers what chansrv sent. maxMsg bounds what is buffered for
// one message; a framing error or a message over it closes the channel
// and is passed to the handler's Closed.
//
// (Reframe is not FreeRDP-specific; it lives here because the FreeRDP
// plugin is its only user so far.)
func Reframe(l dvc.Listener, f dvc.Framer, maxMsg int) dvc.Listener {
	return dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		h, err := l.Accept(ch)
		if err != nil || h == nil {
			return h, err
		}
		return &reframer{h: h, ch: ch, f: f, max: maxMsg}, nil
	})
}

type reframer struct {
	h   dvc.Handler
	ch  dvc.Channel
	f   dvc.Framer
	max int
	buf []byte
	err error // framing failed; the channel is being closed
}

func (r *reframer) Received(msg []byte) {
	if r.err != nil {
		return
	}
	p := msg
	if len(r.buf) > 0 {
		r.buf = append(r.buf, msg...)
		p = r.buf
	}
	for len(p) > 0 {
		n, err := r.f(p)
		switch {
		case err != nil:
			r.fail(fmt.Errorf("freerdp: channel %q: framing: %w", r.ch.Name(), err))
			return
		case n < 0 || n > r.max || (n == 0 && len(p) > r.max):
			r.fail(fmt.Errorf("freerdp: channel %q: message over %d bytes or bad length %d: %w", r.ch.Name(), r.max, n, dvc.ErrTooLarge))
			return
		case n == 0 || len(p) < n:
			r.keep(p)
			return
		}
		r.h.Received(p[:n])
		p = p[n:]
	}
	r.keep(nil)
}

// keep makes rest the buffered bytes. rest may alias msg (valid only
// during Received) or r.buf.
func (r *reframer) keep(rest []byte) {
	if len(rest) == 0 {
		r.buf = r.buf[:0]
		return
	}
	r.buf = append(r.buf[:0], rest...)
}

func (r *reframer) fail(err error) {
	r.err = err
	r.buf = nil
	r.ch.Close()
}

func (r *reframer) Closed(err error) {
	if r.err != nil {
		err = r.err
	} else if err == nil && len(r.buf) > 0 {
		err = fmt.Errorf("freerdp: channel %q closed %d bytes into a message", r.ch.Name(), len(r.buf))
	}
	r.h.Closed(err)
}
