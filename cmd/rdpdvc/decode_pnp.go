package main

import (
	"fmt"
	"strings"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// MS-RDPEPNP messages for `rdpdvc decode`: one message of the PNPDR
// control channel (-as pnpdr) or of a FileRedirectorChannel instance
// (-as fileredirector), in the direction -from names. A client reply on
// FileRedirectorChannel carries only its RequestId, so which reply it is
// comes from -reply-to, the FunctionId of the request it answers
// (MS-RDPEPNP 2.2.2.1.2).
func init() {
	decoders["pnpdr"] = decodePNPDR
	decoders["fileredirector"] = decodeFileRedirector
}

// pnpJSON is what decode prints for an MS-RDPEPNP message.
type pnpJSON struct {
	Message string       `json:"message"`
	Channel string       `json:"channel"`
	From    string       `json:"from"`
	Len     int          `json:"len"`
	Fields  wire.Message `json:"fields"`
}

func pnpDirection(s drdynvc.Sender) wire.Direction {
	if s == drdynvc.FromServer {
		return wire.ServerToClient
	}
	return wire.ClientToServer
}

func pnpResult(channel string, b []byte, o decodeOptions, m wire.Message, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	v := pnpJSON{Message: wire.SpecName(m), Channel: channel, From: o.from.String(), Len: m.Len(), Fields: m}
	if m.Len() != len(b) {
		return v, fmt.Errorf("%d bytes after the %s", len(b)-m.Len(), v.Message)
	}
	return v, nil
}

func decodePNPDR(b []byte, o decodeOptions) (any, error) {
	m, err := wire.ParsePNPDR(pnpDirection(o.from), b)
	return pnpResult("PNPDR", b, o, m, err)
}

// replyFunctions names the requests a FileRedirectorChannel reply can
// answer, for -reply-to.
var replyFunctions = map[string]wire.FunctionID{
	"read":   wire.FunctionRead,
	"write":  wire.FunctionWrite,
	"ioctl":  wire.FunctionIOControl,
	"create": wire.FunctionCreateFile,
	"caps":   wire.FunctionCapabilities,
}

func decodeFileRedirector(b []byte, o decodeOptions) (any, error) {
	dir := pnpDirection(o.from)
	var fn wire.FunctionID
	if dir == wire.ClientToServer {
		// A custom event names itself by PacketType; anything else is a
		// reply, which needs -reply-to.
		if h, err := wire.ParseClientIOHeader(b); err == nil && h.PacketType != wire.PacketTypeCustomEvent {
			f, ok := replyFunctions[strings.ToLower(o.replyTo)]
			if !ok {
				return nil, fmt.Errorf("a FileRedirectorChannel reply does not say what it answers: give -reply-to read|write|ioctl|create|caps")
			}
			fn = f
		}
	}
	m, err := wire.ParseFileRedirector(dir, b, fn)
	return pnpResult("FileRedirectorChannel", b, o, m, err)
}
