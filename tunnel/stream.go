package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// Defaults and ceilings of both sides.
const (
	// DefaultWindow is each end's receive window: the bytes its peer may
	// send before it returns CREDIT, and so the most a stream buffers.
	DefaultWindow = 256 << 10
	// MaxWindow is the largest Window a Server or Client accepts in its
	// configuration.
	MaxWindow = 16 << 20
	// DefaultMaxStreams bounds the streams open at once on one tunnel.
	DefaultMaxStreams = 1024
	// DefaultMaxData is the largest DATA payload sent: a whole DATA
	// message is then 32,768 bytes, what xrdp's chansrv forwards as one
	// DVC message (backend/xrdp's MaxWrite).
	DefaultMaxData = 32768 - wire.HeaderLen
	// DefaultWriteTimeout bounds each message written to the channel: a
	// carrier stalled that long fails the stream.
	DefaultWriteTimeout = 30 * time.Second
	// closeTimeout bounds the CLOSE message written when a stream ends.
	closeTimeout = 2 * time.Second
)

var (
	// ErrWindowOverrun is wrapped by the error of a stream whose peer sent
	// more DATA than the window allowed.
	ErrWindowOverrun = errors.New("tunnel: peer overran the stream's window")
	// ErrReset is wrapped by the error of a stream its peer ended before
	// both sides had sent EOF.
	ErrReset = errors.New("tunnel: stream reset by peer")
	// ErrProtocol is wrapped by the error of a stream whose peer sent a
	// message the protocol does not allow there.
	ErrProtocol = errors.New("tunnel: protocol error")
)

// Stream is one TCP stream through the tunnel, carried by one channel
// instance: a net.Conn with CloseWrite. Writes wait for the peer's credit;
// reads return what the peer sent, and each byte read lets the peer send
// one more. Its methods are safe for concurrent use.
type Stream struct {
	ch           dvc.Channel
	local        net.Addr // this side's view of the stream (see LocalAddr)
	remote       net.Addr
	maxData      int
	writeTimeout time.Duration
	onEnd        func() // called once when the stream ends (the owner's count)
	// owner is done when the Server or Client the stream belongs to
	// closes: Join then drops its socket even if the stream ended in
	// order and is still writing out what arrived.
	owner context.Context

	ctx    context.Context // cancelled when the stream ends: fails writes in flight
	cancel context.CancelFunc

	sendMu sync.Mutex // one Write (or CloseWrite) at a time, so their DATA do not interleave
	chMu   sync.Mutex // one ch.Write at a time

	mu sync.Mutex
	// Receive side.
	rq       []chunk // DATA payloads not read yet
	rbytes   int     // bytes in rq
	window   int     // this end's receive window
	held     int     // bytes received and not credited back: at most window
	unacked  int     // bytes read and not credited back yet
	peerEOF  bool
	readable chan struct{} // signalled when rq grows or the stream ends
	// Send side.
	credit     int64 // bytes this end may still send
	peerWindow int64 // the window the peer granted: credit never exceeds it
	sentEOF    bool
	writable   chan struct{} // signalled when credit grows or the stream ends
	ended      bool          // the instance is gone, or Close was called
	endErr     error         // why, for writes; reads drain rq first
	closedHere bool          // Close was called on this end
	closing    bool          // Close or abort has taken on closing the instance
	// peerCloses: after its CLOSE, this end leaves closing the instance
	// to the peer, for up to closeTimeout (lateClose), unless shutting
	// down. The client side sets it: FreeRDP 2.11 frees a channel in the
	// plugin's close (a zero-length write) on the plugin's thread while
	// its own thread may be handling the server's DYNVC_CLOSE of the same
	// channel, and a close from both ends at once then stalls its whole
	// DVC manager. The server closes an instance as soon as it has the
	// CLOSE, so the client's own close is only the fallback.
	peerCloses bool
	lateClose  *time.Timer
	gone       bool // the instance closed (peerGone)

	rdl, wdl deadline
}

// newStream builds the stream of an instance whose handshake is done.
// peerWindow is the credit the peer granted, window this end's.
func newStream(ch dvc.Channel, local, remote net.Addr, window int, peerWindow uint32, maxData int, writeTimeout time.Duration, onEnd func()) *Stream {
	s := &Stream{
		ch: ch, local: local, remote: remote, maxData: maxData, writeTimeout: writeTimeout, onEnd: onEnd, owner: context.Background(),
		window: window, credit: int64(peerWindow), peerWindow: int64(peerWindow),
		readable: make(chan struct{}, 1), writable: make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.rdl.init()
	s.wdl.init()
	return s
}

// chunk is a run of received bytes held for reading, in buf, a pooled
// buffer of one of bufSizes' sizes, given back once b has been read out.
type chunk struct {
	b   []byte
	buf *[]byte
}

// bufSizes are the sizes of the buffers received bytes are kept in. The
// bytes of DATA payloads form one stream, so deliver fills the last
// buffer's spare room before it takes another, and sizes a new one by
// what is left of the payload: every buffer but the last is full, so what
// a stream holds is its bytes, the part of its head buffer already read
// and the last one's spare room (each under 64 KiB), whatever the sizes
// of the DATA a peer sends (TestHeldMemory). A message is never kept as
// it came: a Handler's is valid only during the call, and keeping a
// conn.Read message whole would hold its allocation for a few bytes.
var bufSizes = [...]int{4 << 10, 16 << 10, 64 << 10}

var bufPools [len(bufSizes)]sync.Pool

func init() {
	for i, n := range bufSizes {
		bufPools[i].New = func() any { b := make([]byte, 0, n); return &b }
	}
}

// getBuf returns an empty pooled buffer for about n bytes.
func getBuf(n int) *[]byte {
	i := 0
	for i < len(bufSizes)-1 && bufSizes[i] < n {
		i++
	}
	return bufPools[i].Get().(*[]byte)
}

// release gives the buffer back. Never after Close, which drops the queue
// while WriteTo may still be writing from its head.
func (c chunk) release() {
	for i, n := range bufSizes {
		if c.buf != nil && cap(*c.buf) == n {
			*c.buf = (*c.buf)[:0]
			bufPools[i].Put(c.buf)
			return
		}
	}
}

// appendLocked queues p: into the last chunk's spare room, then into new
// buffers. The last chunk's b may be WriteTo's head, written from outside
// the lock: appending within its capacity writes only bytes past the ones
// WriteTo holds, and WriteTo takes what it wrote off the current b.
func (s *Stream) appendLocked(p []byte) {
	if k := len(s.rq) - 1; k >= 0 {
		last := &s.rq[k]
		n := min(len(p), cap(last.b)-len(last.b))
		last.b = append(last.b, p[:n]...)
		p = p[n:]
	}
	for len(p) > 0 {
		bp := getBuf(len(p))
		n := min(len(p), cap(*bp))
		s.rq = append(s.rq, chunk{b: append(*bp, p[:n]...), buf: bp})
		p = p[n:]
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// deliver takes one message received on the instance after the
// handshake. It never blocks (a client-side Handler calls it from
// Received); a non-nil error is a protocol error, for which the caller
// aborts the stream. DATA payloads are copied: m need not outlive the
// call.
func (s *Stream) deliver(m wire.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil // in flight when this end closed: dropped
	}
	switch m := m.(type) {
	case wire.Data:
		if s.peerEOF {
			return fmt.Errorf("%w: DATA after EOF", ErrProtocol)
		}
		if s.held+len(m.Payload) > s.window {
			return fmt.Errorf("%w: %d bytes held, %d more received, window %d", ErrWindowOverrun, s.held, len(m.Payload), s.window)
		}
		if len(m.Payload) == 0 {
			return nil
		}
		s.appendLocked(m.Payload)
		s.rbytes += len(m.Payload)
		s.held += len(m.Payload)
		signal(s.readable)
	case wire.Credit:
		s.credit += int64(m.Increment)
		if s.credit > s.peerWindow {
			// The peer returned bytes it was never sent.
			return fmt.Errorf("%w: credit of %d bytes, more than the peer's window of %d", ErrProtocol, s.credit, s.peerWindow)
		}
		signal(s.writable)
	case wire.EOF:
		s.peerEOF = true
		signal(s.readable)
	case wire.Close:
		s.endLocked(closeError(m.Reason, s.peerEOF))
	default:
		return fmt.Errorf("%w: %v on an open stream", ErrProtocol, m.Type())
	}
	return nil
}

func closeError(reason uint8, peerEOF bool) error {
	switch {
	case reason == wire.CloseNormal && peerEOF:
		return io.EOF
	case reason == wire.CloseProtocol:
		return fmt.Errorf("%w (the peer says this end broke the protocol)", ErrReset)
	}
	return ErrReset
}

// peerGone ends the stream because the instance closed (err nil: an
// orderly close by the peer).
func (s *Stream) peerGone(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone = true
	if s.lateClose != nil {
		s.lateClose.Stop()
	}
	if err == nil {
		if s.peerEOF {
			err = io.EOF
		} else {
			err = ErrReset
		}
	}
	s.endLocked(err)
}

// endLocked marks the stream over: writes fail with err, reads drain
// what arrived and then return io.EOF (if the peer sent EOF) or err.
func (s *Stream) endLocked(err error) {
	if s.ended {
		return
	}
	s.ended, s.endErr = true, err
	s.cancel()
	signal(s.readable)
	signal(s.writable)
	if s.onEnd != nil {
		go s.onEnd() // it may take locks of the owner that calls into s
	}
}

// writeMsg writes one message to the instance, bounded by the stream's
// life, the write deadline and writeTimeout.
func (s *Stream) writeMsg(m []byte) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.writeTimeout)
	defer cancel()
	if d := s.wdl.get(); !d.IsZero() {
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, d)
		defer c2()
	}
	s.chMu.Lock()
	defer s.chMu.Unlock()
	return s.ch.Write(ctx, m)
}

// Read reads what the peer sent. It returns io.EOF once the peer sent EOF
// (or ended the stream in order) and everything before it has been read.
func (s *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		s.mu.Lock()
		if s.rbytes > 0 {
			n := 0
			for n < len(p) && len(s.rq) > 0 {
				c := copy(p[n:], s.rq[0].b)
				n += c
				if c == len(s.rq[0].b) {
					s.rq[0].release()
					s.rq[0] = chunk{}
					s.rq = s.rq[1:]
				} else {
					s.rq[0].b = s.rq[0].b[c:]
				}
			}
			if len(s.rq) == 0 {
				s.rq = nil
			}
			s.rbytes -= n
			inc := s.consumedLocked(n)
			s.mu.Unlock()
			s.sendCredit(inc)
			return n, nil
		}
		switch {
		case s.closedHere:
			s.mu.Unlock()
			return 0, net.ErrClosed
		case s.peerEOF:
			s.mu.Unlock()
			return 0, io.EOF
		case s.ended:
			err := s.endErr
			s.mu.Unlock()
			return 0, err
		}
		s.mu.Unlock()
		select {
		case <-s.readable:
		case <-s.ctx.Done(): // ended: every waiter wakes, not only the one signalled
		case <-s.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// consumedLocked counts n bytes written out and returns the CREDIT to
// send, if it is time: when a quarter of the window has been read, so a
// sender always has at least three quarters of it and CREDIT costs one
// small message per quarter window.
func (s *Stream) consumedLocked(n int) int {
	s.unacked += n
	// After the peer's EOF no DATA comes, so no credit is owed.
	if s.ended || s.peerEOF || s.unacked < max(s.window/4, 1) {
		return 0
	}
	inc := s.unacked
	s.unacked = 0
	s.held -= inc
	return inc
}

func (s *Stream) sendCredit(inc int) {
	if inc == 0 {
		return
	}
	m, _ := wire.Credit{Increment: uint32(inc)}.Append(nil)
	if err := s.writeMsg(m); err != nil && errors.Is(err, context.DeadlineExceeded) {
		// A carrier stalled for WriteTimeout. Other failures are the
		// instance closing, which ends the stream by its own path once
		// what arrived before the close has been read.
		s.abort(fmt.Errorf("tunnel: send CREDIT: %w", err), wire.CloseReset)
	}
}

// WriteTo writes what the peer sends to w until EOF, without a buffer of
// its own (io.Copy uses it): Join's pump to its socket. It must not run
// beside a Read of the same stream.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		s.mu.Lock()
		if s.rbytes > 0 {
			head := s.rq[0]
			s.mu.Unlock()
			// Only this goroutine takes from rq, so head stays at its head.
			n, err := w.Write(head.b)
			total += int64(n)
			s.mu.Lock()
			if s.closedHere { // Close dropped rq meanwhile
				s.mu.Unlock()
				return total, net.ErrClosed
			}
			// deliver may have appended to the head meanwhile: its
			// current b, not the one written from, is what is left.
			if n == len(s.rq[0].b) {
				s.rq[0].release()
				s.rq[0] = chunk{}
				s.rq = s.rq[1:]
				if len(s.rq) == 0 {
					s.rq = nil
				}
			} else {
				s.rq[0].b = s.rq[0].b[n:]
			}
			s.rbytes -= n
			inc := s.consumedLocked(n)
			s.mu.Unlock()
			s.sendCredit(inc)
			if err != nil {
				return total, err
			}
			continue
		}
		var err error
		done := true
		switch {
		case s.closedHere:
			err = net.ErrClosed
		case s.peerEOF:
		case s.ended:
			if s.endErr != io.EOF {
				err = s.endErr
			}
		default:
			done = false
		}
		s.mu.Unlock()
		if done {
			return total, err
		}
		select {
		case <-s.readable:
		case <-s.ctx.Done(): // ended: every waiter wakes, not only the one signalled
		case <-s.rdl.wait():
			return total, os.ErrDeadlineExceeded
		}
	}
}

// Write sends p, waiting for credit as needed, in DATA messages of at most
// the stream's MaxData bytes.
func (s *Stream) Write(p []byte) (int, error) { return s.send(p, nil) }

// writeFramed is Write of buf[wire.HeaderLen:] without a copy: the first
// HeaderLen bytes of buf are room for the first DATA header, and each
// later message's header overwrites the last bytes of the one before,
// already sent (a channel keeps nothing of a message after Write).
func (s *Stream) writeFramed(buf []byte) (int, error) { return s.send(buf[wire.HeaderLen:], buf) }

// send is Write, or writeFramed when framed is p with its header room.
func (s *Stream) send(p, framed []byte) (int, error) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	written := 0
	var msg []byte
	for written < len(p) {
		s.mu.Lock()
		switch {
		case s.closedHere:
			s.mu.Unlock()
			return written, net.ErrClosed
		case s.sentEOF:
			s.mu.Unlock()
			return written, fmt.Errorf("tunnel: write after CloseWrite: %w", net.ErrClosed)
		case s.ended:
			err := s.endErr
			if err == io.EOF {
				err = ErrReset // the peer closed in order, but this end still writes
			}
			s.mu.Unlock()
			return written, err
		}
		if s.credit <= 0 {
			s.mu.Unlock()
			select {
			case <-s.writable:
			case <-s.ctx.Done():
			case <-s.wdl.wait():
				return written, os.ErrDeadlineExceeded
			}
			continue
		}
		n := min(len(p)-written, s.maxData, int(min(s.credit, int64(s.maxData))))
		s.credit -= int64(n)
		s.mu.Unlock()
		var err error
		if framed != nil {
			msg = framed[written : written+wire.HeaderLen+n]
			err = wire.PutDataHeader(msg, n)
		} else {
			msg, err = wire.Data{Payload: p[written : written+n]}.Append(msg[:0])
		}
		if err == nil {
			err = s.writeMsg(msg)
		}
		if err != nil {
			if d := s.wdl.get(); !d.IsZero() && !time.Now().Before(d) {
				// The deadline interrupted the message: the stream cannot
				// go on with half a write's worth unknown, so it ends.
				s.abort(os.ErrDeadlineExceeded, wire.CloseReset)
				return written, os.ErrDeadlineExceeded
			}
			s.abort(fmt.Errorf("tunnel: send DATA: %w", err), wire.CloseReset)
			return written, s.writeErr()
		}
		written += n
	}
	return written, nil
}

func (s *Stream) writeErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closedHere {
		return net.ErrClosed
	}
	return s.endErr
}

// CloseWrite sends EOF: the peer's socket sees the end of its input, and
// this end may still read (TCP's half-close).
func (s *Stream) CloseWrite() error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	if s.sentEOF || s.ended {
		s.mu.Unlock()
		return nil
	}
	s.sentEOF = true
	s.mu.Unlock()
	m, _ := wire.EOF{}.Append(nil)
	if err := s.writeMsg(m); err != nil {
		s.abort(fmt.Errorf("tunnel: send EOF: %w", err), wire.CloseReset)
		return err
	}
	return nil
}

// Close ends the stream: it sends CLOSE and closes the instance. Data not
// yet read is dropped.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closedHere {
		s.mu.Unlock()
		return nil
	}
	s.closedHere = true
	reason := uint8(wire.CloseNormal)
	if !(s.peerEOF && s.sentEOF) {
		reason = wire.CloseReset
	}
	already, closing := s.ended, s.closing
	s.closing = true
	s.endLocked(net.ErrClosed)
	s.rq, s.rbytes = nil, 0
	s.mu.Unlock()
	if closing {
		return nil // abort is sending CLOSE, then closes the instance
	}
	if !already {
		s.sendClose(reason)
	}
	return s.closeInstance(false)
}

// closeInstance closes the instance after this end's CLOSE: at once, or
// with peerCloses (and not now) closeTimeout later, unless the peer has
// closed it by then.
func (s *Stream) closeInstance(now bool) error {
	if now || !s.peerCloses {
		return s.ch.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gone && s.lateClose == nil {
		s.lateClose = time.AfterFunc(closeTimeout, func() { s.ch.Close() })
	}
	return nil
}

// sendClose writes CLOSE, bounded by closeTimeout (the stream's context is
// already cancelled when it runs).
func (s *Stream) sendClose(reason uint8) {
	m, _ := wire.Close{Reason: reason}.Append(nil)
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	s.chMu.Lock()
	defer s.chMu.Unlock()
	s.ch.Write(ctx, m) // best effort: the instance closes next either way
}

// abort ends the stream for err, telling the peer why, and closes the
// instance. It may run on a Handler callback's goroutine: the writes go
// on a goroutine of their own.
func (s *Stream) abort(err error, reason uint8) {
	s.mu.Lock()
	if s.ended || s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.endLocked(err)
	s.mu.Unlock()
	go func() {
		s.sendClose(reason)
		s.closeInstance(reason == wire.CloseShutdown)
	}()
}

// LocalAddr is this end's address of the stream: on the server side, the
// address the client's socket is bound to (REPLY's Bound); on the client
// side, the client's socket's own.
func (s *Stream) LocalAddr() net.Addr { return s.local }

// RemoteAddr is the other end: the target on the server side.
func (s *Stream) RemoteAddr() net.Addr { return s.remote }

// ChannelID is the ID of the channel instance carrying the stream.
func (s *Stream) ChannelID() uint32 { return s.ch.ID() }

// SetDeadline sets both deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	s.rdl.set(t)
	s.wdl.set(t)
	return nil
}

// SetReadDeadline sets the read deadline.
func (s *Stream) SetReadDeadline(t time.Time) error { s.rdl.set(t); return nil }

// SetWriteDeadline sets the write deadline. A deadline that interrupts a
// message being written ends the stream.
func (s *Stream) SetWriteDeadline(t time.Time) error { s.wdl.set(t); return nil }

// Addr is a net.Addr for a wire address: host (an IP literal or a name)
// and port, network "tcp".
type Addr struct{ wire.Addr }

// Network is "tcp".
func (Addr) Network() string { return "tcp" }

// deadline is a settable deadline with a channel closed when it passes
// (after net.Pipe's pipeDeadline).
type deadline struct {
	mu     sync.Mutex
	t      time.Time
	timer  *time.Timer
	cancel chan struct{}
}

func (d *deadline) init() { d.cancel = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for it to close the channel
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	d.t = t
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		c := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(c) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

func (d *deadline) get() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.t
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
