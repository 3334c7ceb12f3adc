// Package chanpdu encodes, chunks and reassembles static virtual channel
// traffic: the CHANNEL_PDU_HEADER of MS-RDPBCGR 2.2.6.1.1 and the chunking
// rules of MS-RDPBCGR 3.1.5.2.
//
// A virtual channel message is sent as one or more chunks, each preceded by
// a CHANNEL_PDU_HEADER whose length field is the total length of the
// message (not of the chunk). The first chunk carries CHANNEL_FLAG_FIRST,
// the last CHANNEL_FLAG_LAST, a message that fits in one chunk carries both.
// Nothing in the header gives a chunk's own length: RDP takes it from the
// PDU below (the TPKT length), Windows' WTSVirtualChannelRead and ReadFile
// from the size of the read, and rdpdvc's portable transport from the rule
// that every chunk but the last is exactly the chunk size ([ChunkLen]).
//
// The package does no I/O: [Chunker] turns a message into chunks,
// [Reassembler] turns chunks back into messages.
package chanpdu

import (
	"encoding/binary"
	"fmt"

	"github.com/rdpdvc/rdpdvc/codec"
)

// HeaderSize is the size of a CHANNEL_PDU_HEADER on the wire.
const HeaderSize = 8

// ChunkLength is the default and usual maximum size of one chunk of channel
// data, CHANNEL_CHUNK_LENGTH (MS-RDPBCGR 2.2.6.1, 3.1.5.2.1). A larger size
// is only allowed when both ends announce VCChunkSize (2.2.7.1.10).
const ChunkLength = 1600 // CHANNEL_CHUNK_LENGTH

// DefaultMaxLength is the ceiling [Reassembler] puts on a message's total
// length when its MaxLength is 0: 64 MiB. The field can say up to 4 GiB-1
// and the receiver must allocate the whole message when the first chunk
// arrives (3.1.5.2.2.1), so a peer could otherwise make us allocate 4 GiB
// with an 8-byte header. 64 MiB is far above anything the channels rdpdvc
// carries send in one message (Simple frames, PNP I/O of at most a few MiB)
// and small enough to survive a few hostile connections at once.
const DefaultMaxLength = 64 << 20

// Channel control flags (CHANNEL_PDU_HEADER.flags, MS-RDPBCGR 2.2.6.1.1).
const (
	FlagFirst            uint32 = 0x00000001 // CHANNEL_FLAG_FIRST
	FlagLast             uint32 = 0x00000002 // CHANNEL_FLAG_LAST
	FlagOnly                    = FlagFirst | FlagLast
	FlagShowProtocol     uint32 = 0x00000010 // CHANNEL_FLAG_SHOW_PROTOCOL
	FlagSuspend          uint32 = 0x00000020 // CHANNEL_FLAG_SUSPEND: server to client only
	FlagResume           uint32 = 0x00000040 // CHANNEL_FLAG_RESUME: server to client only
	FlagShadowPersistent uint32 = 0x00000080 // CHANNEL_FLAG_SHADOW_PERSISTENT: unused, ignored

	FlagPacketCompressed uint32 = 0x00200000 // CHANNEL_PACKET_COMPRESSED (MPPC bit C)
	FlagPacketAtFront    uint32 = 0x00400000 // CHANNEL_PACKET_AT_FRONT (MPPC bit B)
	FlagPacketFlushed    uint32 = 0x00800000 // CHANNEL_PACKET_FLUSHED (MPPC bit A)
	CompressionTypeMask  uint32 = 0x000F0000 // CompressionTypeMask
)

// Compression types found under CompressionTypeMask, after shifting right
// by 16 ([Header.CompressionType]).
const (
	PacketComprType8K    uint32 = 0x0 // PACKET_COMPR_TYPE_8K: RDP 4.0 bulk compression
	PacketComprType64K   uint32 = 0x1 // PACKET_COMPR_TYPE_64K: RDP 5.0 bulk compression
	PacketComprTypeRDP6  uint32 = 0x2 // PACKET_COMPR_TYPE_RDP6
	PacketComprTypeRDP61 uint32 = 0x3 // PACKET_COMPR_TYPE_RDP61
)

// Header is a CHANNEL_PDU_HEADER (MS-RDPBCGR 2.2.6.1.1).
type Header struct {
	// Length is the total length of the (uncompressed) message the chunk
	// belongs to, excluding this header; the same in every chunk.
	Length uint32 `json:"length"`
	// Flags are the channel control flags (FlagFirst, ...).
	Flags uint32 `json:"flags"`
}

// ParseHeader decodes the CHANNEL_PDU_HEADER at the start of b. Bytes after
// the first HeaderSize are not looked at.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, &Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "", Err: ErrTruncated,
			Detail: fmt.Sprintf("%d bytes, need %d", len(b), HeaderSize)}
	}
	return Header{
		Length: binary.LittleEndian.Uint32(b),
		Flags:  binary.LittleEndian.Uint32(b[4:]),
	}, nil
}

// Append appends the 8-byte wire form of h to b.
func (h Header) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, h.Length)
	return binary.LittleEndian.AppendUint32(b, h.Flags)
}

// First reports whether CHANNEL_FLAG_FIRST is set.
func (h Header) First() bool { return h.Flags&FlagFirst != 0 }

// Last reports whether CHANNEL_FLAG_LAST is set.
func (h Header) Last() bool { return h.Flags&FlagLast != 0 }

// CompressionType is the PACKET_COMPR_TYPE_* value under
// CompressionTypeMask. It means something only with FlagPacketCompressed.
func (h Header) CompressionType() uint32 { return (h.Flags & CompressionTypeMask) >> 16 }

func (h Header) String() string {
	return fmt.Sprintf("CHANNEL_PDU_HEADER{length=%d flags=0x%08x}", h.Length, h.Flags)
}

// Kinds of error, wrapped by every *Error, so callers can tell the cases
// apart with errors.Is without parsing messages. The first three are the
// kinds every rdpdvc codec shares (package codec).
var (
	// ErrTruncated: fewer bytes than the structure needs.
	ErrTruncated = codec.ErrTruncated
	// ErrTooLarge: a length over the configured ceiling.
	ErrTooLarge = codec.ErrTooLarge
	// ErrUnsupported: a chunk whose data is bulk-compressed, which rdpdvc
	// does not negotiate and so cannot decompress.
	ErrUnsupported = codec.ErrUnsupported
	// ErrInvalid: a field breaks a rule of MS-RDPBCGR.
	ErrInvalid = codec.ErrInvalid
	// ErrSequence: a chunk out of sequence (no FIRST, a second FIRST, LAST
	// too early, data past the announced length, length changing); an
	// ErrInvalid.
	ErrSequence = codec.NewKind("chunk out of sequence", codec.ErrInvalid)
)

// Error reports bad chunk input: the shape all rdpdvc codecs share. Codec
// is "chanpdu"; Message is "CHANNEL_PDU_HEADER" (Field "length" or
// "flags") or "CHANNEL_PDU" (Field "virtualChannelData"); Err is one of
// the kinds above; Detail gives the values involved.
type Error = codec.Error

// Chunker splits messages into chunks (MS-RDPBCGR 3.1.5.2.1). The zero
// value sends 1600-byte chunks with no extra flags.
type Chunker struct {
	// ChunkSize is the size of every chunk but the last; 0 (or less) means
	// ChunkLength (1600).
	ChunkSize int
	// Flags are ORed into every chunk's flags, e.g. FlagShowProtocol, which
	// 3.1.5.2.1 requires on chunked data. FIRST and LAST in it are ignored:
	// the Chunker sets those itself.
	Flags uint32
}

func (c Chunker) size() int {
	if c.ChunkSize <= 0 {
		return ChunkLength
	}
	return c.ChunkSize
}

// Chunks calls fn once per chunk of msg, in order, with the chunk's header
// and a subslice of msg (no copying, no allocation). The first chunk has
// FlagFirst, the last FlagLast; every chunk but the last is exactly
// ChunkSize bytes; every header's Length is len(msg). An empty message is
// one chunk with FlagFirst|FlagLast and Length 0. Chunks stops at and
// returns the first error from fn. A message longer than 4 GiB-1 cannot
// be described by CHANNEL_PDU_HEADER.length and returns an error wrapping
// ErrTooLarge without calling fn.
func (c Chunker) Chunks(msg []byte, fn func(h Header, chunk []byte) error) error {
	if uint64(len(msg)) > 0xFFFFFFFF {
		return &Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "length", Err: ErrTooLarge,
			Detail: fmt.Sprintf("%d exceeds 4294967295", len(msg))}
	}
	size := c.size()
	extra := c.Flags &^ FlagOnly
	h := Header{Length: uint32(len(msg)), Flags: extra | FlagFirst}
	for {
		n := min(size, len(msg))
		if n == len(msg) {
			h.Flags |= FlagLast
		}
		if err := fn(h, msg[:n]); err != nil {
			return err
		}
		msg = msg[n:]
		if len(msg) == 0 {
			return nil
		}
		h.Flags = extra
	}
}

// AppendChunks appends msg to dst as a sequence of chunks, each a
// CHANNEL_PDU_HEADER followed by the chunk's data, as [Chunker.Chunks]
// describes. It panics if len(msg) exceeds 4 GiB-1, which no
// CHANNEL_PDU_HEADER can describe.
func (c Chunker) AppendChunks(dst, msg []byte) []byte {
	if uint64(len(msg)) > 0xFFFFFFFF {
		panic("chanpdu: AppendChunks: message longer than 4 GiB-1")
	}
	size := c.size()
	n := max(1, (len(msg)+size-1)/size)
	dst = grow(dst, n*HeaderSize+len(msg))
	_ = c.Chunks(msg, func(h Header, chunk []byte) error {
		dst = h.Append(dst)
		dst = append(dst, chunk...)
		return nil
	})
	return dst
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

// ChunkLen returns the length of the chunk that follows header h on a
// stream carrier where every chunk but the last of a message is exactly
// chunkSize bytes (rdpdvc's portable transport; 0 or less means
// ChunkLength). received is how many bytes of this message arrived in
// earlier chunks; it must be 0 when h has FlagFirst. The result is never
// more than chunkSize, so a caller can read that many bytes without
// trusting h.Length any further.
//
// A chunk without FlagLast is chunkSize bytes; a chunk with FlagLast
// carries the rest of the message, which must then fit in chunkSize. Any
// other combination (received past Length, a non-last chunk that would
// overrun Length, a last chunk that cannot hold the rest) is an error.
func ChunkLen(h Header, received uint32, chunkSize int) (int, error) {
	if chunkSize <= 0 {
		chunkSize = ChunkLength
	}
	if h.First() && received != 0 {
		return 0, &Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "flags", Err: ErrSequence,
			Detail: fmt.Sprintf("0x%08x: CHANNEL_FLAG_FIRST after %d bytes of a message", h.Flags, received)}
	}
	if received > h.Length {
		return 0, &Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "length", Err: ErrSequence,
			Detail: fmt.Sprintf("%d is less than the %d bytes already received", h.Length, received)}
	}
	rest := uint64(h.Length - received)
	if h.Last() {
		if rest > uint64(chunkSize) {
			return 0, &Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "length", Err: ErrSequence,
				Detail: fmt.Sprintf("%d leaves %d bytes for the last chunk, more than the chunk size %d", h.Length, rest, chunkSize)}
		}
		return int(rest), nil
	}
	if rest < uint64(chunkSize) {
		return 0, &Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "length", Err: ErrSequence,
			Detail: fmt.Sprintf("%d leaves %d bytes, too few for a non-last chunk of %d", h.Length, rest, chunkSize)}
	}
	return chunkSize, nil
}

// Reassembler rebuilds messages from chunks (MS-RDPBCGR 3.1.5.2.2.1). It
// handles one channel's chunk sequence; it is not safe for concurrent use.
// The zero value is ready, with DefaultMaxLength as its ceiling.
//
// It is stricter than 3.1.5.2.2, which lets a receiver pass a chunk with
// neither FIRST nor LAST straight through when no message is in progress:
// rdpdvc's carriers always mark chunks, so such a chunk means the stream
// is out of step and is reported as an error.
type Reassembler struct {
	// MaxLength is the largest message accepted; 0 means
	// DefaultMaxLength. It is checked against CHANNEL_PDU_HEADER.length
	// before anything is allocated.
	MaxLength uint32

	buf    []byte // len = bytes received so far, cap = Length
	length uint32
	active bool
}

func (r *Reassembler) max() uint32 {
	if r.MaxLength == 0 {
		return DefaultMaxLength
	}
	return r.MaxLength
}

// Reset drops any message in progress.
func (r *Reassembler) Reset() {
	r.buf, r.length, r.active = nil, 0, false
}

// InProgress reports whether a message has started and not completed, and
// if so how many of its length bytes have arrived.
func (r *Reassembler) InProgress() (received, length uint32, ok bool) {
	return uint32(len(r.buf)), r.length, r.active
}

// NextChunkLen is [ChunkLen] for the message this Reassembler is
// rebuilding: the length of the chunk following h on a stream carrier with
// chunks of chunkSize bytes (0 means ChunkLength). It also applies
// MaxLength, so a stream reader can reject an absurd length before reading
// the chunk.
func (r *Reassembler) NextChunkLen(h Header, chunkSize int) (int, error) {
	if h.Length > r.max() {
		return 0, r.tooLarge(h.Length)
	}
	received := uint32(0)
	if r.active && !h.First() {
		received = uint32(len(r.buf))
	}
	return ChunkLen(h, received, chunkSize)
}

func (r *Reassembler) tooLarge(n uint32) error {
	return &Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "length", Err: ErrTooLarge,
		Detail: fmt.Sprintf("%d exceeds ceiling %d", n, r.max())}
}

// Push adds one chunk. When the chunk completes a message, Push returns it
// with done set; the slice is newly allocated and belongs to the caller
// (this holds for single-chunk messages too: chunk is never returned or
// kept). Otherwise msg is nil and done false.
//
// A chunk with FlagFirst starts a message: its Length is checked against
// MaxLength, then a buffer of exactly Length bytes is allocated once. Later
// chunks are copied in. The message completes at the chunk with FlagLast,
// which must bring the total to exactly Length.
//
// Errors (all *Error) are reported for: a chunk without FlagFirst when no
// message is in progress; FlagFirst while one is; a Length different from
// the first chunk's; data beyond Length; FlagLast short of Length; Length
// over MaxLength; a bulk-compressed chunk. After any error the message in
// progress is dropped, so the next chunk must start a new one; whether to
// go on or drop the connection is the caller's choice (MS-RDPEDYC
// 3.1.5.2.4 says drop it).
//
// FlagShowProtocol, FlagSuspend, FlagResume and FlagShadowPersistent are
// ignored here: they are for the layers above.
func (r *Reassembler) Push(h Header, chunk []byte) (msg []byte, done bool, err error) {
	msg, done, err = r.push(h, chunk)
	if err != nil {
		r.Reset()
	}
	return msg, done, err
}

func (r *Reassembler) push(h Header, chunk []byte) ([]byte, bool, error) {
	if h.Flags&FlagPacketCompressed != 0 {
		return nil, false, &Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "flags", Err: ErrUnsupported,
			Detail: fmt.Sprintf("0x%08x: CHANNEL_PACKET_COMPRESSED data (compression type %d) cannot be decompressed", h.Flags, h.CompressionType())}
	}
	if h.First() {
		if r.active {
			return nil, false, &Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "flags", Err: ErrSequence,
				Detail: fmt.Sprintf("0x%08x: CHANNEL_FLAG_FIRST while a message of %d bytes is at %d", h.Flags, r.length, len(r.buf))}
		}
		if h.Length > r.max() {
			return nil, false, r.tooLarge(h.Length)
		}
		if uint64(len(chunk)) > uint64(h.Length) {
			return nil, false, r.beyond(h, len(chunk))
		}
		r.buf = make([]byte, 0, h.Length)
		r.length = h.Length
		r.active = true
	} else {
		if !r.active {
			return nil, false, &Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "flags", Err: ErrSequence,
				Detail: fmt.Sprintf("0x%08x: chunk without CHANNEL_FLAG_FIRST and no message in progress", h.Flags)}
		}
		if h.Length != r.length {
			return nil, false, &Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "length", Err: ErrSequence,
				Detail: fmt.Sprintf("%d changed mid-message from %d", h.Length, r.length)}
		}
		if uint64(len(r.buf))+uint64(len(chunk)) > uint64(r.length) {
			return nil, false, r.beyond(h, len(r.buf)+len(chunk))
		}
	}
	r.buf = append(r.buf, chunk...)
	if !h.Last() {
		return nil, false, nil
	}
	if uint32(len(r.buf)) != r.length {
		return nil, false, &Error{Codec: "chanpdu", Message: "CHANNEL_PDU", Field: "virtualChannelData", Err: ErrSequence,
			Detail: fmt.Sprintf("ends at %d bytes with CHANNEL_FLAG_LAST, short of CHANNEL_PDU_HEADER.length %d", len(r.buf), r.length)}
	}
	msg := r.buf
	r.buf, r.length, r.active = nil, 0, false
	return msg, true, nil
}

func (r *Reassembler) beyond(h Header, total int) error {
	return &Error{Codec: "chanpdu", Message: "CHANNEL_PDU", Field: "virtualChannelData", Err: ErrSequence,
		Detail: fmt.Sprintf("reaches %d bytes, beyond CHANNEL_PDU_HEADER.length %d", total, h.Length)}
}

// PushPDU is Push for a buffer holding one CHANNEL_PDU_HEADER followed by
// that chunk's data and nothing else, which is what Windows'
// WTSVirtualChannelRead and ReadFile return for a dynamic channel opened
// with WTS_CHANNEL_OPTION_DYNAMIC in file-handle mode. The chunk's length
// is len(b)-HeaderSize.
func (r *Reassembler) PushPDU(b []byte) (msg []byte, done bool, err error) {
	h, err := ParseHeader(b)
	if err != nil {
		r.Reset()
		return nil, false, err
	}
	return r.Push(h, b[HeaderSize:])
}
