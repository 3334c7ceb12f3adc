package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/lograte"
)

type chanState uint8

const (
	statePending chanState = iota // server: CREATE_REQ sent, no CREATE_RSP yet
	stateAbandon                  // server: Open gave up while pending
	stateOpen                     // both: created
	stateClosing                  // server: DYNVC_CLOSE sent, awaiting the client's
	stateGone                     // both: closed by the peer (or the manager); writes fail
)

// core is what both managers share: the carrier, the channel table, the
// send path and per-channel reassembly.
type core struct {
	cfg     Config
	carrier Carrier

	// wsem serializes the carrier. A message's PDUs are written under one
	// hold of it, so they are never interleaved with another message's.
	// It is a semaphore, not a mutex, so that waiting for it honours the
	// writer's context: a stalled peer must not hang every Write.
	wsem    sem
	scratch []byte
	hdr     [9]byte     // a data PDU's header, built by drdynvc.SplitMessage
	parts   PartsWriter // carrier's, if it has one
	// writers counts goroutines holding or waiting for wsem. The last one
	// out flushes (group commit): messages that queue up behind each other
	// — pipelined PNP requests, many channels echoing — share one write
	// to the carrier, while a lone message is still flushed at once.
	writers atomic.Int32

	// reserved counts reassembly bytes allocated up front on DATA_FIRST,
	// against Config.ReassemblyBudget.
	reserved budget
	// held counts the bytes held by messages being reassembled, against
	// Config.MaxHeldBytes: a hard cap, where reserved only decides what is
	// allocated up front.
	held budget
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

	mu       sync.Mutex // guards channels and dead
	channels map[uint32]*channel
	dead     error
	deadCh   chan struct{}
	wg       sync.WaitGroup // ctrlLoop and client delivery goroutines

	// abort closes ch from this end because of cause, from the receive
	// path (so without blocking on the carrier). Each role sets it: the
	// server then waits for the client's DYNVC_CLOSE, the client does not
	// (3.2.5.2, 3.3.5.2).
	abort func(ch *channel, cause error)
}

func (c *core) init(cfg Config, carrier Carrier) {
	c.cfg = cfg.withDefaults()
	c.reserved.limit = c.cfg.ReassemblyBudget
	c.held.limit = c.cfg.MaxHeldBytes
	c.pool = dvc.NewPool(c.cfg.ConnInboxBytes)
	c.refusals = lograte.New(0, 0)
	c.carrier = carrier
	c.parts, _ = carrier.(PartsWriter)
	c.scratch = make([]byte, 0, drdynvc.MaxPDU)
	c.kick = make(chan struct{}, 1)
	c.wsem = make(sem, 1)
	c.channels = map[uint32]*channel{}
	c.deadCh = make(chan struct{})
	c.wg.Add(1)
	go c.ctrlLoop()
}

// ctrlOverhead is what each queued control PDU costs besides its bytes
// (its slice header and allocation rounding), so that MaxCtrlBytes bounds
// memory and not only payload: a refusal is 8 bytes on the wire.
const ctrlOverhead = 40

// queueCtrl queues one control PDU (it is copied) for ctrlLoop. Past
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
	c.ctrl = append(c.ctrl, append([]byte(nil), pdu...))
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
// (3.1.5.1) and writes them without interleaving.
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
	defer ch.wsem.release()
	if err := ch.writable(); err != nil {
		return err
	}
	if err := c.lockW(ctx); err != nil {
		return err
	}
	// Checked again with the carrier held: a close queued meanwhile must
	// not be followed by data on the wire.
	if err := ch.writable(); err != nil {
		c.unlockW()
		return err
	}
	// drdynvc.SplitMessage holds the fragmentation rule (MS-RDPEDYC 2.2.3:
	// over drdynvc.MaxSingleData bytes, DATA_FIRST then DATA).
	err := drdynvc.SplitMessage(c.hdr[:0], ch.id, msg, c.writeData)
	if ferr := c.unlockW(); err == nil {
		err = ferr
	}
	if err != nil {
		return c.sendFailed(err)
	}
	return nil
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

// roleRules is what differs between the two managers' receive switches;
// dispatch is the rest, which MS-RDPEDYC 3.1.5 makes common to both:
// capabilities first (2.2.1), data handled alike in both directions
// (3.1.5: "Sending and receiving messages is symmetrical"), compressed and
// Soft-Sync PDUs refused because rdpdvc negotiates neither, and anything
// unrecognized fatal (3.1.5.2.4).
type roleRules struct {
	capsDone   func() bool
	beforeCaps string // why a PDU before capabilities is an error
	caps       func(b []byte) error
	create     func(b []byte) error // DYNVC_CREATE_REQ or DYNVC_CREATE_RSP
	close      func(id uint32)
	compressed string // why compressed PDUs are errors
}

func (c *core) dispatch(b []byte, r *roleRules) error {
	if len(b) == 0 {
		return protoErr("PDU", "empty virtual channel message")
	}
	cmd := drdynvc.Cmd(b[0] >> 4)
	if !r.capsDone() && cmd != drdynvc.CmdCapability {
		return protoErr(pduName(cmd), "%s", r.beforeCaps)
	}
	switch cmd {
	case drdynvc.CmdCapability:
		return r.caps(b)
	case drdynvc.CmdCreate:
		return r.create(b)
	case drdynvc.CmdDataFirst:
		return c.onDataFirst(b)
	case drdynvc.CmdData:
		return c.onData(b)
	case drdynvc.CmdClose:
		p, err := drdynvc.ParseClose(b)
		if err != nil {
			return decodeErr("DYNVC_CLOSE", err)
		}
		r.close(p.ChannelID)
		return nil
	case drdynvc.CmdDataFirstCompressed, drdynvc.CmdDataCompressed:
		return protoErr(pduName(cmd), "%s", r.compressed)
	case drdynvc.CmdSoftSyncRequest, drdynvc.CmdSoftSyncResponse:
		return protoErr(pduName(cmd), "Soft-Sync needs multitransport, which this connection does not have (3.1.5.3)")
	}
	return protoErr(pduName(cmd), "unrecognized Cmd (3.1.5.2.4)")
}

func (c *core) lookupOpen(id uint32) *channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.channels[id]
	if ch == nil || ch.state != stateOpen {
		return nil
	}
	return ch
}

// onDataFirst and onData return a *ProtocolError for input that ends the
// connection. Data for a channel that is not open (closed by this end a
// moment ago, with PDUs still in flight) is dropped.
func (c *core) onDataFirst(b []byte) error {
	p, err := drdynvc.ParseDataFirst(b)
	if err != nil {
		return decodeErr("DYNVC_DATA_FIRST", err)
	}
	ch := c.lookupOpen(p.ChannelID)
	if ch == nil {
		c.cfg.Logger.Debug("session: DYNVC_DATA_FIRST for a channel that is not open; dropped", "channelId", p.ChannelID)
		return nil
	}
	if p.Length > c.cfg.MaxMessage && !ch.rx.active {
		c.cfg.Logger.Warn("session: message over the ceiling; closing the channel",
			"channelId", p.ChannelID, "name", ch.name, "DYNVC_DATA_FIRST.Length", p.Length, "ceiling", c.cfg.MaxMessage)
		// Only this channel suffers: it is closed from this end, and what
		// is still in flight for it is dropped as data for a closed channel.
		c.abort(ch, fmt.Errorf("session: %w: DYNVC_DATA_FIRST.Length %d exceeds the ceiling %d", dvc.ErrTooLarge, p.Length, c.cfg.MaxMessage))
		return nil
	}
	msg, done, err := ch.rx.first(p)
	if errors.Is(err, errHeld) {
		c.overHeld(ch, "DYNVC_DATA_FIRST", err)
		return nil
	}
	if err != nil || !done {
		return err
	}
	return ch.deliver(msg)
}

// overHeld closes ch, whose message would take the connection's
// reassembly bytes past Config.MaxHeldBytes: like a message over
// MaxMessage, only this channel suffers.
func (c *core) overHeld(ch *channel, pdu string, err error) {
	c.cfg.Logger.Warn("session: messages being reassembled over the connection's ceiling; closing the channel",
		"channelId", ch.id, "name", ch.name, "pdu", pdu, "ceiling", c.cfg.MaxHeldBytes)
	c.abort(ch, fmt.Errorf("%w: %s: %w", dvc.ErrTooLarge, pdu, err))
}

func (c *core) onData(b []byte) error {
	p, err := drdynvc.ParseData(b)
	if err != nil {
		return decodeErr("DYNVC_DATA", err)
	}
	ch := c.lookupOpen(p.ChannelID)
	if ch == nil {
		c.cfg.Logger.Debug("session: DYNVC_DATA for a channel that is not open; dropped", "channelId", p.ChannelID)
		return nil
	}
	msg, done, err := ch.rx.data(p.ChannelID, p.Data)
	if errors.Is(err, errHeld) {
		c.overHeld(ch, "DYNVC_DATA", err)
		return nil
	}
	if err != nil || !done {
		return err
	}
	return ch.deliver(msg)
}

// fail ends the connection: every channel sees err (wrapped in
// dvc.ErrConnectionLost), and every pending Open returns it.
func (c *core) fail(err error) {
	if err == nil {
		err = ErrShutdown
	}
	c.mu.Lock()
	if c.dead != nil {
		c.mu.Unlock()
		return
	}
	c.dead = err
	close(c.deadCh)
	chans := c.channels
	c.channels = map[uint32]*channel{}
	c.mu.Unlock()
	lost := fmt.Errorf("session: %w: %v", dvc.ErrConnectionLost, err)
	for _, ch := range chans {
		ch.end(lost, false)
	}
}

// remove drops ch from the table if it is still there.
func (c *core) remove(ch *channel) {
	c.mu.Lock()
	if c.channels[ch.id] == ch {
		delete(c.channels, ch.id)
	}
	c.mu.Unlock()
}

// channel is one DVC instance as a manager sees it.
type channel struct {
	c    *core
	id   uint32
	name string
	in   *dvc.Inbox

	rx reassembly // receive side; see reassembly for who touches what

	// Client side only: the manager and how the Handler is fed.
	client *Client
	d      delivery

	wsem sem // one outgoing message at a time

	// Guarded by c.mu.
	state  chanState
	result chan error // server: CREATE_RSP outcome for Open

	closeOnce sync.Once
	closed    chan struct{}
	localDone bool // this end called Close
}

func newChannel(c *core, id uint32, name string, st chanState) *channel {
	ch := &channel{c: c, id: id, name: name, in: dvc.NewInboxPool(c.cfg.InboxBytes, c.pool), state: st, closed: make(chan struct{}), wsem: make(sem, 1)}
	ch.rx.b = &c.reserved
	ch.rx.h = &c.held
	return ch
}

func (ch *channel) writable() error {
	ch.c.mu.Lock()
	defer ch.c.mu.Unlock()
	if ch.localDone {
		return dvc.ErrClosed
	}
	if ch.c.dead != nil {
		return fmt.Errorf("session: %w: %v", dvc.ErrConnectionLost, ch.c.dead)
	}
	switch ch.state {
	case stateOpen:
		return nil
	case statePending:
		return fmt.Errorf("session: channel %q (%d) is not open yet: write after Accept returns", ch.name, ch.id)
	}
	return fmt.Errorf("session: channel %q (%d) was closed by the peer: %w", ch.name, ch.id, dvc.ErrClosed)
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

// end finishes ch once: its reader sees readErr (nil: io.EOF, after what is
// queued) or, with discard, sees readErr at once; a pending Open gets
// readErr too.
func (ch *channel) end(readErr error, discard bool) {
	ch.closeOnce.Do(func() {
		ch.rx.release()
		ch.c.mu.Lock()
		r := ch.result
		ch.result = nil
		ch.c.mu.Unlock()
		if r != nil {
			r <- readErr
		}
		if discard {
			ch.in.Discard(readErr)
		} else {
			ch.in.CloseWithError(readErr)
		}
		close(ch.closed)
		if ch.client != nil {
			ch.client.endClient(ch)
		}
	})
}
