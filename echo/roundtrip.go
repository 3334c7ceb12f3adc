package echo

import "github.com/rdpdvc/rdpdvc/internal/roundtrip"

// The prober's results are those of the request/reply loop it shares with
// the Simple sample (internal/roundtrip): the same types as simple.Stats
// and simple.Reply, so a program reports both probes alike.
type (
	Stats   = roundtrip.Stats   // the figures of a run
	Reply   = roundtrip.Reply   // one resolved request
	Outcome = roundtrip.Outcome // how a request ended
)

// The outcomes of a request.
const (
	Received   = roundtrip.Received
	Lost       = roundtrip.Lost
	Mismatched = roundtrip.Mismatched
	Unexpected = roundtrip.Unexpected
)
