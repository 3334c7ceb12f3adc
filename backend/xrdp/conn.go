package xrdp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// readChunk is how much room Read offers each read(): chansrv writes at
// most one client chunk (about 1600 bytes) at a time, but a burst may
// have queued many.
const readChunk = 64 << 10

// conn is one channel instance: the socket after a successful handshake.
type conn struct {
	nc    *net.UnixConn
	name  string
	id    uint32
	split bool

	closed   atomic.Bool
	done     chan struct{} // closed by Close
	closeErr error
	once     sync.Once

	rmu  sync.Mutex // serializes Read; guards ra and rerr
	ra   reassembler
	rerr error // sticky: what Read returns once the buffer is drained

	wsem   chan struct{} // one Write at a time (a channel: waiting for it honours ctx); guards werr and fenced
	werr   error         // sticky: a write failed part-way, the stream is unusable
	fenced bool          // messages carry the SCM_RIGHTS fence (Linux)

	dlmu sync.Mutex // orders deadline changes from context.AfterFunc
}

var _ dvc.Conn = (*conn)(nil)

func newConn(nc *net.UnixConn, name string, id uint32, f dvc.Framer, maxMsg int, split bool) *conn {
	return &conn{
		nc:     nc,
		name:   name,
		id:     id,
		split:  split,
		fenced: true,
		done:   make(chan struct{}),
		wsem:   make(chan struct{}, 1),
		ra:     reassembler{framer: f, max: maxMsg},
	}
}

func (c *conn) Name() string { return c.name }
func (c *conn) ID() uint32   { return c.id }

// Close closes the socket; chansrv then sends DYNVC_CLOSE to the client.
func (c *conn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		close(c.done)
		c.closeErr = c.nc.Close()
	})
	return nil
}

// interrupt makes a blocked socket call return when ctx is done, by
// moving its deadline into the past. The returned func undoes it; once it
// has returned, no deadline change from this ctx can happen any more (a
// late one would fail the next call, made with another context).
func (c *conn) interrupt(ctx context.Context, set func(time.Time) error) func() {
	if ctx.Done() == nil {
		return func() {}
	}
	active := true // guarded by c.dlmu
	stop := context.AfterFunc(ctx, func() {
		c.dlmu.Lock()
		if active {
			set(time.Unix(1, 0))
		}
		c.dlmu.Unlock()
	})
	return func() {
		if stop() {
			return // never ran
		}
		c.dlmu.Lock()
		active = false
		set(time.Time{})
		c.dlmu.Unlock()
	}
}

// Read returns the next whole message. See the package doc for how
// messages are recovered from the stream.
func (c *conn) Read(ctx context.Context) ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.closed.Load() {
			return nil, dvc.ErrClosed
		}
		msg, err := c.ra.next()
		if err != nil {
			c.rerr = err
			c.ra = reassembler{}
			c.Close()
			return nil, err
		}
		if msg != nil {
			return msg, nil
		}
		if c.rerr != nil {
			return nil, c.rerr
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		undo := c.interrupt(ctx, c.nc.SetReadDeadline)
		n, err := c.nc.Read(c.ra.space(readChunk))
		undo()
		c.ra.added(n)
		if err == nil {
			continue
		}
		switch {
		case c.closed.Load():
			return nil, dvc.ErrClosed
		case ctx.Err() != nil:
			if n > 0 {
				continue // deliver what arrived; the next pass returns ctx.Err()
			}
			return nil, ctx.Err()
		case errors.Is(err, io.EOF):
			// chansrv closes the socket only when it goes away or drops
			// the session: xrdp does not pass on a client's DYNVC_CLOSE.
			c.rerr = fmt.Errorf("xrdp: channel %q: chansrv closed the socket: %w", c.name, dvc.ErrConnectionLost)
			if b := c.ra.buffered(); b > 0 {
				c.rerr = fmt.Errorf("%w (%d bytes of an incomplete message dropped)", c.rerr, b)
				c.ra = reassembler{}
			}
		default:
			c.rerr = fmt.Errorf("xrdp: channel %q: %w: %w", c.name, dvc.ErrConnectionLost, err)
		}
	}
}

// Write sends msg with one sendmsg() (fenced on Linux, see the package
// doc) once chansrv has read everything written before, so that chansrv
// forwards it as one DVC message. Messages over MaxWrite fail with
// dvc.ErrTooLarge unless Options.SplitLarge is set. xrdp cannot carry an
// empty message: Write drops it and returns nil. A Write that fails or
// is cancelled after part of a message went out closes the channel, since
// the peer could no longer find message boundaries.
func (c *conn) Write(ctx context.Context, msg []byte) error {
	if len(msg) > MaxWrite && !c.split {
		return fmt.Errorf("xrdp: channel %q: %d-byte message: chansrv forwards at most %d bytes as one message: %w",
			c.name, len(msg), MaxWrite, dvc.ErrTooLarge)
	}
	// A Write behind another one blocked on a stalled chansrv waits no
	// longer than its context allows.
	select {
	case c.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return dvc.ErrClosed
	}
	defer func() { <-c.wsem }()
	total, sent := len(msg), 0
	// broken records that the stream now holds part of a message.
	broken := func(err error) error {
		c.werr = fmt.Errorf("xrdp: channel %q: write stopped after %d of %d bytes: %w: %w", c.name, sent, total, dvc.ErrConnectionLost, err)
		c.Close()
		return c.werr
	}
	for len(msg) > 0 {
		if c.closed.Load() {
			return dvc.ErrClosed
		}
		if c.werr != nil {
			return c.werr
		}
		if err := ctx.Err(); err != nil {
			if sent > 0 {
				return broken(err)
			}
			return err
		}
		p := msg[:min(len(msg), MaxWrite)]
		if err := waitDrained(ctx, c.nc, c.done); err != nil {
			if c.closed.Load() {
				return dvc.ErrClosed
			}
			if sent > 0 {
				return broken(err)
			}
			return err
		}
		undo := c.interrupt(ctx, c.nc.SetWriteDeadline)
		n, err := writeMessage(c.nc, p, &c.fenced)
		undo()
		sent += n
		if err != nil {
			if c.closed.Load() {
				return dvc.ErrClosed
			}
			if sent == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			return broken(err)
		}
		msg = msg[len(p):]
	}
	return nil
}
