package bridge

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// outbox is a client connection's queue of channel messages for its
// socket, bounded in bytes: Received puts, the writer goroutine takes
// everything queued at once and writes it with one writev.
type outbox struct {
	mu     sync.Mutex
	msgs   net.Buffers
	bytes  int
	max    int
	closed bool  // no more puts: the writer drains and ends
	err    error // failed: puts fail, the writer ends at once
	ready  chan struct{}
	room   chan struct{}
}

func newOutbox(max int) *outbox {
	return &outbox{max: max, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// put queues a copy of msg, waiting at most timeout for room. A message
// larger than the bound is let into an empty queue, so that it cannot
// wait for ever.
func (o *outbox) put(msg []byte, timeout time.Duration) error {
	var timer *time.Timer
	for {
		o.mu.Lock()
		switch {
		case o.err != nil:
			o.mu.Unlock()
			return o.err
		case o.closed:
			o.mu.Unlock()
			return nil
		case o.bytes == 0 || o.bytes+len(msg) <= o.max:
			if len(msg) > 0 {
				o.msgs = append(o.msgs, append([]byte(nil), msg...))
				o.bytes += len(msg)
			}
			o.mu.Unlock()
			wake(o.ready)
			return nil
		}
		queued := o.bytes
		o.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(timeout)
			defer timer.Stop()
		}
		select {
		case <-o.room:
		case <-timer.C:
			return fmt.Errorf("bridge: the local socket's program left %d bytes unread for %v, with room for no more (queue bound %d bytes)", queued, timeout, o.max)
		}
	}
}

// take waits for queued messages and returns them all; ok is false once
// the queue is closed and drained, or failed. Their bytes count against
// the bound until done releases them.
func (o *outbox) take() (bufs net.Buffers, ok bool) {
	for {
		o.mu.Lock()
		if o.err != nil {
			o.mu.Unlock()
			return nil, false
		}
		if len(o.msgs) > 0 {
			bufs = o.msgs
			o.msgs = nil
			o.mu.Unlock()
			return bufs, true
		}
		if o.closed {
			o.mu.Unlock()
			return nil, false
		}
		o.mu.Unlock()
		<-o.ready
	}
}

// done releases n bytes taken and written to the socket.
func (o *outbox) done(n int) {
	o.mu.Lock()
	o.bytes -= n
	o.mu.Unlock()
	wake(o.room)
}

func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	wake(o.ready)
}

func (o *outbox) fail(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.err = err
	}
	o.mu.Unlock()
	wake(o.ready)
	wake(o.room)
}

// ended reports whether the queue was closed or failed.
func (o *outbox) ended() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed || o.err != nil
}
