package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/lograte"
)

// core is the driver both managers share around their machine: it owns
// the carrier and the send path, the inboxes and their pool, the control
// PDU queue and its writer goroutine, and the mutex that serializes every
// call into the machine. It calls the machine, then acts on the output
// with the mutex released: control PDUs are queued, messages are put into
// inboxes (which may block: DRDYNVC has no other flow control), answers go
// to waiting Opens, ends close inboxes.
type core struct {
	cfg     Config
	carrier Carrier

	// machine is the protocol state: the channel table, capabilities,
	// reassembly. Guarded by mu.
	machine

	// wsem serializes the carrier. A message's PDUs are written under one
	// hold of it, so they are never interleaved with another message's.
	// It is a semaphore, not a mutex, so that waiting for it honours the
	// writer's context: a stalled peer must not hang every Write.
	wsem    sem
	scratch []byte
	hdr     [9]byte     // a data PDU's header, built by drdynvc.SplitMessage
	parts   PartsWriter // carrier's, if it has one
	intr    Interrupter // carrier's, if it has one
	// writers counts goroutines holding or waiting for wsem. The last one
	// out flushes (group commit): messages that queue up behind each other
	// — pipelined PNP requests, many channels echoing — share one write
	// to the carrier, while a lone message is still flushed at once.
	writers atomic.Int32

	// pool is the unread bytes of every channel's inbox, against
	// Config.ConnInboxBytes.
	pool *dvc.Pool

	// Control PDUs produced while handling received PDUs are queued here
	// and written by ctrlLoop, so that Receive never blocks on the carrier
	// (a receive loop blocked on a write can deadlock two peers that both
	// have full send buffers).
	ctrlMu    sync.Mutex
	ctrl      [][]byte
	ctrlBytes int         // what ctrl holds, against Config.MaxCtrlBytes
	ctrlOver  atomic.Bool // it passed the cap: Receive ends the connection
	kick      chan struct{}
	// refusals keeps a peer from turning refused requests into a log
	// line each (lograte).
	refusals *lograte.Limiter

	mu       sync.Mutex // guards machine and deadDone
	deadCh   chan struct{}
	deadDone bool           // deadCh is closed
	wg       sync.WaitGroup // ctrlLoop and client delivery goroutines
	rout     output         // Receive's output, reused (one goroutine calls Receive)
	pendErr  error          // the machine's error for rout, until it is all applied
	pendFrom int            // the first event of rout not yet applied
	pump     Pump           // the carrier's, if it has one (server only)

	ver      atomic.Uint32 // the negotiated version, for Version from any goroutine
	capsDone chan struct{} // closed when the capabilities exchange is done
	cl       *Client       // the client manager, nil in a server
}

func (c *core) init(r role, cfg Config, carrier Carrier) {
	c.cfg = cfg.withDefaults()
	c.machine.init(r, c.cfg)
	c.pool = dvc.NewPool(c.cfg.ConnInboxBytes)
	c.refusals = lograte.New(0, 0)
	c.carrier = carrier
	c.parts, _ = carrier.(PartsWriter)
	c.intr, _ = carrier.(Interrupter)
	c.scratch = make([]byte, 0, drdynvc.MaxPDU)
	c.kick = make(chan struct{}, 1)
	c.wsem = make(sem, 1)
	c.deadCh = make(chan struct{})
	c.capsDone = make(chan struct{})
	c.wg.Add(1)
	go c.ctrlLoop()
}

// receive is Receive for both roles: the machine handles pdu, then its
// output is acted on. A non-nil error has failed the manager.
func (c *core) receive(pdu []byte) error {
	_, err := c.receiveMode(pdu, false)
	return err
}

// receiveMode is receive; with noWait, a delivery to a server channel
// whose inbox (or the pool) is full is not waited for: receiveMode
// returns blocked, and the rest of the output is left for resume, which
// must be called (from a goroutine that may wait) before the next PDU.
func (c *core) receiveMode(pdu []byte, noWait bool) (blocked bool, err error) {
	o := &c.rout
	c.mu.Lock()
	err = c.machine.receive(pdu, o)
	c.attach(o)
	c.noteDead()
	c.mu.Unlock()
	c.pendErr, c.pendFrom = err, 0
	for _, p := range o.send {
		c.queueCtrl(p)
	}
	return c.finishApply(noWait)
}

// resume finishes the output a noWait receive left, waiting as long as
// deliveries need.
func (c *core) resume() error {
	_, err := c.finishApply(false)
	return err
}

func (c *core) finishApply(noWait bool) (bool, error) {
	o := &c.rout
	i, aerr := c.applyEvents(o, c.pendFrom, noWait)
	if aerr == errWouldBlock {
		c.pendFrom = i
		return true, nil
	}
	o.reset()
	err := c.pendErr
	c.pendErr, c.pendFrom = nil, 0
	if err == nil {
		err = aerr
	}
	if err == nil {
		err = c.overflowErr()
	}
	if err != nil {
		c.fail(err)
	}
	return false, err
}

// delivered tells the pump that ch's sleeping reader (if any) is about
// to have a message to wake up to, so it no longer needs someone to
// receive for it.
func (c *core) delivered(ch *channel) {
	if c.pump != nil && ch.asleep.Load() && ch.asleep.Swap(false) {
		c.pump.Awake()
	}
}

// errWouldBlock stops a noWait apply at a delivery that would wait.
var errWouldBlock = errors.New("session: delivery would wait")

// attach gives each channel the machine has just accepted its driver
// handle, before mu is released: a fail racing with the receive path must
// find it, and Shutdown must count its goroutine. Called with mu held.
func (c *core) attach(o *output) {
	for i := range o.events {
		if ev := &o.events[i]; ev.kind == evAccept {
			ch := newChannel(c, ev.ch)
			c.cl.newDelivery(ch)
			c.wg.Add(1)
		}
	}
}

// noteDead closes deadCh once the machine has failed. Called with mu held.
func (c *core) noteDead() {
	if c.dead != nil && !c.deadDone {
		c.deadDone = true
		close(c.deadCh)
	}
}

// apply acts on o, with mu released: control PDUs first (the machine
// puts a close before the end it causes), then the events in order. It
// returns an error from a delivery that the connection cannot survive.
func (c *core) apply(o *output) error {
	for _, p := range o.send {
		c.queueCtrl(p)
	}
	_, err := c.applyEvents(o, 0, false)
	return err
}

// applyEvents acts on o.events from index from. With noWait it stops at
// a server delivery that would wait, returning its index and
// errWouldBlock.
func (c *core) applyEvents(o *output, from int, noWait bool) (int, error) {
	var err error
	for i := from; i < len(o.events); i++ {
		ev := &o.events[i]
		var ch *channel
		if ev.ch != nil {
			ch = ev.ch.up
		}
		switch ev.kind {
		case evCaps:
			c.ver.Store(uint32(ev.version))
			close(c.capsDone)
		case evDeliver:
			// Before the message goes in: after, the reader could take
			// it and fall asleep again, and this would count that new
			// sleep as over.
			c.delivered(ch)
			if noWait && ch.client == nil {
				ok, perr := ch.in.TryPut(ev.msg)
				if perr == nil && !ok {
					return i, errWouldBlock
				}
				ev.msg = nil
				continue // a channel closed meanwhile drops the message
			}
			if derr := ch.deliver(ev.msg); derr != nil && err == nil {
				err = derr
			}
		case evOpened:
			ch.answer(nil)
		case evEnd:
			if ch != nil {
				ch.end(ev.err, ev.discard)
			}
		case evAccept:
			go c.cl.run(ch, c.cl.reg.Lookup(ch.name))
		case evRefused:
			// A peer can ask for unknown names at will: a log line each
			// would make every 13-byte request a 79-byte line (lograte).
			if ev.why == "too many" {
				c.refusals.Log(c.cfg.Logger, slog.LevelWarn, ev.why, "session: too many channels; refusing", "name", ev.name, "max", c.cfg.MaxChannels)
			} else {
				c.refusals.Log(c.cfg.Logger, slog.LevelInfo, ev.why, "session: no listener; refusing channel", "name", ev.name, "channelId", ev.id)
			}
		}
	}
	return len(o.events), err
}

// ctrlOverhead is what each queued control PDU costs besides its bytes
// (its slice header and allocation rounding), so that MaxCtrlBytes bounds
// memory and not only payload: a refusal is 8 bytes on the wire.
const ctrlOverhead = 40

// queueCtrl queues one control PDU (it is kept: the machine's PDUs are
// each their own allocation) for ctrlLoop. Past
// Config.MaxCtrlBytes queued, the peer is sending requests faster than it
// reads the answers (a flood of DYNVC_CREATE_REQ with its receive side
// stopped): the connection is failed rather than the queue grown.
func (c *core) queueCtrl(pdu []byte) {
	c.ctrlMu.Lock()
	if n := c.ctrlBytes + len(pdu) + ctrlOverhead; n > c.cfg.MaxCtrlBytes {
		c.ctrlMu.Unlock()
		if !c.ctrlOver.Swap(true) {
			c.fail(protoErr("control PDUs", "%d bytes queued for a peer that does not read them (Config.MaxCtrlBytes %d)", n, c.cfg.MaxCtrlBytes))
		}
		return
	}
	c.ctrlBytes += len(pdu) + ctrlOverhead
	c.ctrl = append(c.ctrl, pdu)
	c.ctrlMu.Unlock()
	c.kickCtrl()
}

// overflowErr is the error Receive returns once queueCtrl gave up, so the
// carrier drops the connection.
func (c *core) overflowErr() error {
	if !c.ctrlOver.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

func (c *core) kickCtrl() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *core) ctrlLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.deadCh:
			return
		case <-c.kick:
		}
		if err := c.drainCtrl(); err != nil {
			if !errors.Is(err, dvc.ErrConnectionLost) {
				c.fail(fmt.Errorf("session: send: %w", err))
			}
			return
		}
	}
}

// drainCtrl writes every control PDU queued so far. The queue is taken
// with the carrier held, so when drainCtrl returns, everything queued
// before the call is on the carrier, whoever wrote it. Called with nothing
// queued, it still takes and releases the carrier, which flushes what a
// writer that gave up waiting may have left to it.
func (c *core) drainCtrl() error {
	if err := c.lockW(context.Background()); err != nil {
		return err
	}
	c.ctrlMu.Lock()
	q := c.ctrl
	c.ctrl, c.ctrlBytes = nil, 0
	c.ctrlMu.Unlock()
	err := c.writeAll(q)
	if ferr := c.unlockW(); err == nil {
		err = ferr
	}
	return err
}

func (c *core) writeAll(pdus [][]byte) error {
	for _, p := range pdus {
		if err := c.carrier.WritePDU(p); err != nil {
			return err
		}
	}
	return nil
}

// sem is a one-slot semaphore: a lock that can be waited for with a
// context.
type sem chan struct{}

func (m sem) acquire(ctx context.Context, dead <-chan struct{}) error {
	select {
	case m <- struct{}{}:
		return nil
	default:
	}
	select {
	case m <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-dead:
		return dvc.ErrConnectionLost
	}
}

func (m sem) release() { <-m }

// lockW takes the carrier, waiting no longer than ctx allows; unlockW
// releases it, flushing first unless another writer is already waiting
// to write (and so to flush) after it.
func (c *core) lockW(ctx context.Context) error {
	c.writers.Add(1)
	if err := c.wsem.acquire(ctx, c.deadCh); err != nil {
		if c.writers.Add(-1) == 0 {
			// The holder may have left the flush to us: have ctrlLoop
			// do it.
			c.kickCtrl()
		}
		if errors.Is(err, dvc.ErrConnectionLost) {
			return c.isDead()
		}
		return err
	}
	return nil
}

func (c *core) unlockW() error {
	var err error
	if c.writers.Add(-1) == 0 {
		err = c.carrier.Flush()
	}
	c.wsem.release()
	return err
}

// sendNow writes one PDU at once, from a caller that may block (Open,
// Start — never Receive). Failures wrap dvc.ErrConnectionLost.
func (c *core) sendNow(ctx context.Context, pdu []byte) error {
	if err := c.lockW(ctx); err != nil {
		return err
	}
	err := c.isDead()
	if err != nil {
		c.unlockW()
		return err
	}
	err = c.carrier.WritePDU(pdu)
	if ferr := c.unlockW(); err == nil {
		err = ferr
	}
	if err != nil {
		return c.sendFailed(err)
	}
	return nil
}

// sendFailed ends the connection after the carrier refused a write, and
// returns the error a caller sees.
func (c *core) sendFailed(err error) error {
	err = fmt.Errorf("session: send: %w", err)
	c.fail(err)
	return fmt.Errorf("session: %w: %v", dvc.ErrConnectionLost, err)
}

func (c *core) isDead() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead != nil {
		return fmt.Errorf("session: %w: %v", dvc.ErrConnectionLost, c.dead)
	}
	return nil
}

// sendMessage fragments msg into DYNVC_DATA_FIRST/DYNVC_DATA PDUs for ch
// (3.1.5.1) and writes them without interleaving, on the caller's
// goroutine. When ctx ends while the carrier is blocked on the peer (an
// Interrupter carrier), it returns ctx.Err() at once and the rest of msg
// is written by finishMessage: half a message cannot be taken back, so a
// Write that returns ctx.Err() may still deliver its message whole, and
// the channel's next message waits for it.
func (c *core) sendMessage(ctx context.Context, ch *channel, msg []byte) error {
	if uint64(len(msg)) > 1<<32-1 {
		return fmt.Errorf("session: %w: %d bytes (MS-RDPEDYC 2.2.3 allows 2^32-1)", dvc.ErrTooLarge, len(msg))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// One message at a time per channel, so fragments stay in order.
	if err := ch.wsem.acquire(ctx, c.deadCh); err != nil {
		if errors.Is(err, dvc.ErrConnectionLost) {
			return c.isDead()
		}
		return err
	}
	if err := ch.writable(); err != nil {
		ch.wsem.release()
		return err
	}
	if err := c.lockW(ctx); err != nil {
		ch.wsem.release()
		return err
	}
	// Checked again with the carrier held: a close queued meanwhile must
	// not be followed by data on the wire.
	if err := ch.writable(); err != nil {
		c.unlockW()
		ch.wsem.release()
		return err
	}
	if c.intr != nil && ctx.Done() != nil {
		c.intr.SetWriteContext(ctx)
	}
	// drdynvc.SplitMessage holds the fragmentation rule (MS-RDPEDYC 2.2.3:
	// over drdynvc.MaxSingleData bytes, DATA_FIRST then DATA).
	w := msgWriter{c: c}
	err := drdynvc.SplitMessage(c.hdr[:0], ch.id, msg, w.write)
	counted := true // this writer is still in c.writers
	if err == nil {
		counted = false
		if c.writers.Add(-1) == 0 {
			err = c.carrier.Flush()
		}
	}
	if errors.Is(err, ErrInterrupted) {
		// The carrier still holds what it accepted; finishMessage
		// writes the rest and releases both locks.
		c.intr.SetWriteContext(nil)
		if counted {
			// The caller may reuse msg once Write returns.
			msg = bytes.Clone(msg)
		}
		// Counted under mu only while alive: Shutdown fails the
		// manager under mu before it waits for c.wg.
		c.mu.Lock()
		alive := c.dead == nil
		if alive {
			c.wg.Add(1)
		}
		c.mu.Unlock()
		if alive {
			go c.finishMessage(ch, msg, w.n, counted)
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return context.Canceled
		}
		// The connection is gone: nothing to finish.
		if counted {
			c.writers.Add(-1)
		}
		c.wsem.release()
		ch.wsem.release()
		return c.isDead()
	}
	if c.intr != nil && ctx.Done() != nil {
		c.intr.SetWriteContext(nil)
	}
	if counted {
		c.writers.Add(-1)
	}
	c.wsem.release()
	ch.wsem.release()
	if err != nil {
		return c.sendFailed(err)
	}
	return nil
}

// msgWriter counts the PDUs of a message the carrier has accepted (an
// interrupted write has accepted its PDU too).
type msgWriter struct {
	c *core
	n int
}

func (w *msgWriter) write(head, body []byte) error {
	err := w.c.writeData(head, body)
	if err == nil || errors.Is(err, ErrInterrupted) {
		w.n++
	}
	return err
}

// finishMessage completes a message whose writer's context ended: it
// writes msg's PDUs after the first done (with only the carrier's own
// timeout), flushes, and releases the carrier and ch's message lock, which
// sendMessage left held. counted: the writer is still in c.writers (it
// stopped before its last PDU was accepted). A failure fails the
// connection, as any send failure does.
func (c *core) finishMessage(ch *channel, msg []byte, done int, counted bool) {
	defer c.wg.Done()
	var err error
	if counted {
		i := 0
		err = drdynvc.SplitMessage(c.hdr[:0], ch.id, msg, func(head, body []byte) error {
			i++
			if i <= done {
				return nil
			}
			return c.writeData(head, body)
		})
		c.writers.Add(-1)
	}
	if err == nil {
		// Flushed even if another writer is waiting to: it may yet give
		// up, and these bytes are already late.
		err = c.carrier.Flush()
	}
	c.wsem.release()
	ch.wsem.release()
	if err != nil {
		c.sendFailed(err)
	}
}

// writeData writes the PDU head+body, without joining them first when the
// carrier can take them apart. Called with wsem held.
func (c *core) writeData(head, body []byte) error {
	if c.parts != nil {
		return c.parts.WritePDUParts(head, body)
	}
	c.scratch = append(append(c.scratch[:0], head...), body...)
	return c.carrier.WritePDU(c.scratch)
}

// fail ends the connection: every channel sees err (wrapped in
// dvc.ErrConnectionLost), and every pending Open returns it.
func (c *core) fail(err error) {
	var o output
	c.mu.Lock()
	c.machine.fail(err, &o)
	c.noteDead()
	c.mu.Unlock()
	c.apply(&o)
}

// channel is the driver's side of one DVC instance: the inbox its reader
// reads, the delivery to a client's Handler, the wait of a server's Open.
type channel struct {
	c    *core
	m    *mchan // the machine's side; its fields only under c.mu
	id   uint32
	name string
	in   *dvc.Inbox

	// Client side only: the manager and how the Handler is fed.
	client *Client
	d      delivery

	wsem sem // one outgoing message at a time

	asleep atomic.Bool // server: its reader waits in the inbox, counted by the Pump

	result     chan error // server: the CREATE_RSP outcome for Open, sent once
	answerOnce sync.Once
	closeOnce  sync.Once
}

// newChannel is the driver's handle for e. Called with c.mu held.
func newChannel(c *core, e *mchan) *channel {
	ch := &channel{c: c, m: e, id: e.id, name: e.name, in: dvc.NewInboxPool(c.cfg.InboxBytes, c.pool), wsem: make(sem, 1)}
	e.up = ch
	return ch
}

func (ch *channel) writable() error {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	return ch.c.machine.writable(ch.m)
}

// deliver hands a complete message to the reader. It blocks while the
// reader's inbox is full: DRDYNVC has no other flow control.
func (ch *channel) deliver(msg []byte) error {
	if ch.client != nil {
		return ch.client.deliverClient(ch, msg)
	}
	err := ch.in.Put(context.Background(), msg)
	if err != nil && err != dvc.ErrClosed {
		return err
	}
	return nil // a channel closed meanwhile drops the message
}

// answer gives a waiting Open its outcome, once.
func (ch *channel) answer(err error) {
	if ch.result != nil {
		ch.answerOnce.Do(func() { ch.result <- err })
	}
}

// end finishes ch once: its reader sees readErr (nil: io.EOF, after what is
// queued) or, with discard, sees readErr at once; a pending Open gets
// readErr too.
func (ch *channel) end(readErr error, discard bool) {
	ch.closeOnce.Do(func() {
		ch.answer(readErr)
		if discard {
			ch.in.Discard(readErr)
		} else {
			ch.in.CloseWithError(readErr)
		}
		if ch.client != nil {
			ch.client.endClient(ch)
		}
	})
}
