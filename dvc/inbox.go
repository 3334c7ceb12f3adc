package dvc

import (
	"context"
	"io"
	"sync"
)

// DefaultInboxBytes is how many bytes of received, unread messages an Inbox
// holds before Put blocks. DRDYNVC has no per-channel flow control
// (MS-RDPEDYC 1.3.3.2), so a full inbox stalls the whole carrier, as a slow
// reader stalls a real RDP connection; the ceiling keeps a flooding peer from
// growing memory without bound.
const DefaultInboxBytes = 16 << 20

// Inbox is a FIFO of whole messages between a backend's receive loop (Put)
// and a blocking reader (Read). Backends use it to give server programs the
// blocking Conn shape; the zero value is not usable, call NewInbox.
type Inbox struct {
	mu     sync.Mutex
	q      [][]byte
	head   int
	bytes  int
	limit  int
	pool   *Pool // shared with the connection's other inboxes; may be nil
	done   bool
	err    error         // returned once the queue drains after Close
	wake   chan struct{} // a message arrived or the inbox closed
	room   chan struct{} // bytes were taken out
	closed chan struct{}
}

// NewInbox returns an inbox that holds up to limit bytes (DefaultInboxBytes
// if limit <= 0). A single message larger than limit is still accepted when
// the inbox is empty, so the limit never deadlocks a reader.
func NewInbox(limit int) *Inbox {
	if limit <= 0 {
		limit = DefaultInboxBytes
	}
	return &Inbox{
		limit:  limit,
		wake:   make(chan struct{}, 1),
		room:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// NewInboxPool is NewInbox for an inbox that also counts against pool,
// which its connection's other inboxes share: Put then also waits while
// the pool is over its limit, so the unread bytes of all of them stay
// bounded, not only each one's. A message larger than the pool's limit is
// accepted only when the whole pool is empty.
func NewInboxPool(limit int, pool *Pool) *Inbox {
	in := NewInbox(limit)
	in.pool = pool
	return in
}

// Pool is a byte allowance shared by several inboxes (NewInboxPool).
type Pool struct {
	mu      sync.Mutex
	used    int
	limit   int
	room    chan struct{} // closed when bytes are given back; nil when nobody waits
	waiters int           // Puts waiting for room
}

// NewPool returns a pool of limit bytes (DefaultInboxBytes if limit <= 0).
func NewPool(limit int) *Pool {
	if limit <= 0 {
		limit = DefaultInboxBytes
	}
	return &Pool{limit: limit}
}

// Used returns the bytes currently taken from the pool.
func (p *Pool) Used() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}

// Waiters returns how many Puts are waiting for the pool to have room: a
// connection's receiving side stalled by the pool shows here.
func (p *Pool) Waiters() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiters
}

func (p *Pool) wait(d int) {
	p.mu.Lock()
	p.waiters += d
	p.mu.Unlock()
}

// take takes n bytes if they fit, else returns a channel closed when some
// come back.
func (p *Pool) take(n int) (ok bool, wait <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used == 0 || p.used+n <= p.limit {
		p.used += n
		return true, nil
	}
	if p.room == nil {
		p.room = make(chan struct{})
	}
	return false, p.room
}

func (p *Pool) give(n int) {
	if n == 0 {
		return
	}
	p.mu.Lock()
	p.used -= n
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	p.mu.Unlock()
}

// Put appends msg, which the inbox now owns. It blocks while the inbox is
// over its limit, until ctx is done or the inbox is closed; it returns
// ErrClosed if the inbox was closed.
func (in *Inbox) Put(ctx context.Context, msg []byte) error {
	for {
		in.mu.Lock()
		if in.done {
			in.mu.Unlock()
			return ErrClosed
		}
		var poolRoom <-chan struct{}
		if in.bytes == 0 || in.bytes+len(msg) <= in.limit {
			ok := true
			if in.pool != nil {
				ok, poolRoom = in.pool.take(len(msg))
			}
			if ok {
				in.q = append(in.q, msg)
				in.bytes += len(msg)
				in.mu.Unlock()
				signal(in.wake)
				return nil
			}
		}
		in.mu.Unlock()
		if poolRoom != nil {
			in.pool.wait(1)
		}
		select {
		case <-in.room:
		case <-poolRoom: // nil unless the pool is what is full
		case <-in.closed:
		case <-ctx.Done():
		}
		if poolRoom != nil {
			in.pool.wait(-1)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// TryPut is Put without the wait: it appends msg (which the inbox then
// owns) and returns true if the inbox and its pool have room now, false
// if Put would wait; ErrClosed if the inbox was closed.
func (in *Inbox) TryPut(msg []byte) (bool, error) {
	in.mu.Lock()
	if in.done {
		in.mu.Unlock()
		return false, ErrClosed
	}
	if in.bytes != 0 && in.bytes+len(msg) > in.limit {
		in.mu.Unlock()
		return false, nil
	}
	if in.pool != nil {
		if ok, _ := in.pool.take(len(msg)); !ok {
			in.mu.Unlock()
			return false, nil
		}
	}
	in.q = append(in.q, msg)
	in.bytes += len(msg)
	in.mu.Unlock()
	signal(in.wake)
	return true, nil
}

// Ready reports whether Read would return without waiting: a message is
// queued, or the inbox is closed.
func (in *Inbox) Ready() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.head < len(in.q) || in.done
}

// Read returns the next message. After CloseWithError it drains what is
// queued, then returns the close error (io.EOF for nil).
func (in *Inbox) Read(ctx context.Context) ([]byte, error) {
	for {
		in.mu.Lock()
		if in.head < len(in.q) {
			m := in.q[in.head]
			in.q[in.head] = nil
			in.head++
			switch {
			case in.head == len(in.q):
				in.q, in.head = in.q[:0], 0
			case in.head >= 32 && in.head*2 >= len(in.q):
				// Under steady back-pressure the queue never empties;
				// slide it down so the slice does not grow forever.
				n := copy(in.q, in.q[in.head:])
				clear(in.q[n:])
				in.q, in.head = in.q[:n], 0
			}
			in.bytes -= len(m)
			if in.pool != nil {
				in.pool.give(len(m))
			}
			more := in.head < len(in.q)
			in.mu.Unlock()
			signal(in.room)
			if more {
				signal(in.wake) // another reader may be waiting
			}
			return m, nil
		}
		if in.done {
			err := in.err
			in.mu.Unlock()
			return nil, err
		}
		in.mu.Unlock()
		select {
		case <-in.wake:
		case <-in.closed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// CloseWithError ends the inbox: queued messages can still be read, then
// Read returns err, or io.EOF if err is nil. Only the first call counts.
func (in *Inbox) CloseWithError(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.done {
		return
	}
	if err == nil {
		err = io.EOF
	}
	in.done, in.err = true, err
	close(in.closed)
}

// Discard ends the inbox and drops what is queued: Read returns err at once,
// even if the inbox was closed before with another error.
func (in *Inbox) Discard(err error) {
	in.CloseWithError(err)
	in.mu.Lock()
	if err == nil {
		err = io.EOF
	}
	in.err = err
	for i := range in.q {
		in.q[i] = nil
	}
	if in.pool != nil {
		in.pool.give(in.bytes)
	}
	in.q, in.head, in.bytes = nil, 0, 0
	in.mu.Unlock()
}

// Closed is closed when the inbox is.
func (in *Inbox) Closed() <-chan struct{} { return in.closed }
