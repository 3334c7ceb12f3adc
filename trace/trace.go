// Package trace records what dynamic virtual channels carry, on any
// backend, as one line of JSON per event (the format is in docs/trace.md),
// and reads such records back. A Recorder wraps the channel API itself (a
// dvc.Opener on the server side, a dvc.Registrar on the client side), so
// the same trace comes from the portable transport, xrdp, FreeRDP or
// Windows; `rdpdvc proxy` records the MS-RDPEDYC PDUs of a portable
// connection in the same format, under the channel name "DRDYNVC".
package trace

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// Side is who sent a message: the RDP server side (the program in the
// session, which opens channels) or the client side (where listeners
// are).
type Side string

const (
	Server Side = "server"
	Client Side = "client"
)

// Other is the side at the other end.
func (s Side) Other() Side {
	if s == Server {
		return Client
	}
	return Server
}

// Kind is what an Event reports.
type Kind string

const (
	Open   Kind = "open"   // a channel instance opened (From: who asked)
	Refuse Kind = "refuse" // an open the client refused (Status)
	Data   Kind = "data"   // one message (From: who sent it)
	Close  Kind = "close"  // the instance closed (From: who closed it, or Err)
	// Fail follows the Data record of a Write that failed (Err): the
	// message was recorded as it went to the backend, before the outcome
	// was known, so that nothing the peer sent in answer precedes it.
	Fail Kind = "fail"
)

// Channel is the name proxy records MS-RDPEDYC PDUs under (the static
// virtual channel that carries them, MS-RDPEDYC 1.3).
const Channel = "DRDYNVC"

// MaxLine is the longest record Reader accepts: a 16 MiB message in hex
// and the fields around it.
const MaxLine = 2*(16<<20) + 4096

// Event is one record.
type Event struct {
	Time    time.Time `json:"time"`
	From    Side      `json:"from"`
	Kind    Kind      `json:"event"`
	Channel string    `json:"channel"`
	ID      uint32    `json:"id"`
	// Len is len(Data): kept so that a reader can check the record.
	Len    int             `json:"len"`
	Data   HexBytes        `json:"data,omitempty"`
	Status hresult.HRESULT `json:"status,omitempty"` // for Refuse
	Err    string          `json:"error,omitempty"`  // for Close on an error
	// Conn numbers the connections of a trace that holds several (rdpdvc
	// proxy: 1, 2, ... in the order accepted); 0 when there is one.
	Conn int `json:"conn,omitempty"`
}

// HexBytes marshals as a hex string.
type HexBytes []byte

func (b HexBytes) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 2*len(b)+2)
	out = append(out, '"')
	out = hex.AppendEncode(out, b)
	return append(out, '"'), nil
}

func (b *HexBytes) UnmarshalJSON(j []byte) error {
	var s string
	if err := json.Unmarshal(j, &s); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	*b = d
	return nil
}

// Parse decodes one record and checks it: a known event and side, a
// channel name, and len matching the data.
func Parse(line []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(line, &e); err != nil {
		return Event{}, fmt.Errorf("trace: record: %w", err)
	}
	switch e.Kind {
	case Open, Refuse, Data, Close, Fail:
	default:
		return Event{}, fmt.Errorf("trace: record.event: %q is not open, refuse, data, close or fail", e.Kind)
	}
	if e.From != Server && e.From != Client {
		return Event{}, fmt.Errorf("trace: record.from: %q is not server or client", e.From)
	}
	if e.Channel == "" {
		return Event{}, errors.New("trace: record.channel: empty")
	}
	if e.Len != len(e.Data) {
		return Event{}, fmt.Errorf("trace: record.len: %d, but data has %d bytes", e.Len, len(e.Data))
	}
	return e, nil
}

// Reader reads records one by one.
type Reader struct {
	br   *bufio.Reader
	line int
	err  error // the read error that ended the input
}

// RecordError is a record Reader could not take: a line that does not
// parse, or one over MaxLine. Next returns it and goes on with the next
// line; any other error from Next is the input's own and ends it.
type RecordError struct {
	Line int // 1-based
	Err  error
}

func (e *RecordError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *RecordError) Unwrap() error { return e.Err }

// ErrLineTooLong is a RecordError's Err for a line over MaxLine bytes.
var ErrLineTooLong = fmt.Errorf("trace: record over %d bytes", MaxLine)

// NewReader reads records from r; a record may be at most MaxLine bytes.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next record, io.EOF after the last, a *RecordError for
// a line that is not a record (Next may be called again to go on after
// it), or the error that stopped reading the input.
func (r *Reader) Next() (Event, error) {
	for {
		b, tooLong, err := r.readLine()
		if b == nil && !tooLong {
			return Event{}, err
		}
		r.line++
		if tooLong {
			return Event{}, &RecordError{Line: r.line, Err: ErrLineTooLong}
		}
		if len(b) == 0 {
			continue
		}
		e, perr := Parse(b)
		if perr != nil {
			return Event{}, &RecordError{Line: r.line, Err: perr}
		}
		return e, nil
	}
}

// readLine returns the next line without its newline, or nil and the end
// (io.EOF or the read error). A line over MaxLine is skipped to its end
// without being held: tooLong reports it.
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	if r.err != nil {
		return nil, false, r.err
	}
	var buf []byte
	for {
		frag, err := r.br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(frag) > MaxLine+1 { // +1: the newline
				tooLong, buf = true, nil
			} else {
				buf = append(buf, frag...)
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, true, nil
			}
			return bytes.TrimSuffix(buf[:len(buf)-1], []byte("\r")), false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			r.err = err
			if tooLong {
				return nil, true, nil
			}
			if len(buf) > 0 { // a last line without a newline
				return buf, false, nil
			}
			return nil, false, err
		}
	}
}

// Recorder writes events, one JSON line each, safe for concurrent use.
// Each line is written whole, with one Write, and flushed at once: a
// trace read while the program runs, or after it was killed, is whole up
// to its last line. Conn gives a view of the same file for one of several
// connections.
type Recorder struct {
	*sink
	side Side
	conn int // stamped on every record when not 0
}

// sink is the file every view of a Recorder shares.
type sink struct {
	mu     sync.Mutex
	w      io.Writer
	c      io.Closer
	now    func() time.Time
	err    error
	buf    []byte
	closed bool
}

// New returns a Recorder writing to w, for a program on side side.
func New(w io.Writer, side Side) *Recorder {
	return &Recorder{sink: &sink{w: w, now: time.Now}, side: side}
}

// Create opens (truncating) the file at path for a Recorder.
func Create(path string, side Side) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	r := New(f, side)
	r.c = f
	return r, nil
}

// Side is the side the Recorder's program is on.
func (r *Recorder) Side() Side { return r.side }

// Conn returns a Recorder writing to the same file whose records carry
// conn n (Event.Conn), for a program with several connections at once
// (their channel ids would otherwise be told apart by nothing). A nil
// Recorder returns nil.
func (r *Recorder) Conn(n int) *Recorder {
	if r == nil {
		return nil
	}
	return &Recorder{sink: r.sink, side: r.side, conn: n}
}

// Record writes e, with the time filled in when it is zero. The first
// write error is kept (Err) and stops the recording; the channels go on.
func (r *Recorder) Record(e Event) {
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	if e.Conn == 0 {
		e.Conn = r.conn
	}
	e.Len = len(e.Data)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil || r.closed {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		r.err = err
		return
	}
	r.buf = append(append(r.buf[:0], b...), '\n')
	if _, err := r.w.Write(r.buf); err != nil {
		r.err = fmt.Errorf("trace: %w", err)
	}
}

// Err is the first error that stopped the recording, if any.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close stops recording (every view) and closes the file Create opened.
func (r *Recorder) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.err
	}
	r.closed = true
	if r.c != nil {
		if err := r.c.Close(); err != nil && r.err == nil {
			r.err = err
		}
	}
	return r.err
}

func (r *Recorder) event(k Kind, from Side, ch dvc.Channel, data []byte, err error) {
	e := Event{Kind: k, From: from, Channel: ch.Name(), ID: ch.ID(), Data: data}
	if err != nil && !errors.Is(err, io.EOF) {
		e.Err = err.Error()
	}
	r.Record(e)
}

// Opener returns op, recording every channel it opens: the open, each
// message each way (Write and Read), and the close.
// A nil Recorder returns op itself, so that a program can wrap
// unconditionally.
func (r *Recorder) Opener(op dvc.Opener) dvc.Opener {
	if r == nil {
		return op
	}
	o := &opener{op: op, r: r}
	if d, ok := op.(doner); ok {
		// Keep what an opener that can tell the connection's end says
		// (pnp/server removes the devices at it).
		return struct {
			*opener
			doner
		}{o, d}
	}
	return o
}

// doner is an Opener that reports the end of its connection.
type doner interface{ Done() <-chan struct{} }

type opener struct {
	op dvc.Opener
	r  *Recorder
}

func (o *opener) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	c, err := o.op.Open(ctx, name, opts...)
	if err != nil {
		var oe *dvc.OpenError
		if errors.As(err, &oe) {
			o.r.Record(Event{Kind: Refuse, From: Client, Channel: name, Status: oe.Status})
		}
		return nil, err
	}
	o.r.event(Open, Server, c, nil, nil)
	return &conn{channel: &channel{Channel: c, r: o.r, side: Server}, in: c}, nil
}

// conn is a traced server-side channel: Write and Close as channel's,
// and Read, whose messages come from the client.
type conn struct {
	*channel
	in dvc.Conn
}

func (c *conn) Read(ctx context.Context) ([]byte, error) {
	msg, err := c.in.Read(ctx)
	switch {
	case err == nil:
		c.r.event(Data, c.side.Other(), c.in, msg, nil)
	case errors.Is(err, io.EOF) || errors.Is(err, dvc.ErrConnectionLost):
		c.once.Do(func() { c.r.event(Close, c.side.Other(), c.in, nil, err) })
	}
	return msg, err
}

// Registrar returns reg, recording every channel its listeners accept:
// the open, each message each way (Received and Write), and the close.
// A nil Recorder returns reg itself.
func (r *Recorder) Registrar(reg dvc.Registrar) dvc.Registrar {
	if r == nil {
		return reg
	}
	return &registrar{reg: reg, r: r}
}

type registrar struct {
	reg dvc.Registrar
	r   *Recorder
}

// OnTerminate passes f on to the wrapped registrar when it has such a
// hook (freerdp.Host: features close their state when the plugin ends),
// and otherwise drops it.
func (g *registrar) OnTerminate(f func()) {
	if t, ok := g.reg.(interface{ OnTerminate(func()) }); ok {
		t.OnTerminate(f)
	}
}

func (g *registrar) Listen(name string, l dvc.Listener) error {
	return g.reg.Listen(name, dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		tc := &channel{Channel: ch, r: g.r, side: Client}
		h, err := kit.Accept(l, tc) // neither a Handler nor an error is a refusal
		if err != nil {
			g.r.Record(Event{Kind: Refuse, From: Client, Channel: ch.Name(), ID: ch.ID(), Status: dvc.StatusOf(err)})
			return nil, err
		}
		g.r.event(Open, Server, ch, nil, nil)
		return &handler{h: h, ch: tc}, nil
	}))
}

// channel is a traced channel instance of this program's side: what it
// writes and its own Close are recorded as side's.
type channel struct {
	dvc.Channel
	r    *Recorder
	side Side
	once sync.Once // one Close record, whoever closes first
}

// Write records msg before passing it on: a peer may answer before
// Write returns, and its answer must not come first in the trace. A
// failed Write adds a Fail record.
func (c *channel) Write(ctx context.Context, msg []byte) error {
	c.r.event(Data, c.side, c.Channel, msg, nil)
	err := c.Channel.Write(ctx, msg)
	if err != nil {
		c.r.event(Fail, c.side, c.Channel, nil, err)
	}
	return err
}

func (c *channel) Close() error {
	c.once.Do(func() { c.r.event(Close, c.side, c.Channel, nil, nil) })
	return c.Channel.Close()
}

type handler struct {
	h  dvc.Handler
	ch *channel
}

func (h *handler) Received(msg []byte) {
	h.ch.r.event(Data, h.ch.side.Other(), h.ch.Channel, msg, nil)
	h.h.Received(msg)
}

func (h *handler) Closed(err error) {
	h.ch.once.Do(func() { h.ch.r.event(Close, h.ch.side.Other(), h.ch.Channel, nil, err) })
	h.h.Closed(err)
}
