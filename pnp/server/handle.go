package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// OpenOption sets a field of the CreateFile Request that Open sends.
type OpenOption func(*wire.CreateFileRequest)

// Defaults of the CreateFile Request fields: what the section 4.4 capture
// of a Windows server shows.
const (
	DefaultDesiredAccess       = wire.GenericRead | wire.GenericWrite               // 0xC0000000 (Appendix A <9>)
	DefaultShareMode           = wire.FileShareRead | wire.FileShareWrite           // 0x00000003
	DefaultCreationDisposition = wire.OpenExisting                                  // Appendix A <10>
	DefaultFlagsAndAttributes  = wire.FileFlagOverlapped | wire.FileAttributeNormal // 0x40000080
)

// WithDesiredAccess sets dwDesiredAccess (wire.GenericRead, wire.GenericWrite).
func WithDesiredAccess(v uint32) OpenOption {
	return func(r *wire.CreateFileRequest) { r.DesiredAccess = v }
}

// WithShareMode sets dwShareMode (wire.FileShare* bits; 0 is exclusive).
func WithShareMode(v uint32) OpenOption {
	return func(r *wire.CreateFileRequest) { r.ShareMode = v }
}

// WithCreationDisposition sets dwCreationDisposition (wire.CreateNew ..
// wire.TruncateExisting).
func WithCreationDisposition(v uint32) OpenOption {
	return func(r *wire.CreateFileRequest) { r.CreationDisposition = v }
}

// WithFlagsAndAttributes sets dwFlagsAndAttributes.
func WithFlagsAndAttributes(v uint32) OpenOption {
	return func(r *wire.CreateFileRequest) { r.FlagsAndAttributes = v }
}

// Handle is an open file handle on a client device: one
// FileRedirectorChannel instance (2.1). Its methods are safe for
// concurrent use; concurrent calls are pipelined.
type Handle struct {
	s    *Server
	dev  uint32
	conn dvc.Conn
	log  *slog.Logger
	sem  chan struct{} // one token per outstanding request
	// wsem is the turn to write on conn: a one-slot semaphore rather
	// than a mutex, so that a call waiting behind a stalled write still
	// ends with its context.
	wsem chan struct{}

	mu      sync.Mutex
	pending map[uint32]*call // by RequestId, until the call returns
	next    uint8            // next CancelSafeRequestID index to try
	version uint16           // the client's Capabilities Reply Version; 0 before it
	dead    error
	done    chan struct{}
}

// call is one request from the moment its ID is taken until its caller
// returns: the ID stays taken that long, so that neither a late reply
// nor a cancel can meet a new request with the same ID.
type call struct {
	id         uint32
	fn         wire.FunctionID
	max        uint32 // cbBytesToRead, cbOut or cbWrite
	done       chan result
	completed  bool // a reply or a failure was delivered to done
	cancelSent bool
}

type result struct {
	rep wire.Reply
	err error
}

// Open opens the device with ClientDeviceID deviceID for the application:
// a new FileRedirectorChannel instance, the Server Capabilities Request and
// its reply (3.3.5.2.1), then the CreateFile Request (3.3.5.2.2.1) with the
// default fields changed by opts. A CreateFile Reply with a failure
// HRESULT is returned as an error carrying it (errors.As to
// *hresult.Error), and the channel is closed. If ctx ends first, the
// channel is closed and Open returns ctx.Err().
func (s *Server) Open(ctx context.Context, deviceID uint32, opts ...OpenOption) (*Handle, error) {
	req := wire.CreateFileRequest{
		DeviceID:            deviceID,
		DesiredAccess:       DefaultDesiredAccess,
		ShareMode:           DefaultShareMode,
		CreationDisposition: DefaultCreationDisposition,
		FlagsAndAttributes:  DefaultFlagsAndAttributes,
	}
	for _, o := range opts {
		o(&req)
	}
	s.mu.Lock()
	_, err := s.openableLocked(deviceID)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	h := &Handle{
		s:       s,
		dev:     deviceID,
		sem:     make(chan struct{}, MaxOutstanding),
		wsem:    make(chan struct{}, 1),
		pending: make(map[uint32]*call),
		done:    make(chan struct{}),
	}
	conn, err := s.op.Open(ctx, wire.ChannelFileRedirector, dvc.WithFramer(FileRedirectorFramer(h.lookup)))
	if err != nil {
		return nil, fmt.Errorf("pnp/server: open %s for device 0x%08X: %w", wire.ChannelFileRedirector, deviceID, err)
	}
	h.conn = conn
	h.log = s.cfg.Logger.With("channel", wire.ChannelFileRedirector, "channelId", conn.ID(), "device", deviceID)
	s.mu.Lock()
	d, err := s.openableLocked(deviceID)
	if err != nil {
		s.mu.Unlock()
		conn.Close()
		return nil, err
	}
	if d.handles == nil {
		d.handles = map[*Handle]struct{}{}
	}
	d.handles[h] = struct{}{}
	s.handles[h] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go h.readLoop()

	rep, err := h.do(ctx, &op{fn: wire.FunctionCapabilities, version: s.cfg.IOVersion}, false)
	if err != nil {
		h.terminate(ErrClosed)
		return nil, fmt.Errorf("pnp/server: capabilities on device 0x%08X: %w", deviceID, err)
	}
	h.mu.Lock()
	h.version = rep.(wire.ClientCapabilitiesReply).Version
	h.mu.Unlock()
	if _, err := h.do(ctx, &op{fn: wire.FunctionCreateFile, create: req}, false); err != nil {
		h.terminate(ErrClosed)
		return nil, fmt.Errorf("pnp/server: CreateFile on device 0x%08X: %w", deviceID, err)
	}
	return h, nil
}

func (s *Server) openableLocked(id uint32) (*device, error) {
	if s.err != nil {
		return nil, s.err
	}
	if !s.authSent {
		return nil, ErrNotAuthenticated
	}
	d, ok := s.devices[id]
	if !ok {
		return nil, fmt.Errorf("%w: 0x%08X", ErrNoDevice, id)
	}
	return d, nil
}

func (s *Server) forget(h *Handle) {
	s.mu.Lock()
	delete(s.handles, h)
	if d, ok := s.devices[h.dev]; ok {
		delete(d.handles, h)
	}
	s.mu.Unlock()
}

// DeviceID is the ClientDeviceID the handle was opened on.
func (h *Handle) DeviceID() uint32 { return h.dev }

// ChannelID is the ID of the handle's FileRedirectorChannel instance.
func (h *Handle) ChannelID() uint32 { return h.conn.ID() }

// ClientVersion is the Version of the client's Capabilities Reply
// (2.2.2.2.2).
func (h *Handle) ClientVersion() uint16 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.version
}

// Done is closed when the handle's channel has ended.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Err returns why the handle ended, nil while it is open.
func (h *Handle) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dead
}

// Close closes the handle's channel, which is how the protocol closes the
// file on the client. Calls still pending fail with ErrClosed.
func (h *Handle) Close() error {
	h.terminate(fmt.Errorf("%w: handle closed", ErrClosed))
	return nil
}

// Read reads up to n bytes at offset (Read Request, 2.2.2.3.3). The
// returned slice is the caller's. A failure HRESULT is returned as an
// error carrying it, with whatever data the reply had.
func (h *Handle) Read(ctx context.Context, offset uint64, n int) ([]byte, error) {
	if n < 0 || n > wire.MaxReadBytes {
		return nil, fmt.Errorf("pnp/server: read of %d bytes: want 0..%d", n, wire.MaxReadBytes)
	}
	rep, err := h.do(ctx, &op{fn: wire.FunctionRead, max: uint32(n), offset: offset}, true)
	r, _ := rep.(wire.ReadReply)
	return r.Data, err
}

// Write writes data at offset (Write Request, 2.2.2.3.5) and returns
// cbBytesWritten. A short count with S_OK is returned with
// io.ErrShortWrite; a count above len(data) is an error wrapping
// ErrProtocol (the channel stays open).
//
// When Config.MaxMessage is set and one Write Request for data would
// exceed it, data goes in several requests of at most MaxMessage bytes
// each, at increasing offsets, one after the other; Write returns the
// bytes written up to the first failure or short count, with its error.
// The write is then not one operation on the client: a failure can leave
// the first pieces written.
func (h *Handle) Write(ctx context.Context, offset uint64, data []byte) (int, error) {
	if len(data) > wire.MaxWriteBytes {
		return 0, fmt.Errorf("pnp/server: write of %d bytes: want at most %d", len(data), wire.MaxWriteBytes)
	}
	piece := len(data)
	if m := h.s.cfg.MaxMessage; m > 0 && (wire.WriteRequest{Data: data}).Len() > m {
		piece = m - (wire.WriteRequest{}).Len()
	}
	if piece <= 0 {
		return 0, fmt.Errorf("pnp/server: Config.MaxMessage %d cannot hold a Write Request: %w", h.s.cfg.MaxMessage, dvc.ErrTooLarge)
	}
	if piece >= len(data) {
		return h.write(ctx, offset, data)
	}
	total := 0
	for len(data) > 0 {
		n := min(piece, len(data))
		w, err := h.write(ctx, offset, data[:n])
		total += w
		if err != nil {
			return total, err
		}
		offset += uint64(n)
		data = data[n:]
	}
	return total, nil
}

// write sends one Write Request.
func (h *Handle) write(ctx context.Context, offset uint64, data []byte) (int, error) {
	rep, err := h.do(ctx, &op{fn: wire.FunctionWrite, max: uint32(len(data)), offset: offset, data: data}, true)
	r, _ := rep.(wire.WriteReply)
	n := r.BytesWritten
	if n > uint32(len(data)) {
		return 0, protocolError(fmt.Errorf("WriteReply cbBytesWritten %d > cbWrite %d", n, len(data)))
	}
	if err == nil && int(n) < len(data) {
		err = io.ErrShortWrite
	}
	return int(n), err
}

// IoControl sends the I/O control code with input in and an output buffer
// of outMax bytes (IOControl Request, 2.2.2.3.7) and returns the output
// the client sent back, at most outMax bytes (a reply with more closes the
// channel, 3.3.5.2.2.8). No initial output buffer contents are sent.
func (h *Handle) IoControl(ctx context.Context, code uint32, in []byte, outMax int) ([]byte, error) {
	if len(in) > wire.MaxIOControlBytes || outMax < 0 || outMax > wire.MaxIOControlBytes {
		return nil, fmt.Errorf("pnp/server: IoControl with %d bytes in, %d out: want at most %d each", len(in), outMax, wire.MaxIOControlBytes)
	}
	if m, n := h.s.cfg.MaxMessage, (wire.IOControlRequest{DataIn: in}).Len(); m > 0 && n > m {
		// Unlike a write, an IOCTL's input cannot be cut into pieces.
		return nil, fmt.Errorf("pnp/server: IOControl Request of %d bytes (%d of input) is over Config.MaxMessage %d: %w", n, len(in), m, dvc.ErrTooLarge)
	}
	rep, err := h.do(ctx, &op{fn: wire.FunctionIOControl, max: uint32(outMax), code: code, data: in}, true)
	r, _ := rep.(wire.IOControlReply)
	return r.Data, err
}

// op is the request a call sends, less its RequestId.
type op struct {
	fn      wire.FunctionID
	version uint16 // Capabilities
	max     uint32
	offset  uint64
	code    uint32
	data    []byte
	create  wire.CreateFileRequest
}

func (o *op) append(id uint32, b []byte) []byte {
	switch o.fn {
	case wire.FunctionCapabilities:
		return wire.ServerCapabilitiesRequest{RequestID: id, Version: o.version}.Append(b)
	case wire.FunctionCreateFile:
		r := o.create
		r.RequestID = id
		return r.Append(b)
	case wire.FunctionRead:
		return wire.ReadRequest{RequestID: id, BytesToRead: o.max, Offset: o.offset}.Append(b)
	case wire.FunctionWrite:
		return wire.WriteRequest{RequestID: id, Offset: o.offset, Data: o.data}.Append(b)
	case wire.FunctionIOControl:
		return wire.IOControlRequest{RequestID: id, IoCode: o.code, OutputBufferSize: o.max, DataIn: o.data}.Append(b)
	}
	panic("pnp/server: no request for " + o.fn.String())
}

// stub is a request with the fields CheckReply needs.
func (c *call) stub() wire.Request {
	switch c.fn {
	case wire.FunctionRead:
		return wire.ReadRequest{RequestID: c.id, BytesToRead: c.max}
	case wire.FunctionIOControl:
		return wire.IOControlRequest{RequestID: c.id, OutputBufferSize: c.max}
	case wire.FunctionWrite:
		return wire.WriteRequest{RequestID: c.id}
	case wire.FunctionCreateFile:
		return wire.CreateFileRequest{RequestID: c.id}
	}
	return wire.ServerCapabilitiesRequest{RequestID: c.id}
}

func resultOf(rep wire.Reply) hresult.HRESULT {
	switch r := rep.(type) {
	case wire.ReadReply:
		return r.Result
	case wire.WriteReply:
		return r.Result
	case wire.IOControlReply:
		return r.Result
	case wire.CreateFileReply:
		return r.Result
	}
	return hresult.S_OK
}

// do sends one request and waits for its reply. It returns the reply
// (even with an error, for partial data) and an error for a failure
// HRESULT, a dead channel or a cancelled context. Calls that are not
// cancellable (capabilities, CreateFile: Open) close the channel when
// ctx ends instead of sending an IoCancel.
func (h *Handle) do(ctx context.Context, o *op, cancellable bool) (wire.Reply, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case h.sem <- struct{}{}:
	case <-h.done:
		return nil, h.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-h.sem }()
	c := &call{fn: o.fn, max: o.max, done: make(chan result, 1)}
	h.mu.Lock()
	if h.dead != nil {
		err := h.dead
		h.mu.Unlock()
		return nil, err
	}
	c.id = h.allocLocked()
	h.pending[c.id] = c
	h.mu.Unlock()
	defer h.release(c)

	if err := ctx.Err(); err != nil {
		return nil, err // nothing sent yet
	}
	// Waiting for the turn to write honours ctx: nothing is sent yet.
	if err := h.lockW(ctx); err != nil {
		return nil, err
	}
	// From here on the call ends only with its reply or the handle's end,
	// and once ctx has ended, the watchdog bounds how long that takes.
	wctx, wd := h.watch(ctx, o.fn, cancellable)
	defer wd.stop()
	bp := getBuf()
	*bp = o.append(c.id, (*bp)[:0])
	// Not ctx: a write abandoned halfway would leave it unknown whether
	// the client got the request. A ctx that ends meanwhile is seen
	// below, once the request is out, and cancels it the protocol's way;
	// a write still stuck CancelTimeout after that is ended with the
	// handle (wctx is cancelled and the channel closed).
	err := h.conn.Write(wctx, *bp)
	h.unlockW()
	putBuf(bp)
	switch {
	case err == nil:
	case errors.Is(err, dvc.ErrTooLarge):
		// Refused before anything was sent: only this call fails.
		return nil, fmt.Errorf("pnp/server: send %v: %w", o.fn, err)
	default:
		// Whether the peer got the request is unknown, so its ID can
		// never be trusted again: the handle ends.
		h.terminate(fmt.Errorf("%w: send %v: %w", ErrChannelLost, o.fn, err))
	}

	var r result
	select {
	case r = <-c.done:
		return r.rep, h.check(o.fn, r, nil)
	case <-ctx.Done():
	}
	if !cancellable {
		h.terminate(fmt.Errorf("%w: %v abandoned: %w", ErrClosed, o.fn, ctx.Err()))
		r = <-c.done
		return nil, ctx.Err()
	}
	// The watchdog bounds both the IoCancel and the wait for the reply:
	// when it fires, the handle ends and c.done gets its failure.
	h.cancel(wctx, c)
	r = <-c.done
	return r.rep, h.check(o.fn, r, ctx.Err())
}

// lockW takes the turn to write on the channel, unless ctx or the handle
// ends first.
func (h *Handle) lockW(ctx context.Context) error {
	select {
	case h.wsem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-h.done:
		return h.Err()
	}
}

func (h *Handle) unlockW() { <-h.wsem }

// watchdog bounds a call once its context has ended: a cancellable call
// then has Config.CancelTimeout to finish (its request's write, its
// IoCancel, its reply), a call that is not cancellable (Open's) none.
// Past that the handle is terminated, which closes the channel and fails
// the call, and the context the call's writes use is cancelled: a write
// stuck under a client that stopped reading cannot be abandoned halfway
// without breaking the framing, but it can end with the handle.
type watchdog struct {
	h           *Handle
	fn          wire.FunctionID
	cause       context.Context // the call's
	d           time.Duration
	cancellable bool
	cancel      context.CancelFunc // of the writes' context
	detach      func() bool        // context.AfterFunc's stop

	mu      sync.Mutex
	stopped bool
	timer   *time.Timer
}

// watch arms a call's watchdog and returns the context for the call's
// writes: ctx's values, without its cancellation. A nil watchdog (ctx
// never ends, or CancelTimeout is negative: wait forever) does nothing.
func (h *Handle) watch(ctx context.Context, fn wire.FunctionID, cancellable bool) (context.Context, *watchdog) {
	d := h.s.cfg.CancelTimeout
	if !cancellable {
		d = 0
	}
	wctx := context.WithoutCancel(ctx)
	if ctx.Done() == nil || d < 0 {
		return wctx, nil
	}
	w := &watchdog{h: h, fn: fn, cause: ctx, d: d, cancellable: cancellable}
	wctx, w.cancel = context.WithCancel(wctx)
	w.detach = context.AfterFunc(ctx, w.arm)
	return wctx, w
}

// arm runs when the call's context ends.
func (w *watchdog) arm() {
	if w.d == 0 {
		w.fire()
		return
	}
	w.mu.Lock()
	if !w.stopped {
		w.timer = time.AfterFunc(w.d, w.fire)
	}
	w.mu.Unlock()
}

func (w *watchdog) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.stopped = true
	if w.cancellable {
		w.h.terminate(fmt.Errorf("%w (%v after the call's context ended)", ErrCancelTimeout, w.d))
	} else {
		w.h.terminate(fmt.Errorf("%w: %v abandoned: %w", ErrClosed, w.fn, w.cause.Err()))
	}
	w.cancel()
}

// stop disarms the watchdog: after it returns, it never fires.
func (w *watchdog) stop() {
	if w == nil {
		return
	}
	w.detach()
	w.mu.Lock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
	w.cancel()
}

// bufs recycles request buffers: a channel does not keep a message after
// Write returns. Buffers over maxPooledBuf (large writes) are left to the
// garbage collector rather than kept.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxPooledBuf = 64 << 10

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		bufs.Put(b)
	}
}

// check turns a call's result into its error: the failure that ended the
// channel, or the reply's failure HRESULT; cancelled (ctx.Err() of a
// cancelled call) is wrapped too, unless the reply reports success.
func (h *Handle) check(fn wire.FunctionID, r result, cancelled error) error {
	err := r.err
	if err == nil {
		if res := resultOf(r.rep); res.Failed() {
			err = &hresult.Error{Code: res, Op: "pnp " + fn.String()}
		}
	}
	if err != nil && cancelled != nil {
		return fmt.Errorf("%w: %w", cancelled, err)
	}
	return err
}

// allocLocked takes the next free CancelSafeRequestID, round-robin. The
// semaphore guarantees one is free.
func (h *Handle) allocLocked() uint32 {
	for range MaxOutstanding {
		id := wire.CancelSafeRequestID(h.next)
		h.next = uint8((int(h.next) + 1) % MaxOutstanding)
		if _, used := h.pending[id]; !used {
			return id
		}
	}
	panic("pnp/server: no free RequestId although the semaphore allowed one")
}

func (h *Handle) release(c *call) {
	h.mu.Lock()
	delete(h.pending, c.id)
	h.mu.Unlock()
}

// cancel sends the one Specific IoCancel Request for c (3.3.5.2.2.9), if
// c is still waiting for its reply. ctx is the call's watchdog context.
func (h *Handle) cancel(ctx context.Context, c *call) {
	h.mu.Lock()
	if c.completed || c.cancelSent || h.dead != nil {
		h.mu.Unlock()
		return
	}
	c.cancelSent = true
	h.mu.Unlock()
	m := wire.NewSpecificIoCancelRequest(CancelRequestID, c.id)
	m.UnusedBits = 0xFF // as the section 4.4 capture sends it; ignored by receivers
	// The turn to write waits for a stalled write at most until the
	// watchdog ends the handle.
	if h.lockW(context.Background()) != nil {
		return
	}
	err := h.conn.Write(ctx, m.Append(nil))
	h.unlockW()
	if err != nil {
		h.terminate(fmt.Errorf("%w: send IoCancel: %w", ErrChannelLost, err))
	}
}

// lookup is the FileRedirectorFramer's view of the outstanding requests.
func (h *Handle) lookup(id uint32) (wire.FunctionID, uint32, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.pending[id]
	if c == nil || c.completed {
		return 0, 0, false
	}
	return c.fn, c.max, true
}

func (h *Handle) readLoop() {
	defer h.s.wg.Done()
	for {
		msg, err := h.conn.Read(context.Background())
		if err != nil {
			h.terminate(lostError(wire.ChannelFileRedirector, err))
			return
		}
		if err := h.receive(msg); err != nil {
			h.log.Warn("pnp/server: closing the channel", "err", err)
			h.terminate(err)
			return
		}
	}
}

// receive handles one message from the client; an error closes the
// channel.
func (h *Handle) receive(msg []byte) error {
	hdr, err := wire.ParseClientIOHeader(msg)
	if err != nil {
		return protocolError(err)
	}
	switch hdr.PacketType {
	case wire.PacketTypeResponse:
	case wire.PacketTypeCustomEvent:
		h.customEvent(msg)
		return nil
	default:
		return protocolError(fmt.Errorf("CLIENT_IO_HEADER PacketType 0x%02X is neither RESPONSE_PACKET nor CUSTOM_EVENT_PACKET (2.2.2.1.2)", uint8(hdr.PacketType)))
	}
	h.mu.Lock()
	c := h.pending[hdr.RequestID]
	if c == nil || c.completed {
		h.mu.Unlock()
		// 3.3.5.2.2: a reply whose Request ID is not outstanding MUST
		// be ignored.
		h.log.Debug("pnp/server: ignored a reply to a RequestId that is not outstanding", "requestId", hdr.RequestID)
		return nil
	}
	h.mu.Unlock()
	rep, err := wire.ParseReply(msg, c.fn)
	if err != nil {
		return protocolError(err)
	}
	if err := wire.CheckReply(c.stub(), rep); err != nil {
		return protocolError(err) // 3.3.5.2.2.8
	}
	h.mu.Lock()
	if caps, ok := rep.(wire.ClientCapabilitiesReply); ok {
		h.version = caps.Version
	}
	if c.completed {
		h.mu.Unlock()
		return nil
	}
	c.completed = true
	h.mu.Unlock()
	c.done <- result{rep: rep}
	return nil
}

func (h *Handle) customEvent(msg []byte) {
	h.mu.Lock()
	v := h.version
	h.mu.Unlock()
	// 3.3.5.2.2.10: processed only if both ends run version 6 or later;
	// before the Capabilities Reply the client's version is unknown
	// (3.3.5.2.1.2: it MUST come first).
	if v == 0 || !wire.CustomEventsAllowed(h.s.cfg.IOVersion, v) {
		h.log.Debug("pnp/server: ignored a custom event: versions do not allow it", "server", h.s.cfg.IOVersion, "client", v)
		return
	}
	ev, err := wire.ParseClientDeviceCustomEvent(msg)
	if err != nil {
		h.log.Warn("pnp/server: ignored a malformed custom event", "err", err)
		return
	}
	if !h.s.deliver(CustomEvent{DeviceID: h.dev, Handle: h, GUID: ev.CustomEventGUID, Data: ev.Data}) {
		h.log.Debug("pnp/server: ignored a custom event nobody subscribed to", "guid", ev.CustomEventGUID)
	}
}

// terminate ends the handle with err: the channel is closed and every
// pending call fails with err. Only the first call counts.
func (h *Handle) terminate(err error) {
	h.mu.Lock()
	if h.dead != nil {
		h.mu.Unlock()
		return
	}
	h.dead = err
	var fail []*call
	for _, c := range h.pending {
		if !c.completed {
			c.completed = true
			fail = append(fail, c)
		}
	}
	h.mu.Unlock()
	close(h.done)
	h.conn.Close()
	h.s.forget(h)
	for _, c := range fail {
		c.done <- result{err: err}
	}
}
