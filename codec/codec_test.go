package codec

import (
	"errors"
	"testing"
)

func TestErrorShape(t *testing.T) {
	err := New("drdynvc", "DYNVC_DATA_FIRST", "Length", ErrTooLarge, "%d exceeds ceiling %d", 70000000, 67108864)
	if got, want := err.Error(), "drdynvc: DYNVC_DATA_FIRST.Length: too large: 70000000 exceeds ceiling 67108864"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTruncated) {
		t.Fatal("errors.Is does not match exactly the kind")
	}
	whole := New("echo", "ECHO_REQUEST_PDU", "", ErrTruncated, "")
	if got, want := whole.Error(), "echo: ECHO_REQUEST_PDU: truncated"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestNewKind(t *testing.T) {
	sub := NewKind("unknown FunctionId", ErrInvalid)
	err := New("pnp/wire", "ServerIOHeader", "FunctionId", sub, "0x%X", 9)
	if !errors.Is(err, sub) || !errors.Is(err, ErrInvalid) || errors.Is(err, ErrTooLarge) {
		t.Fatal("a narrower kind must match itself and its parent only")
	}
	if got, want := err.Error(), "pnp/wire: ServerIOHeader.FunctionId: unknown FunctionId: 0x9"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}
