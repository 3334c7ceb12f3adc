package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rdpdvc/rdpdvc/chanpdu"
	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/simple"
)

func init() {
	register(&command{
		name:    "decode",
		summary: "decode a CHANNEL_PDU chunk stream, an MS-RDPEDYC PDU or Simple frames (hex or binary in, JSON out)",
		run:     runDecode,
	})
}

// maxDecodeInput bounds what decode reads: it is a tool for captures of a
// few PDUs, and the chunk reassembler allocates what headers announce.
const maxDecodeInput = 64 << 20

// decoders by -as; decode_pnp.go adds the MS-RDPEPNP channels.
var decoders = map[string]func(b []byte, o decodeOptions) (any, error){
	"chanpdu": decodeChanPDU,
	"drdynvc": decodeDRDYNVC,
	"simple":  decodeSimple,
}

type decodeOptions struct {
	from    drdynvc.Sender // 0 when not given
	replyTo string         // -reply-to: the FunctionId a FileRedirectorChannel reply answers
}

func runDecode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var as, from, in, format, replyTo, traceFile, channel string
	var full bool
	fs := flag.NewFlagSet("rdpdvc decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&as, "as", "drdynvc", "what the bytes are: chanpdu (a chunk stream as the portable transport carries it), drdynvc (one MS-RDPEDYC PDU), simple (Simple frames), pnpdr or fileredirector (one MS-RDPEPNP message)")
	fs.StringVar(&replyTo, "reply-to", "", "fileredirector -from client: the request the reply answers (read, write, ioctl, create, caps): a reply does not say")
	fs.StringVar(&from, "from", "", "drdynvc: who sent it, server or client (Cmd 0x01 and 0x05 mean different PDUs each way; without -from both readings are printed where they differ); chanpdu: decode each message as drdynvc from that side")
	fs.StringVar(&in, "in", "", "read from `file` (- for stdin) instead of the arguments")
	fs.StringVar(&format, "input", "auto", "input encoding: hex, bin or auto (hex if it only has hex digits, spaces, ':' or '0x')")
	fs.StringVar(&traceFile, "trace", "", "decode the trace in `FILE` (- for stdin), as -trace and rdpdvc proxy write it: one line per record, each message decoded by its channel's protocol")
	fs.BoolVar(&full, "full", false, "-trace: print byte strings whole (else those over 32 bytes are cut)")
	fs.StringVar(&channel, "channel", "", "-trace: only the records of channel `NAME` (DRDYNVC: the PDUs rdpdvc proxy recorded)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rdpdvc decode [-as chanpdu|drdynvc|simple|pnpdr|fileredirector] [-from server|client] [-reply-to FUNCTION] [-in file | HEX...]\n       rdpdvc decode -trace FILE [-channel NAME] [-full]\n\nWith neither -in nor HEX arguments, reads stdin. Exit status: 0 decoded, 1 bad input, 2 bad usage.")
		fs.PrintDefaults()
	}
	if code, ok := cli.ParseArgs(fs, args); !ok {
		return code
	}
	if traceFile != "" {
		return runDecodeTrace(traceFile, channel, full, fs.NArg(), stdout, stderr)
	}
	if channel != "" {
		fmt.Fprintln(stderr, "rdpdvc decode: -channel goes with -trace")
		return 2
	}
	dec, ok := decoders[as]
	if !ok {
		fmt.Fprintf(stderr, "rdpdvc decode: -as %q: want chanpdu, drdynvc, simple, pnpdr or fileredirector\n", as)
		return 2
	}
	o := decodeOptions{replyTo: replyTo}
	switch from {
	case "":
		if as == "drdynvc" {
			// Both readings, where they differ (decodeEitherWay).
			dec = decodeEitherWay
		}
	case "server":
		o.from = drdynvc.FromServer
	case "client":
		o.from = drdynvc.FromClient
	default:
		fmt.Fprintf(stderr, "rdpdvc decode: -from %q: want server or client\n", from)
		return 2
	}

	var raw []byte
	var err error
	switch {
	case fs.NArg() > 0 && in != "":
		fmt.Fprintln(stderr, "rdpdvc decode: give -in or HEX arguments, not both")
		return 2
	case fs.NArg() > 0:
		raw, format = []byte(strings.Join(fs.Args(), " ")), "hex"
	case in == "" || in == "-":
		raw, err = io.ReadAll(io.LimitReader(os.Stdin, maxDecodeInput+1))
	default:
		var f *os.File
		if f, err = os.Open(in); err == nil {
			raw, err = io.ReadAll(io.LimitReader(f, maxDecodeInput+1))
			f.Close()
		}
	}
	if err == nil && len(raw) > maxDecodeInput {
		err = fmt.Errorf("input over %d bytes", maxDecodeInput)
	}
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc decode:", err)
		return 1
	}
	b, err := inputBytes(raw, format)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc decode:", err)
		return 2
	}
	if from == "" && (as == "pnpdr" || as == "fileredirector") {
		// Checked after the input, so that bad input is what is said first.
		fmt.Fprintf(stderr, "rdpdvc decode: -as %s needs -from server or -from client (the same bytes mean different messages each way)\n", as)
		return 2
	}
	v, derr := dec(b, o)
	if v != nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			fmt.Fprintln(stderr, "rdpdvc decode:", err)
			return 1
		}
	}
	if derr != nil {
		fmt.Fprintln(stderr, "rdpdvc decode:", derr)
		return 1
	}
	return 0
}

// inputBytes turns the input into bytes: hex (whitespace, ':', ',' and
// 0x prefixes allowed) or binary as is.
func inputBytes(raw []byte, format string) ([]byte, error) {
	clean := func() []byte {
		s := strings.NewReplacer("0x", "", "0X", "", ":", "", ",", "", "\\x", "").Replace(string(raw))
		return []byte(strings.Join(strings.Fields(s), ""))
	}
	switch format {
	case "bin":
		return raw, nil
	case "hex":
		b, err := hex.DecodeString(string(clean()))
		if err != nil {
			return nil, fmt.Errorf("input is not hex: %w", err)
		}
		return b, nil
	case "auto":
		c := clean()
		if len(c) > 0 && len(c)%2 == 0 {
			if b, err := hex.DecodeString(string(c)); err == nil {
				return b, nil
			}
		}
		return raw, nil
	}
	return nil, fmt.Errorf("-input %q: want hex, bin or auto", format)
}

// pduJSON is one MS-RDPEDYC PDU: its spec name and fields (the drdynvc
// types carry the spec's field names as JSON tags).
type pduJSON struct {
	PDU    string      `json:"pdu"`
	From   string      `json:"from"`
	Len    int         `json:"len"`
	Fields drdynvc.PDU `json:"fields"`
}

func decodeDRDYNVC(b []byte, o decodeOptions) (any, error) {
	p, err := drdynvc.Parse(b, o.from)
	if err != nil {
		return nil, err
	}
	v := pduJSON{PDU: p.Name(), From: o.from.String(), Len: p.Len(), Fields: p}
	if p.Len() != len(b) {
		return v, fmt.Errorf("%d bytes after the %s", len(b)-p.Len(), p.Name())
	}
	return v, nil
}

// decodeEitherWay decodes a PDU whose sender is not given: once as the
// server's and once as the client's. Where both read the same PDU (DATA,
// CLOSE, ...) it is printed once with "from" "server or client"; where
// the Cmd means different PDUs each way (0x01, 0x05: MS-RDPEDYC 2.2) both
// readings are printed, and it fails only when neither parses.
func decodeEitherWay(b []byte, o decodeOptions) (any, error) {
	o.from = drdynvc.FromServer
	vs, errS := decodeDRDYNVC(b, o)
	o.from = drdynvc.FromClient
	vc, errC := decodeDRDYNVC(b, o)
	ps, okS := vs.(pduJSON)
	pc, okC := vc.(pduJSON)
	switch {
	case okS && okC && ps.PDU == pc.PDU && errS == nil && errC == nil:
		ps.From = "server or client"
		return ps, nil
	case errS != nil && errC != nil:
		return nil, fmt.Errorf("as the server's: %v; as the client's: %v", errS, errC)
	}
	var both []any
	for _, r := range []struct {
		v   any
		err error
	}{{vs, errS}, {vc, errC}} {
		if r.err != nil {
			both = append(both, map[string]string{"error": r.err.Error()})
		} else {
			both = append(both, r.v)
		}
	}
	return both, nil
}

type chunkJSON struct {
	Offset    int            `json:"offset"`
	Header    chanpdu.Header `json:"header"`
	FlagNames []string       `json:"flagNames"`
	ChunkLen  int            `json:"chunkLen"`
}

type messageJSON struct {
	Length  int           `json:"length"`
	Data    drdynvc.Bytes `json:"data"`
	DRDYNVC *pduJSON      `json:"drdynvc,omitempty"`
	Error   string        `json:"error,omitempty"`
}

type streamJSON struct {
	Chunks   []chunkJSON   `json:"chunks"`
	Messages []messageJSON `json:"messages"`
	// Rest is bytes after the last whole chunk (a cut capture).
	Rest int `json:"rest,omitempty"`
}

var flagNames = []struct {
	f    uint32
	name string
}{
	{chanpdu.FlagFirst, "CHANNEL_FLAG_FIRST"},
	{chanpdu.FlagLast, "CHANNEL_FLAG_LAST"},
	{chanpdu.FlagShowProtocol, "CHANNEL_FLAG_SHOW_PROTOCOL"},
	{chanpdu.FlagSuspend, "CHANNEL_FLAG_SUSPEND"},
	{chanpdu.FlagResume, "CHANNEL_FLAG_RESUME"},
	{chanpdu.FlagShadowPersistent, "CHANNEL_FLAG_SHADOW_PERSISTENT"},
	{chanpdu.FlagPacketCompressed, "CHANNEL_PACKET_COMPRESSED"},
	{chanpdu.FlagPacketAtFront, "CHANNEL_PACKET_AT_FRONT"},
	{chanpdu.FlagPacketFlushed, "CHANNEL_PACKET_FLUSHED"},
}

// decodeChanPDU decodes a portable-transport stream: CHANNEL_PDU_HEADER,
// chunk, header, chunk... where every chunk but a message's last is 1600
// bytes (docs/portable-transport.md). With -from, each whole message is
// also decoded as an MS-RDPEDYC PDU. On an error the chunks and messages
// decoded so far are still printed.
func decodeChanPDU(b []byte, o decodeOptions) (any, error) {
	out := streamJSON{Chunks: []chunkJSON{}, Messages: []messageJSON{}}
	var r chanpdu.Reassembler
	var firstBad error
	off := 0
	for off < len(b) {
		h, err := chanpdu.ParseHeader(b[off:])
		if err != nil {
			out.Rest = len(b) - off
			return out, fmt.Errorf("at offset %d: %w", off, err)
		}
		n, err := r.NextChunkLen(h, chanpdu.ChunkLength)
		if err != nil {
			return out, fmt.Errorf("at offset %d: %w", off, err)
		}
		c := chunkJSON{Offset: off, Header: h, FlagNames: []string{}, ChunkLen: n}
		for _, f := range flagNames {
			if h.Flags&f.f != 0 {
				c.FlagNames = append(c.FlagNames, f.name)
			}
		}
		if len(b)-off-chanpdu.HeaderSize < n {
			out.Rest = len(b) - off
			return out, fmt.Errorf("at offset %d: chunk of %d bytes is cut at %d", off, n, len(b)-off-chanpdu.HeaderSize)
		}
		out.Chunks = append(out.Chunks, c)
		chunk := b[off+chanpdu.HeaderSize : off+chanpdu.HeaderSize+n]
		off += chanpdu.HeaderSize + n
		msg, done, err := r.Push(h, chunk)
		if err != nil {
			return out, fmt.Errorf("chunk at offset %d: %w", c.Offset, err)
		}
		if !done {
			continue
		}
		m := messageJSON{Length: len(msg), Data: msg}
		if o.from != 0 {
			v, err := decodeDRDYNVC(msg, o)
			if p, ok := v.(pduJSON); ok {
				m.DRDYNVC = &p
			}
			if err != nil {
				m.Error = err.Error()
				if firstBad == nil {
					firstBad = fmt.Errorf("message %d: %w", len(out.Messages), err)
				}
			}
		}
		out.Messages = append(out.Messages, m)
	}
	if _, length, active := r.InProgress(); active {
		return out, fmt.Errorf("stream ends inside a message of %d bytes", length)
	}
	return out, firstBad
}

type frameJSON struct {
	Offset         int           `json:"offset"`
	FrameLen       uint32        `json:"frameLen"`
	SequenceNumber uint32        `json:"sequenceNumber"`
	UTCTicks       int64         `json:"utcTicks"`
	UTCTime        string        `json:"utcTime"`
	PayloadLen     int           `json:"payloadLen"`
	PayloadPattern bool          `json:"payloadIsPattern"` // 0..255 repeating, as pings carry
	Payload        drdynvc.Bytes `json:"payload"`
}

type framesJSON struct {
	Frames []frameJSON `json:"frames"`
}

// decodeSimple decodes one or more Simple frames back to back.
func decodeSimple(b []byte, _ decodeOptions) (any, error) {
	out := framesJSON{Frames: []frameJSON{}}
	for off := 0; off < len(b); {
		f, n, err := simple.ParseFrame(b[off:])
		if err != nil {
			return out, fmt.Errorf("at offset %d: %w", off, err)
		}
		out.Frames = append(out.Frames, frameJSON{
			Offset: off, FrameLen: uint32(n - simple.LenFieldSize), SequenceNumber: f.Seq,
			UTCTicks: f.UTCTicks, UTCTime: simple.TimeOf(f.UTCTicks).Format(time.RFC3339Nano),
			PayloadLen: len(f.Payload), PayloadPattern: simple.CheckPattern(f.Payload) < 0,
			Payload: bytes.Clone(f.Payload),
		})
		off += n
	}
	if len(out.Frames) == 0 {
		return nil, errors.New("no input")
	}
	return out, nil
}
