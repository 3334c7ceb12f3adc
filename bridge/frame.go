package bridge

import (
	"encoding/binary"
	"fmt"
)

// Limits of the two framings.
const (
	// MaxChunk is the most bytes one socket read turns into one channel
	// message in Stream framing: 32768, the smallest message every backend
	// carries whole. xrdp's chansrv reads its socket 32768 bytes at a time
	// and forwards each read as one DVC message (backend/xrdp MaxWrite);
	// the portable transport and FreeRDP reassemble far larger messages
	// (MS-RDPEDYC DYNVC_DATA_FIRST), so on them it only bounds a copy.
	MaxChunk = 32768
	// HeaderLen is the size of a Message framing header: the u32
	// little-endian length of the bytes after it.
	HeaderLen = 4
	// MaxMessage is the largest message, header excluded, in Message
	// framing. A header announcing more closes that bridge connection.
	// 1 MiB keeps what one connection can make the other end hold to a
	// small bound, while leaving room for the messages programs exchange.
	MaxMessage = 1 << 20
)

// AppendHeader appends the Message framing header of an n-byte message.
func AppendHeader(b []byte, n int) []byte {
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}

// ParseHeader reads a Message framing header from the start of b and
// returns the message length it announces, or ok false if b is shorter
// than HeaderLen. A length over MaxMessage is an error.
func ParseHeader(b []byte) (n int, ok bool, err error) {
	if len(b) < HeaderLen {
		return 0, false, nil
	}
	v := binary.LittleEndian.Uint32(b)
	if v > MaxMessage {
		return 0, true, fmt.Errorf("bridge: message header: length %d is over the %d-byte ceiling", v, MaxMessage)
	}
	return int(v), true, nil
}

// Framer is the dvc.Framer of Message framing: a frame is the header and
// the bytes it announces. Backends that keep no message boundaries
// (xrdp) and the client side's kit.Reframe recover frames with it.
func Framer(buf []byte) (int, error) {
	n, ok, err := ParseHeader(buf)
	if !ok || err != nil {
		return 0, err
	}
	return HeaderLen + n, nil
}

// CheckFrame checks that msg is exactly one Message framing frame, as each
// channel message must be; it returns the payload.
func CheckFrame(msg []byte) ([]byte, error) {
	n, ok, err := ParseHeader(msg)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("bridge: channel message of %d bytes is shorter than a message header", len(msg))
	case HeaderLen+n != len(msg):
		return nil, fmt.Errorf("bridge: channel message of %d bytes holds a header announcing %d bytes: want exactly one message", len(msg), n)
	}
	return msg[HeaderLen:], nil
}
