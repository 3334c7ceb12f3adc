package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/echo"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
	"github.com/rdpdvc/rdpdvc/simple"
	"github.com/rdpdvc/rdpdvc/trace"
)

// A trace (package trace, docs/trace.md) decoded: one line per record,
//
//	20:40:01.123456 server→client dvc::sample::simpleplugin#3 data 5140 {...}
//
// with the message decoded by its channel's own protocol: MS-RDPEDYC for
// DRDYNVC records (rdpdvc proxy), whose DATA PDUs are then reassembled and
// decoded by the channel their CREATE_REQ named; Simple frames, ECHO
// (MS-RDPEECO), PNPDR and FileRedirectorChannel (MS-RDPEPNP); hex for
// any other channel.

// maxTraceReassembly bounds one DRDYNVC message being reassembled from
// DATA_FIRST and DATA records: the size a trace record can hold.
const maxTraceReassembly = 16 << 20

// The decoder's state per connection is bounded too, since rdpdvc proxy
// runs it on what a peer sends: channel names it follows (the session's
// own ceiling, session.DefaultMaxChannels), FileRedirectorChannel requests
// awaiting a reply, and bytes held in DRDYNVC reassembly across channels.
// Past a ceiling the decoder only stops following (a name, a request, a
// message): every record is still printed.
const (
	maxTraceNames   = 8192
	maxTracePending = 4096
	maxTraceHeld    = 64 << 20
)

// runDecodeTrace is rdpdvc decode -trace FILE.
func runDecodeTrace(path, channel string, full bool, nargs int, stdout, stderr io.Writer) int {
	if nargs > 0 {
		fmt.Fprintln(stderr, "rdpdvc decode: -trace takes no HEX arguments")
		return 2
	}
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc decode:", err)
			return 1
		}
		defer f.Close()
		r = f
	}
	d := newTraceDecoder(stdout, channel)
	d.full = full
	if err := d.run(r); err != nil {
		fmt.Fprintln(stderr, "rdpdvc decode: -trace:", err)
		return 1
	}
	if d.errs > 0 {
		fmt.Fprintf(stderr, "rdpdvc decode: %d of %d records did not parse\n", d.errs, d.records+d.errs)
		return 1
	}
	return 0
}

type traceDecoder struct {
	out    io.Writer
	filter string // a channel name (or "DRDYNVC"); empty for all
	names  map[uint32]string
	// FileRedirectorChannel requests by channel instance and RequestId,
	// for the replies, which do not say what they answer (MS-RDPEPNP
	// 2.2.2.1.2).
	pending map[[2]uint32]wire.FunctionID
	parts   map[[2]uint32]*partial // DRDYNVC reassembly, by sender and ChannelId
	held    int                    // bytes in parts
	records int
	errs    int
	full    bool // print long byte strings whole (-full)
	conns   map[int]*traceDecoder
}

type partial struct {
	total int
	got   int
	buf   []byte
	skip  bool // over maxTraceHeld: counted, not kept, not decoded
}

func newTraceDecoder(out io.Writer, filter string) *traceDecoder {
	return &traceDecoder{out: out, filter: filter, names: map[uint32]string{},
		pending: map[[2]uint32]wire.FunctionID{}, parts: map[[2]uint32]*partial{}}
}

// run decodes every record of r; it returns an error only when r cannot
// be read, and counts records that do not parse or decode (reported, and
// the decoding goes on).
func (d *traceDecoder) run(r io.Reader) error {
	tr := trace.NewReader(r)
	for {
		e, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var re *trace.RecordError
			if !errors.As(err, &re) {
				return err // the input itself failed
			}
			d.errs++
			fmt.Fprintf(d.out, "# %v\n", err)
			continue
		}
		d.records++
		d.forConn(e.Conn).record(e)
	}
}

// forConn is the decoder of connection n's records: channel ids, names
// and outstanding requests are each connection's own (Event.Conn).
func (d *traceDecoder) forConn(n int) *traceDecoder {
	if n == 0 {
		return d
	}
	if d.conns == nil {
		d.conns = map[int]*traceDecoder{}
	}
	c, ok := d.conns[n]
	if !ok {
		c = newTraceDecoder(d.out, d.filter)
		c.full = d.full
		d.conns[n] = c
	}
	return c
}

func sender(s trace.Side) drdynvc.Sender {
	if s == trace.Server {
		return drdynvc.FromServer
	}
	return drdynvc.FromClient
}

func (d *traceDecoder) record(e trace.Event) {
	if e.Channel == trace.Channel {
		d.drdynvc(e)
		return
	}
	if e.Kind == trace.Close {
		d.forget(e.ID)
	}
	if d.filter != "" && d.filter != e.Channel {
		return
	}
	d.line(e, e.Channel, e.ID, d.message(e.Channel, e.ID, e.From, e.Data, e.Kind))
}

// forget drops what the decoder follows for a channel instance that
// closed: its outstanding requests (a new instance may reuse the id).
func (d *traceDecoder) forget(id uint32) {
	for k := range d.pending {
		if k[0] == id {
			delete(d.pending, k)
		}
	}
}

// dropPart ends the reassembly of k, if any.
func (d *traceDecoder) dropPart(k [2]uint32) {
	if pt, ok := d.parts[k]; ok {
		d.held -= len(pt.buf)
		delete(d.parts, k)
	}
}

// line prints one record.
func (d *traceDecoder) line(e trace.Event, channel string, id uint32, decoded string) {
	what := string(e.Kind)
	switch e.Kind {
	case trace.Data:
		what = fmt.Sprintf("data %d", e.Len)
	case trace.Refuse:
		what = "refuse " + e.Status.String()
	case trace.Fail:
		what = "fail (" + e.Err + ")"
	case trace.Close:
		if e.Err != "" {
			what = "close (" + e.Err + ")"
		}
	}
	if e.Conn != 0 {
		fmt.Fprintf(d.out, "[%d] ", e.Conn)
	}
	fmt.Fprintf(d.out, "%s %s→%s %s#%d %s", e.Time.Format("15:04:05.000000"), e.From, e.From.Other(), channel, id, what)
	if decoded != "" {
		fmt.Fprintf(d.out, " %s", decoded)
	}
	fmt.Fprintln(d.out)
}

// message decodes one message of channel name by that channel's protocol.
func (d *traceDecoder) message(name string, id uint32, from trace.Side, b []byte, k trace.Kind) string {
	if k != trace.Data {
		return ""
	}
	o := decodeOptions{from: sender(from)}
	var v any
	var err error
	switch name {
	case simple.ChannelName:
		v, err = decodeSimple(b, o)
	case echo.ChannelName:
		// MS-RDPEECO 2.2.1: the request and the response carry the same
		// bytes.
		v = map[string]any{"message": "ECHO_" + map[trace.Side]string{trace.Server: "REQUEST", trace.Client: "RESPONSE"}[from], "data": drdynvc.Bytes(b)}
	case wire.ChannelPNPDR:
		v, err = decodePNPDR(b, o)
	case wire.ChannelFileRedirector:
		v, err = d.fileRedirector(id, from, b)
	default:
		v = map[string]any{"data": drdynvc.Bytes(b)}
	}
	return d.compact(v, err)
}

func (d *traceDecoder) fileRedirector(id uint32, from trace.Side, b []byte) (any, error) {
	o := decodeOptions{from: sender(from)}
	if from == trace.Server {
		if h, err := wire.ParseServerIOHeader(b); err == nil && len(d.pending) < maxTracePending {
			d.pending[[2]uint32{id, h.RequestID}] = h.FunctionID
		}
		m, err := wire.ParseFileRedirector(wire.ServerToClient, b, 0)
		return pnpResult(wire.ChannelFileRedirector, b, o, m, err)
	}
	var fn wire.FunctionID
	if h, err := wire.ParseClientIOHeader(b); err == nil && h.PacketType != wire.PacketTypeCustomEvent {
		k := [2]uint32{id, h.RequestID}
		f, ok := d.pending[k]
		if !ok {
			return map[string]any{"message": "reply to no request in the trace", "data": drdynvc.Bytes(b)}, nil
		}
		delete(d.pending, k)
		fn = f
	}
	m, err := wire.ParseFileRedirector(wire.ClientToServer, b, fn)
	return pnpResult(wire.ChannelFileRedirector, b, o, m, err)
}

// drdynvc decodes a PDU that rdpdvc proxy recorded, follows the channel
// names CREATE_REQ gives, and decodes each reassembled DATA message by
// its channel's protocol.
func (d *traceDecoder) drdynvc(e trace.Event) {
	p, err := drdynvc.Parse(e.Data, sender(e.From))
	if err != nil {
		if d.filter == "" || d.filter == trace.Channel {
			d.line(e, trace.Channel, 0, d.compact(nil, err))
		}
		return
	}
	var id uint32
	var msg []byte // a whole channel message, once reassembled
	switch q := p.(type) {
	case drdynvc.CreateRequest:
		id = q.ChannelID
		if _, ok := d.names[id]; ok || len(d.names) < maxTraceNames {
			d.names[id] = q.ChannelName
		}
	case drdynvc.CreateResponse:
		id = q.ChannelID
	case drdynvc.Close:
		id = q.ChannelID
		// The name stays until the next CREATE_REQ for the id: the
		// other side's DYNVC_CLOSE answers this one under the same name.
		d.forget(id)
		d.dropPart([2]uint32{0, id})
		d.dropPart([2]uint32{1, id})
	case drdynvc.DataFirst:
		id = q.ChannelID
		k := [2]uint32{sideIndex(e.From), id}
		d.dropPart(k)
		if int(q.Length) > maxTraceReassembly || len(q.Data) > int(q.Length) {
			break
		}
		if len(q.Data) == int(q.Length) {
			msg = q.Data
			break
		}
		if len(d.parts) >= 2*maxTraceNames {
			break
		}
		pt := &partial{total: int(q.Length), got: len(q.Data)}
		if d.held+len(q.Data) > maxTraceHeld {
			pt.skip = true // its DATA PDUs print, but the message is not decoded
		} else {
			pt.buf = bytes.Clone(q.Data)
			d.held += len(q.Data)
		}
		d.parts[k] = pt
	case drdynvc.Data:
		id = q.ChannelID
		k := [2]uint32{sideIndex(e.From), id}
		if pt, ok := d.parts[k]; ok {
			if pt.got+len(q.Data) > pt.total {
				d.dropPart(k)
				break
			}
			pt.got += len(q.Data)
			if !pt.skip && d.held+len(q.Data) > maxTraceHeld {
				d.held -= len(pt.buf)
				pt.buf, pt.skip = nil, true
			}
			if !pt.skip {
				pt.buf = append(pt.buf, q.Data...)
				d.held += len(q.Data)
			}
			if pt.got == pt.total {
				if !pt.skip {
					msg = pt.buf
				}
				d.dropPart(k)
			}
		} else {
			msg = q.Data
		}
	}
	name := d.names[id]
	if d.filter != "" && d.filter != trace.Channel && d.filter != name {
		return
	}
	out := d.compact(pduJSON{PDU: p.Name(), From: string(e.From), Len: p.Len(), Fields: p}, nil)
	if msg != nil && name != "" {
		out += " => " + d.message(name, id, e.From, msg, trace.Data)
	}
	label := trace.Channel
	if name != "" {
		label = trace.Channel + "(" + name + ")"
	}
	d.line(e, label, id, out)
}

func sideIndex(s trace.Side) uint32 {
	if s == trace.Server {
		return 0
	}
	return 1
}

// longHex is a JSON string of more than 32 bytes in hex.
var longHex = regexp.MustCompile(`"([0-9a-f]{64})((?:[0-9a-f]{2})+)"`)

// compact is v as one line of JSON, with err after it; byte strings over
// 32 bytes are cut to their first 32 and their length, unless -full.
func (d *traceDecoder) compact(v any, err error) string {
	var s string
	if v != nil {
		b, merr := json.Marshal(v)
		if merr != nil {
			return fmt.Sprintf("(%v)", merr)
		}
		s = string(b)
		if !d.full {
			s = longHex.ReplaceAllStringFunc(s, func(m string) string {
				return m[:65] + fmt.Sprintf("...(%d bytes)\"", (len(m)-2)/2)
			})
		}
	}
	if err != nil {
		if s != "" {
			s += " "
		}
		s += "ERROR " + err.Error()
	}
	return s
}
