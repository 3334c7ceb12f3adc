// Package simple is the "Simple" DVC sample's ping/echo protocol, wire
// compatible with every other Simple implementation (as the sample
// family's README describes it, in its "Wire Protocol" section; the
// layout is restated below, at Frame).
//
// The server (the program inside the RDP session) opens the channel and
// sends a ping frame every second; the client plugin echoes every byte it
// receives; the server checks the echo and logs the round-trip time.
//
// This file is the frame codec (no I/O). pinger.go is the server role,
// echoer.go the client role; the figures both report and the loop under
// them are internal/roundtrip's.
package simple

import (
	"bufio"
	"encoding/binary"
	"time"

	"github.com/rdpdvc/rdpdvc/codec"
	"github.com/rdpdvc/rdpdvc/dvc"
)

// ChannelName is the dynamic virtual channel every Simple sample listens on.
const ChannelName = "dvc::sample::simpleplugin"

// CLSID is the COM class the Windows client plugin registers under (the
// Simple sample's README, "Quick Facts"); the RDP client finds the plugin
// through it.
const CLSID = "{D9B80669-C06A-4BD1-9CB1-3B7168C9E3A3}"

// Frame layout (the Simple sample's README, "Wire Protocol"), little-endian:
//
//	[frameLen:u32][sequenceNumber:u32][utcTicks:i64][payloadLen:u32][payload...]
//
// frameLen counts everything after itself.
const (
	// LenFieldSize is the size of frameLen, which frameLen does not count.
	LenFieldSize = 4
	// HeaderSize is the fixed part of a frame, frameLen included.
	HeaderSize = 4 + 4 + 8 + 4
	// MinFrameLen is the smallest valid frameLen: a frame with no payload.
	MinFrameLen = HeaderSize - LenFieldSize

	// DefaultPayload is the sample's payload size: 5120 bytes, larger than
	// one 1600-byte virtual channel chunk, so every ping exercises
	// fragmentation and reassembly.
	DefaultPayload = 5120
	// MaxPayload is the largest payloadLen this package accepts (16 MiB).
	// Nothing in the sample family sends more than a few KiB; the ceiling
	// bounds what a stream Reassembler buffers for a hostile peer.
	MaxPayload = 16 << 20
)

// Frame is one Simple message: a ping from the server or its echo.
type Frame struct {
	Seq      uint32 // sequenceNumber: incrementing, for matching echoes
	UTCTicks int64  // utcTicks: send time as a Windows FILETIME (see Ticks)
	Payload  []byte // payload: Pattern(payloadLen) in pings
}

// Len is the encoded size of f, the frameLen field included.
func (f Frame) Len() int { return HeaderSize + len(f.Payload) }

// Append appends f's encoding to b. It encodes what it is given; Validate
// says whether a peer would accept it.
func (f Frame) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(MinFrameLen+len(f.Payload)))
	b = binary.LittleEndian.AppendUint32(b, f.Seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(f.UTCTicks))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(f.Payload)))
	return append(b, f.Payload...)
}

// Validate reports a frame no peer would accept: a payload over
// MaxPayload.
func (f Frame) Validate() error {
	if len(f.Payload) > MaxPayload {
		return frameErr("payloadLen", ErrTooLarge, "%d bytes exceeds ceiling %d", len(f.Payload), MaxPayload)
	}
	return nil
}

// Kinds of error, wrapped by every *Error of this package, for errors.Is:
// the kinds every rdpdvc codec shares (package codec).
var (
	// ErrTruncated: input that ends inside a frame.
	ErrTruncated = codec.ErrTruncated
	// ErrTooLarge: a length over MaxPayload.
	ErrTooLarge = codec.ErrTooLarge
	// ErrInvalid: a length below the header, or two lengths that
	// disagree.
	ErrInvalid = codec.ErrInvalid
	// ErrShort is the old name of ErrTruncated.
	//
	// Deprecated: use ErrTruncated.
	ErrShort = ErrTruncated
)

// Error says which field of a Simple frame is wrong: the shape all
// rdpdvc codecs share, with Codec "simple", Message "frame" and Field the
// sample README's field name (frameLen, payloadLen, ...).
type Error = codec.Error

func frameErr(field string, kind error, format string, args ...any) error {
	return codec.New("simple", "frame", field, kind, format, args...)
}

// FrameLen is a dvc.Framer for stream-only backends: it returns the
// length of the whole first frame in buf (frameLen plus its own 4 bytes),
// 0 while the frameLen field itself is incomplete, and an error when
// frameLen cannot start a valid frame. It does not wait for the payload:
// the backend reads until it has the length it was given.
func FrameLen(buf []byte) (int, error) {
	if len(buf) < LenFieldSize {
		return 0, nil
	}
	n := binary.LittleEndian.Uint32(buf)
	if err := checkFrameLen(n); err != nil {
		return 0, err
	}
	return LenFieldSize + int(n), nil
}

var _ dvc.Framer = FrameLen

func checkFrameLen(n uint32) error {
	if n < MinFrameLen {
		return frameErr("frameLen", ErrInvalid, "%d is below the %d-byte header", n, MinFrameLen)
	}
	if n > MinFrameLen+MaxPayload {
		return frameErr("frameLen", ErrTooLarge, "%d exceeds ceiling %d", n, MinFrameLen+MaxPayload)
	}
	return nil
}

// Split is a bufio.SplitFunc yielding whole frames (frameLen included)
// from a byte stream, for reading a capture or a raw socket with a
// bufio.Scanner. Give the Scanner a buffer of at least HeaderSize+payload.
func Split(data []byte, atEOF bool) (advance int, token []byte, err error) {
	n, err := FrameLen(data)
	if err != nil {
		return 0, nil, err
	}
	if n == 0 || len(data) < n {
		if atEOF && len(data) > 0 {
			return 0, nil, frameErr("frameLen", ErrTruncated, "stream ends %d bytes into a frame", len(data))
		}
		return 0, nil, nil
	}
	return n, data[:n], nil
}

var _ bufio.SplitFunc = Split

// ParseFrame decodes the frame at the start of b and returns it with the
// number of bytes it took. f.Payload aliases b. Bytes after the frame are
// left alone: a stream caller parses the next frame from b[n:].
func ParseFrame(b []byte) (f Frame, n int, err error) {
	if len(b) < LenFieldSize {
		return f, 0, frameErr("frameLen", ErrTruncated, "%d bytes", len(b))
	}
	frameLen := binary.LittleEndian.Uint32(b)
	if err := checkFrameLen(frameLen); err != nil {
		return f, 0, err
	}
	n = LenFieldSize + int(frameLen)
	if len(b) < HeaderSize {
		return f, 0, frameErr("header", ErrTruncated, "%d of %d bytes", len(b), HeaderSize)
	}
	payloadLen := binary.LittleEndian.Uint32(b[16:])
	if uint64(payloadLen) != uint64(frameLen)-MinFrameLen {
		return f, 0, frameErr("payloadLen", ErrInvalid, "%d disagrees with frameLen %d (want frameLen-%d = %d)", payloadLen, frameLen, MinFrameLen, frameLen-MinFrameLen)
	}
	if len(b) < n {
		return f, 0, frameErr("payload", ErrTruncated, "%d of %d bytes", len(b)-HeaderSize, payloadLen)
	}
	f.Seq = binary.LittleEndian.Uint32(b[4:])
	f.UTCTicks = int64(binary.LittleEndian.Uint64(b[8:]))
	f.Payload = b[HeaderSize:n:n]
	return f, n, nil
}

// Pattern returns the sample's test payload: n bytes counting 0..255 and
// wrapping.
func Pattern(n int) []byte { return AppendPattern(make([]byte, 0, n), n) }

// AppendPattern appends Pattern(n) to b.
func AppendPattern(b []byte, n int) []byte {
	for i := 0; i < n; i++ {
		b = append(b, byte(i))
	}
	return b
}

// CheckPattern returns the index of the first byte of p that differs from
// Pattern(len(p)), or -1 if none does.
func CheckPattern(p []byte) int {
	for i, c := range p {
		if c != byte(i) {
			return i
		}
	}
	return -1
}

// filetimeUnixEpoch is 1970-01-01T00:00:00Z as a FILETIME: 100-ns ticks
// since 1601-01-01T00:00:00Z (MS-DTYP 2.3.3).
const filetimeUnixEpoch = 116444736000000000

// Ticks converts t to utcTicks: a FILETIME, 100 ns since 1601-01-01 UTC.
// Times before 1601 and after 30828 are clamped.
func Ticks(t time.Time) int64 {
	s := t.Unix()
	const maxS = (1<<63-1-filetimeUnixEpoch)/10_000_000 - 1
	const minS = -filetimeUnixEpoch / 10_000_000
	switch {
	case s >= maxS:
		return 1<<63 - 1
	case s < minS:
		return 0
	}
	return filetimeUnixEpoch + s*1e7 + int64(t.Nanosecond())/100
}

// TimeOf converts utcTicks back to a UTC time.Time, to 100 ns.
func TimeOf(ticks int64) time.Time {
	d := ticks - filetimeUnixEpoch
	s, rem := d/1e7, d%1e7
	if rem < 0 {
		s--
		rem += 1e7
	}
	return time.Unix(s, rem*100).UTC()
}
