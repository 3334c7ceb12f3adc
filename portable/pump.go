package portable

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/session"
)

// A server's reading, shared between Run's goroutine and the channels'
// readers (session.Pump). Run's goroutine reads the stream as long as
// anyone may need it; when a Conn.Read waits and nothing else does, Run's
// goroutine lends the reading out and parks, and the next Read that finds
// its inbox empty reads the socket and feeds the manager itself. The
// message it waits for then goes from the socket to its caller with no
// goroutine hand-off (before: the netpoller woke Run's goroutine, which
// put the message in the inbox and woke the reader on another thread).
//
// The reading goes back to Run's goroutine whenever it may be needed
// while no reader is reading: another reader is asleep in its inbox, a
// delivery would have to wait for room (a reader must honour its own
// context), bytes are left in the read buffer, the stream failed, Open or
// Wait waits for the peer (Kick), the connection is closing; and, for
// anything else, when it has stayed lent and unused for lendIdle.
type pump struct {
	*link // the session.Carrier
	c     *conn
	srv   *session.Server
	back  chan struct{} // wakes Run's goroutine parked in lend (one send per lend)
	timer *time.Timer   // lend's idle check, Run's goroutine only

	mu       sync.Mutex
	state    int             // running, lent or busy
	gen      uint64          // counts lent → busy, for the idle check
	sleepers int             // readers asleep in their inboxes (session.Pump)
	want     bool            // a reader found the reading taken since the last lend
	pend     bool            // with back: Run's goroutine must Resume first
	cause    error           // with back: the stream ended under a reader
	cur      context.Context // the busy reader's
	cut      bool            // Interrupt set the read deadline while busy

	// One context.AfterFunc per reader context, kept while readers come
	// with the same one (a Read loop usually does): it cuts the socket
	// read short only while that context's reader is reading.
	regCtx  context.Context
	regStop func() bool
	done    bool // release was called
}

// release drops the reader's AfterFunc (see link.release).
func (p *pump) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	if p.regStop != nil {
		p.regStop()
		p.regStop, p.regCtx = nil, nil
	}
}

const (
	running = iota // Run's goroutine reads
	lent           // nobody reads; a Read may take it
	busy           // a Read reads
)

// lendIdle is how long the reading may stay lent with nobody using it
// before Run's goroutine takes it back: the bound on how late data nobody
// is waiting for (a peer's close, its hang-up) is noticed. Lent and used,
// it costs Run's goroutine one wake-up per lendIdle.
const lendIdle = 10 * time.Millisecond

func newPump(c *conn) *pump {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &pump{link: c.l, c: c, back: make(chan struct{}, 1), timer: t}
}

// tryLend, after a PDU was handled on Run's goroutine, lends the
// reading if a reader wanted it, none is asleep and nothing is buffered,
// all in one hold of mu: a reader going to sleep in between would be left
// waiting with nobody reading.
func (p *pump) tryLend() (seen uint64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.want || p.sleepers != 0 || p.br.Buffered() != 0 {
		return 0, false
	}
	p.state, p.want = lent, false
	return p.gen, true
}

// lend parks Run's goroutine with the reading lent (tryLend), until it
// comes back. A non-nil error is why the stream ended.
func (p *pump) lend(seen uint64) error {
	p.timer.Reset(lendIdle)
	defer p.timer.Stop()
	closing, dead := p.c.closing, p.c.m.Done()
	for {
		select {
		case <-p.back:
			p.mu.Lock()
			pend, cause := p.pend, p.cause
			p.pend, p.cause = false, nil
			p.mu.Unlock()
			if cause != nil {
				return cause
			}
			if pend {
				if err := p.srv.Resume(); err != nil {
					return p.c.protocolErr(err)
				}
			}
			return nil
		case <-p.timer.C:
			p.mu.Lock()
			if p.state == lent && p.gen == seen {
				p.state = running
				p.mu.Unlock()
				return nil
			}
			seen = p.gen
			p.mu.Unlock()
			p.timer.Reset(lendIdle)
		case <-closing:
			closing = nil
			if p.reclaim() {
				return nil // the next read sees the closed socket
			}
			// busy: its reader sees the closed socket and sends back.
		case <-dead:
			dead = nil
			if p.reclaim() {
				return nil
			}
		}
	}
}

// reclaim takes back reading that is lent and unused.
func (p *pump) reclaim() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != lent || p.done {
		return false
	}
	p.state = running
	return true
}

// Kick (session.Pump) has Run's goroutine read again if the reading is
// lent and unused.
func (p *pump) Kick() {
	if p.reclaim() {
		p.back <- struct{}{}
	}
}

// Interrupt (session.Pump): a channel was closed here; a lent read in
// progress is cut short (the read deadline), so that its reader sees the
// close even if the peer sends nothing more.
func (p *pump) Interrupt() {
	p.mu.Lock()
	if p.state == busy {
		p.cut = true
		p.c.nc.SetReadDeadline(longAgo)
	}
	p.mu.Unlock()
}

// Awake (session.Pump) ends a sleeper's count.
func (p *pump) Awake() {
	p.mu.Lock()
	p.sleepers--
	p.mu.Unlock()
}

// Pump (session.Pump) reads and feeds the manager on the caller's
// goroutine until in is ready, if the reading is lent.
func (p *pump) Pump(ctx context.Context, in *dvc.Inbox) bool {
	if ctx.Err() != nil {
		return true // the caller returns ctx.Err()
	}
	p.mu.Lock()
	if p.state != lent {
		p.sleepers++
		p.want = true
		p.mu.Unlock()
		return false
	}
	p.state = busy
	p.gen++
	p.cur = ctx
	if ctx.Done() != nil && ctx != p.regCtx {
		if p.regStop != nil {
			p.regStop()
		}
		p.regCtx = ctx
		p.regStop = context.AfterFunc(ctx, func() {
			p.mu.Lock()
			if p.state == busy && p.cur == ctx {
				p.c.nc.SetReadDeadline(longAgo) // wakes the blocked read below
			}
			p.mu.Unlock()
		})
	}
	p.mu.Unlock()

	back, pend := false, false
	var cause error
	for !in.Ready() {
		pdu, err := p.next()
		if err != nil {
			back = true
			p.mu.Lock()
			cut := p.cut
			p.mu.Unlock()
			if !((ctx.Err() != nil || cut) && errors.Is(err, os.ErrDeadlineExceeded)) {
				cause = p.c.streamErr(err)
			} // else: cut short by ctx or Interrupt; next left the stream intact
			break
		}
		blocked, err := p.srv.ReceiveNoWait(pdu)
		if err != nil {
			back, cause = true, p.c.protocolErr(err)
			break
		}
		if blocked {
			back, pend = true, true
			break
		}
	}
	p.mu.Lock()
	if !back && (p.sleepers > 0 || p.br.Buffered() > 0) {
		back = true // someone else needs the stream read now
	}
	if back {
		p.state, p.pend, p.cause = running, pend, cause
	} else {
		p.state = lent
	}
	p.cur = nil
	if ctx.Err() != nil || p.cut {
		// The AfterFunc or Interrupt may have set the deadline (both run
		// under mu, so they have finished, and will not set it again
		// now that the state is no longer busy): undo it before anyone
		// else reads.
		p.c.nc.SetReadDeadline(time.Time{})
		p.cut = false
	}
	p.mu.Unlock()
	if back {
		p.back <- struct{}{}
	}
	return true
}
