package server

import (
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// PNPDRFramer is the dvc.Framer for PNPDR on stream backends:
// wire.PNPDRFramer (every message starts with a PNP_INFO_HEADER whose
// Size is the whole message, 2.2.1.1; the framing rule lives in pnp/wire).
func PNPDRFramer(buf []byte) (int, error) { return wire.PNPDRFramer(buf) }

// Outstanding looks up an outstanding request by RequestId for
// FileRedirectorFramer (wire.Outstanding).
type Outstanding = wire.Outstanding

// FileRedirectorFramer returns the dvc.Framer for a FileRedirectorChannel
// instance on stream backends: wire.FileRedirectorFramer, which recovers
// each reply's length from the request it answers.
func FileRedirectorFramer(lookup Outstanding) dvc.Framer { return wire.FileRedirectorFramer(lookup) }
