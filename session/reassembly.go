package session

import (
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
	if r.b != nil && r.b.take(p.Length) {
		size = p.Length
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
		nb := make([]byte, len(r.buf), min(int64(r.want), int64(max(2*cap(r.buf), need))))
		copy(nb, r.buf)
		r.buf = nb
	}
	r.buf = append(r.buf, d...)
	if uint32(len(r.buf)) < r.want {
		return nil, false, nil
	}
	msg = r.buf
	r.buf, r.active, r.want = nil, false, 0
	r.release()
	return msg, true, nil
}

// release gives the up-front reservation back to the budget.
func (r *reassembly) release() {
	if n := r.reserved.Swap(0); n != 0 {
		r.b.give(n)
	}
}

func (r *reassembly) String() string {
	return fmt.Sprintf("reassembly{active: %v, %d of %d bytes}", r.active, len(r.buf), r.want)
}
