package session

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// Client-side delivery to a Handler, with as few goroutine hand-offs as the
// contract allows.
//
// Each instance starts with a delivery goroutine that reads its inbox and
// calls the Handler, so a slow handler delays only its own channel until
// its inbox fills (docs/design.md). Once the handler has shown itself quick
// — promoteAfter calls in a row each returning within inlineBudget — and
// its inbox is empty, the goroutine exits and messages are delivered on the
// receiving goroutine itself (Receive), saving one cross-thread wake-up per
// message, which is most of a round trip's cost on loopback. A message that
// arrives while anything is queued, or while a goroutine is delivering,
// is queued, so calls stay serialized and in order. An inline call that
// takes longer than inlineBudget sends the instance back to its goroutine
// until it has been quick promoteAfter times again.
//
// The limit: while an inline Received runs, the receiving goroutine (and so
// every channel of the connection) waits for it. A handler that was quick
// promoteAfter times and then blocks delays the whole connection for that
// one call; one that never returns stalls it, as a full inbox would.
const (
	inlineBudget = 200 * time.Microsecond
	promoteAfter = 8
)

// delivery is one client instance's Handler and how it is being fed.
// Guarded by mu.
type delivery struct {
	mu     sync.Mutex
	h      dvc.Handler
	worker bool // a delivery goroutine is running
	inline bool // an inline Received is running on the receiving goroutine
	queued int  // messages put in the inbox and not yet taken by the worker
	quick  int  // consecutive quick calls
	ended  bool // the inbox was closed: Closed is due
}

// startWorker starts the delivery goroutine. Called with d.mu held.
func (c *Client) startWorker(ch *channel) {
	ch.d.worker = true
	c.wg.Add(1)
	go c.work(ch)
}

// work delivers queued messages, then Closed, or exits once the instance
// may be fed inline.
func (c *Client) work(ch *channel) {
	defer c.wg.Done()
	d := &ch.d
	for {
		d.mu.Lock()
		if d.queued == 0 && !d.ended && d.quick >= promoteAfter {
			d.worker = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		m, err := ch.in.Read(context.Background())
		if err != nil {
			if err == io.EOF || errors.Is(err, dvc.ErrClosed) {
				err = nil
			}
			d.h.Closed(err)
			return
		}
		d.mu.Lock()
		d.queued--
		d.mu.Unlock()
		t := time.Now()
		d.h.Received(m)
		quick := time.Since(t) <= inlineBudget
		d.mu.Lock()
		if quick {
			d.quick++
		} else {
			d.quick = 0
		}
		d.mu.Unlock()
	}
}

// deliverClient hands msg to ch's Handler: inline when nothing is queued
// and no goroutine is delivering, else through the inbox. It blocks while
// the inbox is full: DRDYNVC has no other flow control.
func (c *Client) deliverClient(ch *channel, msg []byte) error {
	d := &ch.d
	d.mu.Lock()
	if d.h != nil && !d.worker && !d.inline && !d.ended && d.queued == 0 && d.quick >= promoteAfter {
		d.inline = true
		d.mu.Unlock()
		t := time.Now()
		d.h.Received(msg)
		slow := time.Since(t) > inlineBudget
		d.mu.Lock()
		d.inline = false
		if slow {
			d.quick = 0 // the next message goes through the goroutine
		}
		if d.ended && !d.worker {
			c.startWorker(ch) // it reads the closed inbox and calls Closed
		}
		d.mu.Unlock()
		return nil
	}
	d.queued++
	if d.h != nil && !d.worker && !d.inline {
		c.startWorker(ch)
	}
	d.mu.Unlock()
	err := ch.in.Put(context.Background(), msg)
	if err != nil {
		d.mu.Lock()
		d.queued--
		d.mu.Unlock()
		if err != dvc.ErrClosed {
			return err
		}
	}
	return nil // a channel closed meanwhile drops the message
}

// endClient runs after ch's inbox was closed: Closed is due, from the
// worker (running, or started now) once no inline call is in progress.
func (c *Client) endClient(ch *channel) {
	d := &ch.d
	d.mu.Lock()
	d.ended = true
	if d.h != nil && !d.worker && !d.inline {
		c.startWorker(ch)
	}
	d.mu.Unlock()
}
