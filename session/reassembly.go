package session

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/rdpdvc/rdpdvc/drdynvc"
)

// firstAlloc is where a reassembly buffer starts once the connection's
// up-front budget is spent; it then doubles with the data received, so a
// peer announcing large messages on many channels costs about what it
// sends.
const firstAlloc = 2 << 10

// budget is a connection's allowance of reassembly bytes allocated whole
// when DYNVC_DATA_FIRST announces them (Config.ReassemblyBudget).
type budget struct {
	limit int64
	used  atomic.Int64
}

// take reserves n bytes if they fit and reports whether they did.
func (b *budget) take(n uint32) bool {
	if b.used.Add(int64(n)) <= b.limit {
		return true
	}
	b.used.Add(-int64(n))
	return false
}

func (b *budget) give(n uint32) { b.used.Add(-int64(n)) }

// take64 and give64 are take and give for the held bytes, whose
// increments are buffer growths.
func (b *budget) take64(n int64) bool {
	if b.used.Add(n) <= b.limit {
		return true
	}
	b.used.Add(-n)
	return false
}

func (b *budget) give64(n int64) { b.used.Add(-n) }

// errHeld is what first and data return when a message's buffer would
// take the connection past Config.MaxHeldBytes: the caller closes the
// channel (not the connection).
var errHeld = errors.New("the messages being reassembled would pass the connection's Config.MaxHeldBytes")

// reassembly is one channel's message in progress: MS-RDPEDYC 3.1.5.2.3,
// a DYNVC_DATA_FIRST announcing Length, then DYNVC_DATA until that many
// bytes have come. Its methods return the *ProtocolError that 3.1.5.2.4
// makes fatal for out-of-sequence or overrunning data. first and data are
// called from the receiving goroutine only; release may be called from
// any (a channel closed by its owner gives its reservation back).
type reassembly struct {
	active   bool
	want     uint32
	buf      []byte
	b        *budget
	reserved atomic.Uint32 // bytes of b held by buf
	// h is the connection's hard cap on reassembly bytes; held is what
	// buf counts against it, or -1 once release has run (the channel is
	// gone, and a growth racing with it must not count).
	h    *budget
	held atomic.Int64
}

// hold counts n more bytes of buffer against h, reporting whether they
// fit.
func (r *reassembly) hold(n int64) bool {
	if r.h == nil {
		return true
	}
	if !r.h.take64(n) {
		return false
	}
	for {
		cur := r.held.Load()
		if cur < 0 {
			r.h.give64(n) // released meanwhile: nobody will give it back
			return true
		}
		if r.held.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// unhold gives back what buf counted against h, the message being
// complete; the reassembly goes on with the next one.
func (r *reassembly) unhold() {
	for {
		cur := r.held.Load()
		if cur <= 0 {
			return
		}
		if r.held.CompareAndSwap(cur, 0) {
			r.h.give64(cur)
			return
		}
	}
}

// first starts a message from p (whose Length the caller has checked
// against its ceiling). It returns the whole message and done when p
// carries all of it.
func (r *reassembly) first(p drdynvc.DataFirst) (msg []byte, done bool, err error) {
	if r.active {
		return nil, false, protoErr("DYNVC_DATA_FIRST", "channel %d: DATA_FIRST while a message of %d bytes is still being reassembled (3.1.5.2.4: out of sequence)", p.ChannelID, r.want)
	}
	if uint32(len(p.Data)) > p.Length {
		return nil, false, protoErr("DYNVC_DATA_FIRST", "channel %d: %d bytes of data exceed Length %d", p.ChannelID, len(p.Data), p.Length)
	}
	if uint32(len(p.Data)) == p.Length {
		return append([]byte(nil), p.Data...), true, nil
	}
	r.active, r.want = true, p.Length
	// Allocate the whole message at once while the connection's budget
	// allows; past it, start small and grow with what arrives, so
	// announcing costs a peer nothing.
	size := min(p.Length, max(uint32(len(p.Data)), firstAlloc))
	whole := false
	if r.b != nil && r.b.take(p.Length) {
		size, whole = p.Length, true
	}
	if !r.hold(int64(size)) {
		if whole {
			r.b.give(p.Length)
		}
		r.active, r.want = false, 0
		return nil, false, fmt.Errorf("%w (DATA_FIRST.Length %d)", errHeld, p.Length)
	}
	if whole {
		r.reserved.Store(p.Length)
	}
	r.buf = append(make([]byte, 0, size), p.Data...)
	return nil, false, nil
}

// data adds one DYNVC_DATA's bytes. With no message in progress d is a
// whole message (3.1.5.2.2) and is returned as a copy; otherwise the
// message is returned once complete. done says a message is returned (an
// empty message is a nil slice).
func (r *reassembly) data(id uint32, d []byte) (msg []byte, done bool, err error) {
	if !r.active {
		return append([]byte(nil), d...), true, nil
	}
	if uint64(len(r.buf))+uint64(len(d)) > uint64(r.want) {
		return nil, false, protoErr("DYNVC_DATA", "channel %d: %d bytes overrun the %d announced by DATA_FIRST.Length", id, len(r.buf)+len(d), r.want)
	}
	if need := len(r.buf) + len(d); need > cap(r.buf) {
		// Double, up to the announced Length. append alone grows large
		// slices by about 1.25x, which copied a 1 MiB message some five
		// times over and was 40% of the receive side's CPU.
		nc := min(int64(r.want), int64(max(2*cap(r.buf), need)))
		if !r.hold(nc - int64(cap(r.buf))) {
			return nil, false, fmt.Errorf("%w (%d of DATA_FIRST.Length %d received)", errHeld, len(r.buf), r.want)
		}
		nb := make([]byte, len(r.buf), nc)
		copy(nb, r.buf)
		r.buf = nb
	}
	r.buf = append(r.buf, d...)
	if uint32(len(r.buf)) < r.want {
		return nil, false, nil
	}
	msg = r.buf
	r.buf, r.active, r.want = nil, false, 0
	r.giveReserved()
	r.unhold()
	return msg, true, nil
}

func (r *reassembly) giveReserved() {
	if n := r.reserved.Swap(0); n != 0 {
		r.b.give(n)
	}
}

// release gives the up-front reservation and the held bytes back, for
// good: the channel is gone.
func (r *reassembly) release() {
	r.giveReserved()
	if n := r.held.Swap(-1); n > 0 {
		r.h.give64(n)
	}
}

func (r *reassembly) String() string {
	return fmt.Sprintf("reassembly{active: %v, %d of %d bytes}", r.active, len(r.buf), r.want)
}
