package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

type fileState uint8

const (
	fileAwaitCaps   fileState = iota // nothing received yet
	fileAwaitCreate                  // capabilities exchanged
	fileOpening                      // CreateFile in progress
	fileOpen                         // the handle is open
	fileNoHandle                     // the CreateFile failed
	fileGone                         // the device was removed
	fileClosed
)

// recentIDs is how many completed RequestIds an instance remembers, so
// that a late IoCancel is recognised as late (see doc.go).
const recentIDs = 32

// fileChan is one FileRedirectorChannel instance: one handle (2.1).
type fileChan struct {
	c   *Client
	ch  dvc.Channel
	log *slog.Logger

	mu            sync.Mutex
	state         fileState
	events        bool // custom events negotiated (3.2.5.2.1.1)
	dev           *devEntry
	h             device.Handle
	pending       map[uint32]*op // outstanding requests, by RequestId
	queued        []*op          // waiting for the CreateFile to finish
	recent        [recentIDs]uint32
	nrecent       int
	evq           [][]byte       // custom events raised before the CreateFile Reply was queued, in order
	evReady       bool           // the CreateFile Reply is queued: events may follow it
	io            sync.WaitGroup // operations using h
	handleClosing bool
	opening       bool // the open goroutine runs: it alone ends the handle
	handleOnce    sync.Once
	handleDone    chan struct{} // closed when h is closed, or will never be opened

	// Everything the instance sends goes through outq, in order, written
	// by one goroutine at a time (writing). A request counts against
	// Config.MaxOutstanding (inflight) and keeps its bytes reserved until
	// its reply has been written or dropped, so a server that stops
	// reading cannot make the client hold more than the budget.
	outq     []outMsg
	writing  bool // a goroutine is draining outq
	inflight int  // requests accepted whose reply is not yet written
	refusals int  // refusal replies in outq
	nevents  int  // custom events in outq
}

// outMsg is one message waiting to be written.
type outMsg struct {
	b       []byte
	op      *op     // the request it answers, if it holds a reservation
	pooled  *[]byte // b's pool entry, given back once written
	refusal bool    // a refusal reply (counted in fileChan.refusals)
	event   bool    // a custom event (counted in fileChan.nevents)
}

// op is one outstanding request.
type op struct {
	id      uint32
	fn      wire.FunctionID
	req     wire.Request    // owns its data (copied out of the message)
	fail    hresult.HRESULT // answer with this, without touching the device
	c       *Client
	cost    int64 // bytes reserved in c.buffered; guarded by fc.mu
	counted bool  // counted in fileChan.inflight; guarded by fc.mu
	ctx     context.Context
	cancel  context.CancelFunc
}

// Received implements dvc.Handler.
func (fc *fileChan) Received(msg []byte) {
	hdr, err := wire.ParseServerIOHeader(msg)
	if err != nil {
		fc.violation("a message too short for SERVER_IO_HEADER", "err", err)
		return
	}
	fn := hdr.FunctionID
	if !fn.Known() {
		fc.violation("unknown FunctionId (2.2.2.1.1)", "FunctionId", uint32(fn))
		return
	}
	if fn == wire.FunctionCreateFile {
		fc.createFile(msg, hdr)
		return
	}
	fc.mu.Lock()
	switch {
	case fc.state == fileClosed:
		fc.mu.Unlock()
		return
	case fc.state == fileAwaitCaps:
		fc.mu.Unlock()
		fc.capabilities(msg, fn)
		return
	case fn == wire.FunctionCapabilities:
		fc.mu.Unlock()
		fc.violation("a second Server Capabilities Request")
		return
	case fn == wire.FunctionSpecificIoCancel:
		fc.cancelLocked(msg)
		fc.mu.Unlock()
		return
	case fc.state == fileAwaitCreate:
		fc.mu.Unlock()
		fc.violation("I/O before the CreateFile Request (3.2.5.2.2.3)", "FunctionId", fn)
		return
	}
	if _, dup := fc.pending[hdr.RequestID]; dup {
		fc.mu.Unlock()
		fc.violation("duplicate RequestId (3.1.1)", "RequestId", hdr.RequestID)
		return
	}
	if fc.inflight >= fc.c.cfg.MaxOutstanding {
		fc.c.refusals.Log(fc.log, slog.LevelWarn, "outstanding", "too many outstanding requests; refusing one", "RequestId", hdr.RequestID, "max", fc.c.cfg.MaxOutstanding)
		fc.refuseLocked(fn, hdr.RequestID)
		return
	}
	o := fc.newOpLocked(hdr, msg)
	if o == nil {
		fc.c.refusals.Log(fc.log, slog.LevelWarn, "buffered", "too much data in requests in progress; refusing one", "RequestId", hdr.RequestID, "max", fc.c.cfg.MaxBufferedBytes)
		fc.refuseLocked(fn, hdr.RequestID)
		return
	}
	switch fc.state {
	case fileOpening:
		fc.queued = append(fc.queued, o)
	case fileOpen:
		fc.startLocked(o)
	case fileNoHandle:
		o.fail = device.ErrorInvalidHandle
		fc.startLocked(o)
	case fileGone:
		o.fail = device.ErrorDevNotExist
		fc.startLocked(o)
	}
	fc.mu.Unlock()
}

// newOpLocked decodes a Read, Write or IOControl request into an op that
// owns its data and enters it among the outstanding requests. It returns
// nil, having kept nothing, if the bytes the request needs do not fit in
// Config.MaxBufferedBytes.
func (fc *fileChan) newOpLocked(hdr wire.ServerIOHeader, msg []byte) *op {
	o := &op{id: hdr.RequestID, fn: hdr.FunctionID, c: fc.c}
	req, err := wire.ParseRequest(msg)
	switch q := req.(type) {
	case wire.ReadRequest:
		o.cost = int64(q.BytesToRead)
	case wire.WriteRequest:
		o.cost = int64(len(q.Data))
	case wire.IOControlRequest:
		o.cost = int64(len(q.DataIn)) + int64(q.OutputBufferSize)
	}
	if o.cost > 0 && fc.c.buffered.Add(o.cost) > fc.c.cfg.MaxBufferedBytes {
		fc.c.buffered.Add(-o.cost)
		return nil
	}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	switch q := req.(type) {
	case wire.WriteRequest:
		q.Data = append([]byte(nil), q.Data...)
		o.req = q
	case wire.IOControlRequest:
		if r := q.DataOutHRESULT(); r != hresult.S_OK {
			fc.log.Warn("IOControl DataOut is neither absent nor cbOut bytes (3.2.5.2.2.7)", "RequestId", o.id, "DataOut", len(q.DataOut), "cbOut", q.OutputBufferSize)
			o.fail = r
		}
		q.DataIn = append([]byte(nil), q.DataIn...)
		q.DataOut = nil
		o.req = q
	case wire.ReadRequest:
		o.req = q
	}
	if err != nil {
		fc.log.Warn("answering a request that does not decode", "RequestId", o.id, "err", err)
		o.fail = device.ErrorInvalidParameter
	}
	fc.pending[o.id] = o
	o.counted = true
	fc.inflight++
	return o
}

// refuseLocked answers request id of function fn with
// ERROR_NO_SYSTEM_RESOURCES, touching no device, and unlocks fc.mu. The
// reply is queued, not written here: Received never waits for the
// network. A server that keeps sending requests while it reads none of
// the replies would grow the queue without end, so once
// Config.MaxOutstanding refusals wait to be written the instance is
// closed instead.
func (fc *fileChan) refuseLocked(fn wire.FunctionID, id uint32) {
	if fc.refusals >= fc.c.cfg.MaxOutstanding {
		fc.mu.Unlock()
		fc.violation("the server sends requests but reads none of the replies", "refusalsQueued", fc.c.cfg.MaxOutstanding)
		return
	}
	fc.refusals++
	fc.sendLocked(outMsg{b: errorReply(fn, id, device.ErrorNoSystemResources), refusal: true}, false)
	fc.mu.Unlock()
}

// doneLocked ends o's claim on the instance's limits: its slot among
// the Config.MaxOutstanding requests and its bytes. Idempotent.
func (fc *fileChan) doneLocked(o *op) {
	if o.counted {
		o.counted = false
		fc.inflight--
	}
	o.release()
}

// release gives back the bytes o reserved; idempotent.
func (o *op) release() {
	if o.c != nil {
		if n := o.cost; n != 0 {
			o.cost = 0
			o.c.buffered.Add(-n)
		}
	}
}

// startLocked runs o on its own goroutine. Operations that use the
// handle are counted in fc.io, so that it stays open until they return.
func (fc *fileChan) startLocked(o *op) {
	h := fc.h
	if o.fail != hresult.S_OK {
		h = nil
	}
	if h != nil {
		fc.io.Add(1)
	}
	fc.c.wg.Add(1)
	go fc.run(o, h)
}

func (fc *fileChan) run(o *op, h device.Handle) {
	defer fc.c.wg.Done()
	reply, pooled := fc.service(o, h)
	if h != nil {
		fc.io.Done() // the handle may close while the reply waits to be written
	}
	fc.finish(o, reply, pooled)
}

// bufPools hold reply buffers in three size classes up to maxPooled
// bytes: a 4 KiB read then costs no allocation for its data.
// Channel.Write does not keep a message after it returns, so a buffer
// goes back as soon as its reply is sent.
var bufPools = [...]struct {
	size int
	pool sync.Pool
}{{size: 1 << 10}, {size: 1 << 13}, {size: maxPooled}}

const maxPooled = 64 << 10

// getBuf returns a buffer of n bytes, and the pool entry to give back
// with putBuf (nil when n is too large to pool).
func getBuf(n int) ([]byte, *[]byte) {
	for i := range bufPools {
		c := &bufPools[i]
		if n <= c.size {
			p, _ := c.pool.Get().(*[]byte)
			if p == nil {
				b := make([]byte, c.size)
				p = &b
			}
			return (*p)[:n], p
		}
	}
	return make([]byte, n), nil
}

func putBuf(p *[]byte) {
	for i := range bufPools {
		if c := &bufPools[i]; cap(*p) == c.size {
			c.pool.Put(p)
			return
		}
	}
}

// finish forgets o's RequestId, then sends its reply: in that order,
// because once the server has the reply it may reuse the RequestId
// (MS-RDPEPNP 3.1.1). o keeps its bytes and its slot until the reply has
// been written (or dropped): that is when its buffer is free.
func (fc *fileChan) finish(o *op, reply []byte, pooled *[]byte) {
	o.cancel()
	fc.mu.Lock()
	if fc.pending[o.id] == o {
		delete(fc.pending, o.id)
		fc.recent[fc.nrecent%recentIDs] = o.id
		fc.nrecent++
	}
	inline := fc.sendLocked(outMsg{b: reply, op: o, pooled: pooled}, true)
	fc.mu.Unlock()
	if inline {
		fc.drain()
	}
}

// sendLocked queues m behind the messages the instance has yet to send.
// On a closed instance m is dropped at once. If no goroutine is writing,
// one must: with inline the caller is it, and must call fc.drain once it
// has unlocked fc.mu (sendLocked returns true); otherwise a writer
// goroutine is started.
func (fc *fileChan) sendLocked(m outMsg, inline bool) bool {
	if fc.state == fileClosed {
		fc.dropLocked(m)
		return false
	}
	fc.outq = append(fc.outq, m)
	if fc.writing {
		return false
	}
	fc.writing = true
	if inline {
		return true
	}
	fc.c.wg.Add(1)
	go func() {
		defer fc.c.wg.Done()
		fc.drain()
	}()
	return false
}

// dropLocked forgets m, written or not: its request's reservation ends
// and its buffer goes back to the pool.
func (fc *fileChan) dropLocked(m outMsg) {
	if m.op != nil {
		fc.doneLocked(m.op)
	}
	if m.refusal {
		fc.refusals--
	}
	if m.event {
		fc.nevents--
	}
	if m.pooled != nil {
		putBuf(m.pooled)
	}
}

// drain writes outq in order until it is empty or the instance closed.
func (fc *fileChan) drain() {
	for {
		fc.mu.Lock()
		if len(fc.outq) == 0 || fc.state == fileClosed {
			for _, m := range fc.outq {
				fc.dropLocked(m)
			}
			fc.outq = nil
			fc.writing = false
			fc.mu.Unlock()
			return
		}
		m := fc.outq[0]
		fc.outq[0] = outMsg{}
		fc.outq = fc.outq[1:]
		fc.mu.Unlock()
		fc.write(m.b)
		fc.mu.Lock()
		fc.dropLocked(m)
		fc.mu.Unlock()
	}
}

// service performs o on h and returns the reply, and the pool entry of
// its buffer if it has one.
func (fc *fileChan) service(o *op, h device.Handle) ([]byte, *[]byte) {
	if o.fail != hresult.S_OK || h == nil {
		code := o.fail
		if code == hresult.S_OK {
			code = device.ErrorInvalidHandle
		}
		return errorReply(o.fn, o.id, code), nil
	}
	switch q := o.req.(type) {
	case wire.ReadRequest:
		// The device reads straight into the reply, where Data goes
		// (2.2.2.3.4).
		const dataAt = wire.ReadReplyDataOffset
		buf, pooled := getBuf(dataAt + int(q.BytesToRead) + 1)
		data := buf[dataAt : dataAt+int(q.BytesToRead)]
		n, err := h.ReadAt(o.ctx, data, q.Offset)
		n = clamp(n, len(data))
		// Append fills in the fields before Data and copies Data onto
		// itself; the capacity is there, so it does not reallocate.
		return wire.ReadReply{RequestID: o.id, Result: device.HRESULTOf(err), Data: data[:n]}.Append(buf[:0]), pooled
	case wire.WriteRequest:
		n, err := h.WriteAt(o.ctx, q.Data, q.Offset)
		n = clamp(n, len(q.Data))
		return wire.WriteReply{RequestID: o.id, Result: device.HRESULTOf(err), BytesWritten: uint32(n)}.Append(nil), nil
	case wire.IOControlRequest:
		out, err := h.IoControl(o.ctx, q.IoCode, q.DataIn, q.OutputBufferSize)
		result := device.HRESULTOf(err)
		if uint64(len(out)) > uint64(q.OutputBufferSize) {
			// cbBytesReadReturned MUST NOT exceed cbOut (2.2.2.3.8).
			fc.log.Warn("device returned more than cbOut; reporting ERROR_INSUFFICIENT_BUFFER", "RequestId", o.id, "IoCode", q.IoCode, "returned", len(out), "cbOut", q.OutputBufferSize)
			out = nil
			if result == hresult.S_OK {
				result = device.ErrorInsufficientBuffer
			}
		}
		return wire.IOControlReply{RequestID: o.id, Result: result, Data: out}.Append(nil), nil
	}
	return errorReply(o.fn, o.id, device.ErrorInvalidParameter), nil
}

func clamp(n, max int) int {
	if n < 0 {
		return 0
	}
	if n > max {
		return max
	}
	return n
}

// errorReply is the reply to a request of function fn that failed with
// code before producing anything.
func errorReply(fn wire.FunctionID, id uint32, code hresult.HRESULT) []byte {
	switch fn {
	case wire.FunctionRead:
		return wire.ReadReply{RequestID: id, Result: code}.Append(nil)
	case wire.FunctionWrite:
		return wire.WriteReply{RequestID: id, Result: code}.Append(nil)
	case wire.FunctionIOControl:
		return wire.IOControlReply{RequestID: id, Result: code}.Append(nil)
	}
	return wire.CreateFileReply{RequestID: id, Result: code}.Append(nil)
}

// capabilities handles the first message (3.2.5.2.1.1). The reply is
// written before Received returns, so it precedes every other message the
// client sends on the instance (3.3.5.2.1.2).
func (fc *fileChan) capabilities(msg []byte, fn wire.FunctionID) {
	if fn != wire.FunctionCapabilities {
		fc.violation("the first message is not a Server Capabilities Request (3.2.5.2.1.1)", "FunctionId", fn)
		return
	}
	req, err := wire.ParseServerCapabilitiesRequest(msg)
	if err != nil {
		fc.violation("a Server Capabilities Request that does not decode", "err", err)
		return
	}
	fc.mu.Lock()
	if fc.state != fileAwaitCaps {
		fc.mu.Unlock()
		return
	}
	fc.state = fileAwaitCreate
	fc.events = wire.CustomEventsAllowed(req.Version, fc.c.cfg.IOVersion)
	fc.log.Debug("FileRedirectorChannel capabilities", "server", req.Version, "client", fc.c.cfg.IOVersion, "customEvents", fc.events)
	fc.sendLocked(outMsg{b: wire.ClientCapabilitiesReply{RequestID: req.RequestID, Version: fc.c.cfg.IOVersion}.Append(nil)}, false)
	fc.mu.Unlock()
}

// createFile handles the CreateFile Request (3.2.5.2.2.1): the device is
// looked up among those announced, and opened on another goroutine.
func (fc *fileChan) createFile(msg []byte, hdr wire.ServerIOHeader) {
	c := fc.c
	c.mu.Lock()
	fc.mu.Lock()
	switch fc.state {
	case fileClosed:
		fc.mu.Unlock()
		c.mu.Unlock()
		return
	case fileAwaitCaps:
		fc.mu.Unlock()
		c.mu.Unlock()
		fc.violation("the first message is not a Server Capabilities Request (3.2.5.2.1.1)", "FunctionId", hdr.FunctionID)
		return
	case fileAwaitCreate:
	default:
		fc.mu.Unlock()
		c.mu.Unlock()
		fc.violation("a second CreateFile Request (2.2.2.3.1)")
		return
	}
	req, err := wire.ParseCreateFileRequest(msg)
	var fail hresult.HRESULT
	var e *devEntry
	switch {
	case err != nil:
		fc.log.Warn("answering a CreateFile Request that does not decode", "err", err)
		fail = device.ErrorInvalidParameter
	case c.removed[req.DeviceID]:
		fail = device.ErrorDevNotExist
	default:
		if e = c.devices[req.DeviceID]; e == nil || !e.announced {
			e = nil
			fail = device.ErrorFileNotFound
		}
	}
	if e == nil {
		fc.state = fileNoHandle
		fc.sendLocked(outMsg{b: wire.CreateFileReply{RequestID: hdr.RequestID, Result: fail}.Append(nil)}, false)
		fc.mu.Unlock()
		c.mu.Unlock()
		fc.log.Info("CreateFile refused", "DeviceId", req.DeviceID, "result", fail)
		fc.markHandleDone()
		return
	}
	fc.state = fileOpening
	fc.opening = true
	fc.dev = e
	e.handles[fc] = struct{}{}
	o := &op{id: hdr.RequestID, fn: wire.FunctionCreateFile, req: req}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	fc.pending[o.id] = o
	c.wg.Add(1)
	fc.mu.Unlock()
	c.mu.Unlock()
	go fc.open(o, req, e)
}

func (fc *fileChan) open(o *op, req wire.CreateFileRequest, e *devEntry) {
	defer fc.c.wg.Done()
	or := device.OpenRequest{
		DesiredAccess: req.DesiredAccess, ShareMode: req.ShareMode,
		CreationDisposition: req.CreationDisposition, FlagsAndAttributes: req.FlagsAndAttributes,
	}
	fc.mu.Lock()
	if fc.events {
		or.Events = fc.deliverEvent
	}
	fc.mu.Unlock()
	h, err := e.dev.Open(o.ctx, or)
	result := device.HRESULTOf(err)

	fc.mu.Lock()
	fc.opening = false
	if fc.pending[o.id] == o {
		delete(fc.pending, o.id)
	}
	o.cancel()
	state := fc.state
	var stale device.Handle // opened, but nobody wants it any more
	var queueFail hresult.HRESULT
	switch {
	case state != fileOpening: // closed, or the device removed, meanwhile
		stale = h
		if result == hresult.S_OK {
			result = device.ErrorDevNotExist
		}
		queueFail = device.ErrorDevNotExist
		h = nil
	case err != nil:
		fc.state = fileNoHandle
		queueFail = device.ErrorInvalidHandle
		h = nil
	default:
		fc.state = fileOpen
		fc.h = h
	}
	queued := fc.queued
	fc.queued = nil
	handles := make([]device.Handle, len(queued))
	for i, q := range queued {
		if queueFail != hresult.S_OK && q.fail == hresult.S_OK {
			q.fail = queueFail
		}
		if state == fileClosed {
			continue
		}
		// Counted now, started after the CreateFile Reply is out, so that
		// the handle stays open for them whatever happens meanwhile.
		if h != nil && q.fail == hresult.S_OK {
			handles[i] = h
			fc.io.Add(1)
		}
		fc.c.wg.Add(1)
	}
	fc.mu.Unlock()

	if stale != nil {
		if err := stale.Close(); err != nil {
			fc.log.Warn("closing the device handle", "err", err)
		}
	}
	if h == nil {
		// No handle for this instance, now or later; any stale one is
		// closed above, so RemoveDevice and Close may return.
		fc.markHandleDone()
	}
	level := slog.LevelDebug // a thousand handles should not mean a thousand lines
	if result != hresult.S_OK {
		level = slog.LevelInfo
	}
	fc.log.Log(context.Background(), level, "CreateFile", "DeviceId", req.DeviceID, "access", fmt.Sprintf("0x%08X", req.DesiredAccess),
		"share", req.ShareMode, "disposition", req.CreationDisposition, "result", result)
	if state == fileClosed {
		return
	}
	fc.mu.Lock()
	inline := fc.sendLocked(outMsg{b: wire.CreateFileReply{RequestID: o.id, Result: result}.Append(nil)}, true)
	if fc.state == fileOpen {
		// Events raised while the device opened follow the reply.
		fc.evReady = true
		for _, b := range fc.evq {
			fc.nevents++
			fc.sendLocked(outMsg{b: b, event: true}, false)
		}
	}
	fc.evq = nil // if the handle is not open: never sent
	fc.mu.Unlock()
	for i, q := range queued {
		go fc.run(q, handles[i])
	}
	if inline {
		fc.drain()
	}
}

// cancelLocked handles a Specific IoCancel Request (3.2.5.2.2.9).
func (fc *fileChan) cancelLocked(msg []byte) {
	m, err := wire.ParseSpecificIoCancelRequest(msg)
	if err != nil {
		fc.log.Warn("ignoring a Specific IoCancel Request that does not decode", "err", err)
		return
	}
	ids := m.CandidateIDs()
	// Byte 8 is the diagram's UnusedBits, which a server of that school
	// leaves 0; byte 11 is the section 4.4 reading's unused byte. Byte 8
	// set and byte 11 clear is the section 4.4 layout: try it first.
	// (A cancel-safe ID reads the same both ways.)
	if m.BodyUnusedBits != 0 && m.IDToCancel>>16 == 0 && ids[0] != ids[1] {
		ids[0], ids[1] = ids[1], ids[0]
	}
	if ids[0] != ids[1] && fc.pending[ids[0]] != nil && fc.pending[ids[1]] != nil {
		fc.log.Debug("Specific IoCancel Request names an outstanding request under both readings", "tried", ids[0], "other", ids[1])
	}
	for _, id := range ids {
		if o := fc.pending[id]; o != nil {
			fc.log.Debug("cancelling", "RequestId", id)
			o.cancel()
			return
		}
		if fc.recentlyDone(id) {
			break
		}
	}
	fc.log.Debug("ignoring a Specific IoCancel Request for nothing outstanding", "idToCancel", m.IDToCancel)
}

func (fc *fileChan) recentlyDone(id uint32) bool {
	n := min(fc.nrecent, recentIDs)
	for i := range n {
		if fc.recent[i] == id {
			return true
		}
	}
	return false
}

// deliverEvent is the device's OpenRequest.Events: it queues a Client
// Device Custom Event (2.2.2.3.10) without blocking. Events go out in the
// order raised, through one writer per instance, and only after the
// CreateFile Reply: those raised while the device opens wait for it, and
// are dropped if the open fails.
func (fc *fileChan) deliverEvent(ev device.Event) {
	if len(ev.Data) > wire.MaxCustomEventBytes {
		fc.log.Warn("dropping a custom event over the size ceiling", "bytes", len(ev.Data))
		return
	}
	b := wire.ClientDeviceCustomEvent{CustomEventGUID: ev.GUID, Data: ev.Data}.Append(nil)
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if (fc.state != fileOpen && fc.state != fileOpening) || !fc.events || len(fc.evq)+fc.nevents >= MaxPendingEvents {
		return
	}
	if !fc.evReady {
		fc.evq = append(fc.evq, b)
		return
	}
	fc.nevents++
	fc.sendLocked(outMsg{b: b, event: true}, false)
}

// revoke is the device's removal (see doc.go).
func (fc *fileChan) revoke() {
	fc.mu.Lock()
	switch fc.state {
	case fileOpening, fileOpen:
		fc.state = fileGone
		for _, o := range fc.pending {
			o.cancel()
		}
		fc.releaseHandleLocked() // a no-op while the device opens
	}
	fc.mu.Unlock()
}

// shutdown ends the instance: every operation is cancelled and the handle
// closed once they return. Idempotent.
func (fc *fileChan) shutdown() {
	fc.mu.Lock()
	if fc.state == fileClosed {
		fc.mu.Unlock()
		return
	}
	fc.state = fileClosed
	for _, o := range fc.pending {
		o.cancel()
	}
	for _, o := range fc.queued {
		fc.doneLocked(o) // they will never run
	}
	fc.queued = nil
	// What waits to be written never will be; what is being written
	// keeps its reservation until its Write returns.
	for _, m := range fc.outq {
		fc.dropLocked(m)
	}
	fc.outq = nil
	fc.releaseHandleLocked() // a no-op while the device opens
	e := fc.dev
	fc.mu.Unlock()
	c := fc.c
	c.mu.Lock()
	delete(c.files, fc)
	if e != nil {
		delete(e.handles, fc)
	}
	c.mu.Unlock()
}

// releaseHandleLocked closes h once no operation uses it. While a
// CreateFile is in progress (fc.opening) it does nothing: the open
// goroutine closes what it opens and marks the handle done itself, and
// nothing else may, or RemoveDevice would return while Open still runs.
func (fc *fileChan) releaseHandleLocked() {
	if fc.handleClosing || fc.opening {
		return
	}
	fc.handleClosing = true
	h := fc.h
	fc.h = nil
	if h == nil {
		fc.markHandleDone()
		return
	}
	fc.c.wg.Add(1)
	go func() {
		defer fc.c.wg.Done()
		fc.io.Wait()
		if err := h.Close(); err != nil {
			fc.log.Warn("closing the device handle", "err", err)
		}
		fc.markHandleDone()
	}()
}

func (fc *fileChan) markHandleDone() { fc.handleOnce.Do(func() { close(fc.handleDone) }) }

// Closed implements dvc.Handler.
func (fc *fileChan) Closed(err error) {
	if err != nil {
		fc.log.Debug("FileRedirectorChannel closed", "err", err)
	}
	fc.shutdown()
}

// violation closes the instance for input that breaks the sequence the
// specification fixes (doc.go lists the cases).
func (fc *fileChan) violation(what string, args ...any) {
	fc.log.Warn("closing FileRedirectorChannel: "+what, args...)
	fc.shutdown()
	fc.ch.Close()
}

// write sends one message, waiting no longer than Config.WriteTimeout; a
// failure other than the channel being gone closes the instance. Only
// drain calls it, so there is one Write at a time.
func (fc *fileChan) write(b []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), fc.c.cfg.WriteTimeout)
	defer cancel()
	// A backend that does not give up when ctx does (a write stuck in a
	// carrier with no deadline) gets the instance closed all the same,
	// so that the replies queued behind this one give their bytes back.
	stuck := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(stuck)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			fc.log.Warn("write timed out; closing FileRedirectorChannel", "timeout", fc.c.cfg.WriteTimeout, "bytes", len(b))
			fc.shutdown()
			fc.ch.Close()
		}
	})
	err := fc.ch.Write(ctx, b)
	if errors.Is(err, dvc.ErrTooLarge) {
		// A reply with more data than the transport carries (a 16 MiB
		// read on a backend with a smaller ceiling). Only Read and
		// IOControl replies grow, and they share a layout (2.2.2.3.4,
		// 2.2.2.3.8): the request fails instead, and the instance lives.
		if h, herr := wire.ParseClientIOHeader(b); herr == nil && h.PacketType == wire.PacketTypeResponse {
			fc.log.Warn("reply too large for the transport; failing the request instead", "RequestId", h.RequestID, "bytes", len(b), "err", err)
			err = fc.ch.Write(ctx, wire.ReadReply{RequestID: h.RequestID, Result: device.ErrorNoSystemResources}.Append(nil))
		}
	}
	if !stop() {
		<-stuck // closed the instance, or saw cancel: nothing left to do
		return
	}
	if err != nil && !errors.Is(err, dvc.ErrClosed) && !errors.Is(err, dvc.ErrConnectionLost) {
		fc.log.Warn("write failed; closing FileRedirectorChannel", "err", err)
		fc.shutdown()
		fc.ch.Close()
	}
}
