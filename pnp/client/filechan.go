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
	evq           [][]byte       // custom events waiting to be written, in order
	evReady       bool           // the CreateFile Reply is out: events may follow
	evWriting     bool           // the instance's event writer is running
	io            sync.WaitGroup // operations using h
	handleClosing bool
	opening       bool // the open goroutine runs: it alone ends the handle
	handleOnce    sync.Once
	handleDone    chan struct{} // closed when h is closed, or will never be opened

	wmu sync.Mutex // one Write at a time
}

// op is one outstanding request.
type op struct {
	id     uint32
	fn     wire.FunctionID
	req    wire.Request    // owns its data (copied out of the message)
	fail   hresult.HRESULT // answer with this, without touching the device
	c      *Client
	cost   int64 // bytes reserved in c.buffered; guarded by fc.mu
	ctx    context.Context
	cancel context.CancelFunc
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
	if len(fc.pending) >= fc.c.cfg.MaxOutstanding {
		fc.mu.Unlock()
		fc.log.Warn("too many outstanding requests; refusing one", "RequestId", hdr.RequestID, "max", fc.c.cfg.MaxOutstanding)
		fc.write(errorReply(fn, hdr.RequestID, device.ErrorNoSystemResources))
		return
	}
	o := fc.newOpLocked(hdr, msg)
	if o == nil {
		fc.mu.Unlock()
		fc.log.Warn("too much data in requests in progress; refusing one", "RequestId", hdr.RequestID, "max", fc.c.cfg.MaxBufferedBytes)
		fc.write(errorReply(fn, hdr.RequestID, device.ErrorNoSystemResources))
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
	return o
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
	if h != nil {
		defer fc.io.Done()
	}
	reply, pooled := fc.service(o, h)
	fc.finish(o, reply)
	if pooled != nil {
		putBuf(pooled)
	}
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

// finish forgets o, then sends its reply: in that order, because once the
// server has the reply it may reuse the RequestId (2.2.2.1.1).
func (fc *fileChan) finish(o *op, reply []byte) {
	o.cancel()
	fc.mu.Lock()
	if fc.pending[o.id] == o {
		delete(fc.pending, o.id)
		fc.recent[fc.nrecent%recentIDs] = o.id
		fc.nrecent++
	}
	o.release() // also before the reply: the server may send more at once
	closed := fc.state == fileClosed
	fc.mu.Unlock()
	if !closed {
		fc.write(reply)
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
		// The device reads straight into the reply, where Data goes:
		// after CLIENT_IO_HEADER, Result and cbBytesRead (2.2.2.3.4).
		const dataAt = wire.ClientIOHeaderLen + 8
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
	fc.mu.Unlock()
	fc.log.Debug("FileRedirectorChannel capabilities", "server", req.Version, "client", fc.c.cfg.IOVersion, "customEvents", fc.events)
	fc.write(wire.ClientCapabilitiesReply{RequestID: req.RequestID, Version: fc.c.cfg.IOVersion}.Append(nil))
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
		fc.mu.Unlock()
		c.mu.Unlock()
		fc.log.Info("CreateFile refused", "DeviceId", req.DeviceID, "result", fail)
		fc.markHandleDone()
		fc.write(wire.CreateFileReply{RequestID: hdr.RequestID, Result: fail}.Append(nil))
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
	fc.write(wire.CreateFileReply{RequestID: o.id, Result: result}.Append(nil))
	fc.mu.Lock()
	if fc.state == fileOpen {
		fc.evReady = true
		fc.startEventsLocked()
	} else {
		fc.evq = nil // raised by a handle that is not open: never sent
	}
	fc.mu.Unlock()
	for i, q := range queued {
		go fc.run(q, handles[i])
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
	if (fc.state != fileOpen && fc.state != fileOpening) || !fc.events || len(fc.evq) >= MaxPendingEvents {
		return
	}
	fc.evq = append(fc.evq, b)
	fc.startEventsLocked()
}

// startEventsLocked starts the instance's event writer if events are
// waiting, may go out, and nobody writes them yet.
func (fc *fileChan) startEventsLocked() {
	if !fc.evReady || fc.evWriting || len(fc.evq) == 0 {
		return
	}
	fc.evWriting = true
	fc.c.wg.Add(1)
	go fc.writeEvents()
}

// writeEvents writes the queued events in order until none is left, or
// the handle is no longer open.
func (fc *fileChan) writeEvents() {
	defer fc.c.wg.Done()
	for {
		fc.mu.Lock()
		if fc.state != fileOpen || len(fc.evq) == 0 {
			if fc.state != fileOpen {
				fc.evq = nil
			}
			fc.evWriting = false
			fc.mu.Unlock()
			return
		}
		b := fc.evq[0]
		fc.evq[0] = nil
		fc.evq = fc.evq[1:]
		fc.mu.Unlock()
		fc.write(b)
	}
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
		o.release() // they will never run
	}
	fc.queued = nil
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

// write sends one message; a failure other than the channel being gone
// closes the instance.
func (fc *fileChan) write(b []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), fc.c.cfg.WriteTimeout)
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
	cancel()
	if err != nil && !errors.Is(err, dvc.ErrClosed) && !errors.Is(err, dvc.ErrConnectionLost) {
		fc.log.Warn("write failed; closing FileRedirectorChannel", "err", err)
		fc.shutdown()
		fc.ch.Close()
	}
}
