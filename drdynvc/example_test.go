package drdynvc_test

import (
	"encoding/binary"
	"fmt"

	"github.com/rdpdvc/rdpdvc/chanpdu"
	"github.com/rdpdvc/rdpdvc/drdynvc"
)

// A carrier that sends each DVC PDU as one static virtual channel chunk
// keeps 8 bytes of prefix for the CHANNEL_PDU_HEADER and patches it in
// emit, so each PDU is built and sent from one buffer without copying.
func ExampleAppendMessage() {
	msg := make([]byte, 3195)
	buf := make([]byte, chanpdu.HeaderSize)
	buf, err := drdynvc.AppendMessage(buf, 3, msg, func(b []byte) error {
		pdu := b[chanpdu.HeaderSize:]
		binary.LittleEndian.PutUint32(b[0:], uint32(len(pdu)))
		binary.LittleEndian.PutUint32(b[4:], chanpdu.FlagOnly|chanpdu.FlagShowProtocol)
		fmt.Printf("chunk of %d bytes: % x ...\n", len(b), b[:min(len(b), chanpdu.HeaderSize+4)])
		return nil // write b to the carrier here
	})
	if err != nil {
		panic(err)
	}
	_ = buf // reuse buf[:chanpdu.HeaderSize] for the next message
	// Output:
	// chunk of 1608 bytes: 40 06 00 00 13 00 00 00 24 03 7b 0c ...
	// chunk of 1608 bytes: 40 06 00 00 13 00 00 00 30 03 00 00 ...
	// chunk of 11 bytes: 03 00 00 00 13 00 00 00 30 03 00 ...
}

// Decoding by direction: the same bytes are a create request from the
// server and a create response from the client.
func ExampleParse() {
	wire := []byte{0x10, 0x03, 0x74, 0x65, 0x73, 0x74, 0x64, 0x76, 0x63, 0x00}
	p, err := drdynvc.Parse(wire, drdynvc.FromServer)
	if err != nil {
		panic(err)
	}
	fmt.Println(p)
	// Output: DYNVC_CREATE_REQ{ChannelId: 3, Pri: 0, ChannelName: "testdvc"}
}
