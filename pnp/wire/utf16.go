package wire

import (
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// utf16Len is the number of bytes s takes as UTF-16LE. Invalid UTF-8 in s
// becomes U+FFFD, as range over a string yields it.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 4
		} else {
			n += 2
		}
	}
	return n
}

func appendUTF16(b []byte, s string) []byte {
	for _, r := range s {
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			b = appendU16(b, uint16(r1))
			b = appendU16(b, uint16(r2))
		} else {
			b = appendU16(b, uint16(r))
		}
	}
	return b
}

// decodeUTF16 decodes UTF-16LE (even length, checked by the caller).
// Unpaired surrogates become U+FFFD, as unicode/utf16.Decode does.
func decodeUTF16(b []byte) string {
	buf := make([]byte, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u := rune(binary.LittleEndian.Uint16(b[i:]))
		if utf16.IsSurrogate(u) && u < 0xDC00 && i+3 < len(b) {
			u2 := rune(binary.LittleEndian.Uint16(b[i+2:]))
			if r := utf16.DecodeRune(u, u2); r != utf8.RuneError {
				buf = utf8.AppendRune(buf, r)
				i += 2
				continue
			}
		}
		if utf16.IsSurrogate(u) {
			u = utf8.RuneError
		}
		buf = utf8.AppendRune(buf, u)
	}
	return string(buf)
}

// multiszLen is the number of bytes list takes as a multisz string: each
// element and its NUL, then one more NUL. An empty list takes no bytes at
// all: MS-RDPEPNP 2.2.1.3.1.1 leaves the field out when its length is 0.
func multiszLen(list []string) int {
	if len(list) == 0 {
		return 0
	}
	n := 2
	for _, s := range list {
		n += utf16Len(s) + 2
	}
	return n
}

func appendMultisz(b []byte, list []string) []byte {
	if len(list) == 0 {
		return b
	}
	for _, s := range list {
		b = appendUTF16(b, s)
		b = appendU16(b, 0)
	}
	return appendU16(b, 0)
}

// decodeMultisz decodes a multisz string (MS-RDPEPNP 1.1): NUL-terminated
// UTF-16LE strings followed by one more NUL. An empty element is the end
// of the list, so after it only NUL padding may follow (a peer that sends
// "\0\0" for an empty list is accepted). The result is nil for an empty
// list. msg and field name the error.
func decodeMultisz(b []byte, msg, field string) ([]string, error) {
	if len(b)%2 != 0 {
		return nil, newError(msg, field, ErrInvalid, "odd UTF-16 length %d", len(b))
	}
	var list []string
	start := 0
	for i := 0; i < len(b); i += 2 {
		if b[i] != 0 || b[i+1] != 0 {
			continue
		}
		if i == start { // empty element: the terminating NUL
			for j := i + 2; j < len(b); j++ {
				if b[j] != 0 {
					return nil, newError(msg, field, ErrInvalid, "data after the multisz terminator at byte %d", i)
				}
			}
			return list, nil
		}
		list = append(list, decodeUTF16(b[start:i]))
		start = i + 2
	}
	return nil, newError(msg, field, ErrInvalid, "multisz not terminated by an empty string (double NUL)")
}

// checkMultisz reports why list cannot be written as a multisz string
// that decodes back to list, or "" if it can.
func checkMultisz(list []string) string {
	for i, s := range list {
		if s == "" {
			return "element " + strconv.Itoa(i) + " is empty (an empty element ends a multisz)"
		}
		if strings.IndexByte(s, 0) >= 0 {
			return "element " + strconv.Itoa(i) + " contains NUL"
		}
	}
	return ""
}
