package wire

import "encoding/hex"

// Bytes is a byte string from a message body (Data, DataIn, DataOut). It
// is a plain []byte, assignable both ways, that marshals to JSON as lower
// case hex without separators, so that `rdpdvc decode` output can be held
// against the hex dumps of MS-RDPEPNP section 4.
//
// Decoders return Bytes that alias their input: copy them if the input
// buffer is going to be reused.
type Bytes []byte

// MarshalText implements encoding.TextMarshaler (hex).
func (b Bytes) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(len(b)))
	hex.Encode(out, b)
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler (hex).
func (b *Bytes) UnmarshalText(t []byte) error {
	out := make([]byte, hex.DecodedLen(len(t)))
	if _, err := hex.Decode(out, t); err != nil {
		return err
	}
	*b = out
	return nil
}
