package drdynvc

import (
	"bytes"
	"testing"

	"github.com/rdpdvc/rdpdvc/hresult"
)

// BenchmarkBaselineCopy1600 copies one full-size PDU's bytes into a reused
// buffer: the floor for the per-PDU benchmarks below.
func BenchmarkBaselineCopy1600(b *testing.B) {
	src := q(MaxPDU)
	dst := make([]byte, 0, MaxPDU)
	b.SetBytes(MaxPDU)
	b.ReportAllocs()
	for b.Loop() {
		dst = append(dst[:0], src...)
	}
}

// BenchmarkBaselineCopy1MiB copies 1 MiB into a reused buffer: the floor
// for BenchmarkAppendMessage1MiB.
func BenchmarkBaselineCopy1MiB(b *testing.B) {
	src := q(1 << 20)
	dst := make([]byte, 0, 1<<20)
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		dst = append(dst[:0], src...)
	}
}

var benchPDUs = []struct {
	name string
	from Sender
	pdu  PDU
}{
	{"CapsRequest", FromServer, CapsRequest{Version: 2, PriorityCharges: [4]uint16{936, 3276, 9362, 21845}}},
	{"CapsResponse", FromClient, CapsResponse{Version: 2}},
	{"CreateRequest", FromServer, CreateRequest{ChannelID: 3, ChannelName: "FileRedirectorChannel"}},
	{"CreateResponse", FromClient, CreateResponse{ChannelID: 3, CreationStatus: hresult.S_OK}},
	{"DataFirst", FromServer, DataFirst{ChannelID: 3, Length: 3195, Data: q(1596)}},
	{"Data", FromServer, Data{ChannelID: 3, Data: q(1598)}},
	{"Close", FromServer, Close{ChannelID: 3}},
	{"DataFirstCompressed", FromServer, DataFirstCompressed{ChannelID: 3, Length: 3195, Data: q(8)}},
	{"DataCompressed", FromServer, DataCompressed{ChannelID: 3, Data: q(7)}},
	{"SoftSyncRequest", FromServer, SoftSyncRequest{Flags: 3, ChannelLists: []SoftSyncChannelList{{TunnelType: 1, DVCIDs: []uint32{3, 4}}}}},
	{"SoftSyncResponse", FromClient, SoftSyncResponse{TunnelsToSwitch: []uint32{1}}},
}

// typedParsers call each ParseXxx without boxing the result, so the
// allocations reported are the decoder's own.
var typedParsers = map[string]func([]byte) error{
	"CapsRequest":         func(b []byte) error { _, err := ParseCapsRequest(b); return err },
	"CapsResponse":        func(b []byte) error { _, err := ParseCapsResponse(b); return err },
	"CreateRequest":       func(b []byte) error { _, err := ParseCreateRequest(b); return err },
	"CreateResponse":      func(b []byte) error { _, err := ParseCreateResponse(b); return err },
	"DataFirst":           func(b []byte) error { _, err := ParseDataFirst(b); return err },
	"Data":                func(b []byte) error { _, err := ParseData(b); return err },
	"Close":               func(b []byte) error { _, err := ParseClose(b); return err },
	"DataFirstCompressed": func(b []byte) error { _, err := ParseDataFirstCompressed(b); return err },
	"DataCompressed":      func(b []byte) error { _, err := ParseDataCompressed(b); return err },
	"SoftSyncRequest":     func(b []byte) error { _, err := ParseSoftSyncRequest(b); return err },
	"SoftSyncResponse":    func(b []byte) error { _, err := ParseSoftSyncResponse(b); return err },
}

// BenchmarkParse decodes each PDU with its own ParseXxx function, as a
// manager's receive loop does after switching on the header's Cmd.
func BenchmarkParse(b *testing.B) {
	for _, bp := range benchPDUs {
		wire := bp.pdu.Append(nil)
		parse := typedParsers[bp.name]
		b.Run(bp.name, func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				if err := parse(wire); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseGeneric decodes through Parse, boxing into PDU.
func BenchmarkParseGeneric(b *testing.B) {
	for _, bp := range benchPDUs {
		wire := bp.pdu.Append(nil)
		b.Run(bp.name, func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(wire, bp.from); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppend encodes each PDU into a reused buffer.
func BenchmarkAppend(b *testing.B) {
	for _, bp := range benchPDUs {
		buf := bp.pdu.Append(nil)
		b.Run(bp.name, func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			switch p := bp.pdu.(type) {
			case Data:
				for b.Loop() {
					buf = p.Append(buf[:0])
				}
			case DataFirst:
				for b.Loop() {
					buf = p.Append(buf[:0])
				}
			default:
				for b.Loop() {
					buf = bp.pdu.Append(buf[:0])
				}
			}
		})
	}
}

// BenchmarkBaselineCopy1MiBIn1600 copies 1 MiB in 1600-byte pieces
// through one reused 1600-byte buffer: the floor for AppendMessage, which
// does the same plus a header per piece.
func BenchmarkBaselineCopy1MiBIn1600(b *testing.B) {
	src := q(1 << 20)
	dst := make([]byte, 0, MaxPDU)
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		for s := src; len(s) > 0; {
			n := min(MaxPDU, len(s))
			dst = append(dst[:0], s[:n]...)
			s = s[n:]
		}
	}
}

// BenchmarkAppendMessage1MiB splits 1 MiB into DATA_FIRST + DATA PDUs in a
// reused buffer (656 PDUs), with an emit that does nothing.
func BenchmarkAppendMessage1MiB(b *testing.B) {
	msg := q(1 << 20)
	buf := make([]byte, 8, 8+MaxPDU)
	emit := func([]byte) error { return nil }
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendMessage(buf[:8], 3, msg, emit); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMessageRoundTrip1MiB splits 1 MiB into PDUs and reassembles it
// with ParseDataFirst/ParseData and one allocation per message.
func BenchmarkMessageRoundTrip1MiB(b *testing.B) {
	msg := q(1 << 20)
	buf := make([]byte, 0, MaxPDU)
	var out []byte
	emit := func(pdu []byte) error {
		switch Header(pdu[0]).Cmd() {
		case CmdDataFirst:
			df, err := ParseDataFirst(pdu)
			if err != nil {
				return err
			}
			out = append(make([]byte, 0, df.Length), df.Data...)
		default:
			d, err := ParseData(pdu)
			if err != nil {
				return err
			}
			out = append(out, d.Data...)
		}
		return nil
	}
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendMessage(buf[:0], 3, msg, emit); err != nil {
			b.Fatal(err)
		}
	}
	if !bytes.Equal(out, msg) {
		b.Fatal("message changed")
	}
}
