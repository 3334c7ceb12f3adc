package wire

import (
	"encoding/binary"
)

// reader walks a message front to back. Its error is sticky: after the
// first failure every read returns zero values, so a decoder can read all
// its fields and check r.err once, and no read ever indexes past the end
// of b (the miekg/dns offset-threading idea, folded into a struct).
type reader struct {
	b   []byte
	off int
	msg string // Go type name of the message, for errors
	err error
}

func newReader(b []byte, msg string) reader { return reader{b: b, msg: msg} }

func (r *reader) left() int { return len(r.b) - r.off }

// need records ErrTruncated for field unless n more bytes are available.
func (r *reader) need(field string, n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || r.left() < n {
		r.err = newError(r.msg, field, ErrTruncated, "need %d bytes, have %d", n, r.left())
		return false
	}
	return true
}

func (r *reader) u8(field string) uint8 {
	if !r.need(field, 1) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16(field string) uint16 {
	if !r.need(field, 2) {
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32(field string) uint32 {
	if !r.need(field, 4) {
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

// bytes returns the next n bytes as a sub-slice of the input (no copy),
// or nil when n is 0, so that empty fields decode the same way whatever
// their position.
func (r *reader) bytes(field string, n int) []byte {
	if !r.need(field, n) || n == 0 {
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// length reads a 32-bit length field and checks it against ceiling and
// against what is left of the input, in that order, before anything is
// allocated for it.
func (r *reader) length(field string, ceiling int) int {
	v := r.u32(field)
	if r.err != nil {
		return 0
	}
	if uint64(v) > uint64(ceiling) {
		r.err = newError(r.msg, field, ErrTooLarge, "%d > %d", v, ceiling)
		return 0
	}
	if int(v) > r.left() {
		r.err = newError(r.msg, field, ErrTruncated, "announces %d bytes, %d left", v, r.left())
		return 0
	}
	return int(v)
}

func (r *reader) guid(field string) GUID {
	if !r.need(field, 16) {
		return GUID{}
	}
	g := guidFromWire(r.b[r.off:])
	r.off += 16
	return g
}

// end records ErrTrailingData if anything is left.
func (r *reader) end() {
	if r.err == nil && r.left() != 0 {
		r.err = newError(r.msg, "", ErrTrailingData, "%d bytes after the last field", r.left())
	}
}

// fail records a non-truncation error unless one is already recorded.
func (r *reader) fail(field string, kind error, format string, args ...any) {
	if r.err == nil {
		r.err = newError(r.msg, field, kind, format, args...)
	}
}

func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
