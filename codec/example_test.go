package codec_test

import (
	"errors"
	"fmt"

	"github.com/rdpdvc/rdpdvc/codec"
	"github.com/rdpdvc/rdpdvc/drdynvc"
)

// A caller picks its reaction by kind and logs the message, which names
// the PDU and the field.
func ExampleError() {
	_, err := drdynvc.ParseCreateResponse([]byte{0x10, 0x01, 0x00})
	fmt.Println(errors.Is(err, drdynvc.ErrTruncated), errors.Is(err, codec.ErrTruncated))
	var e *codec.Error
	if errors.As(err, &e) {
		fmt.Println(e.Message, e.Field)
	}
	fmt.Println(err)
	// Output:
	// true true
	// DYNVC_CREATE_RSP CreationStatus
	// drdynvc: DYNVC_CREATE_RSP.CreationStatus: truncated: need 6 bytes, have 3
}
