package simple

import "github.com/rdpdvc/rdpdvc/internal/roundtrip"

// The request/reply loop under Pinger and Echoer, shared with package echo
// (MS-RDPEECO) through internal/roundtrip so that neither protocol imports
// the other. These names are the loop's, so a program reports Simple and
// ECHO runs with one Stats type.
type (
	// Stats are the figures of a run of pings (roundtrip.Stats).
	Stats = roundtrip.Stats
	// Reply reports one resolved ping (roundtrip.Reply).
	Reply = roundtrip.Reply
	// Outcome is how a ping ended (roundtrip.Outcome).
	Outcome = roundtrip.Outcome
	// RoundTrips is the loop itself (roundtrip.RoundTrips).
	RoundTrips = roundtrip.RoundTrips
	// Exchange is the protocol half of a RoundTrips loop.
	Exchange = roundtrip.Exchange
	// Tracker is a run's outstanding requests and figures.
	Tracker = roundtrip.Tracker
	// Replier answers from inside Handler.Received, each Write bounded.
	Replier = roundtrip.Replier
)

// The outcomes of a ping.
const (
	Received   = roundtrip.Received   // echoed intact
	Lost       = roundtrip.Lost       // no echo in time, or the channel died
	Mismatched = roundtrip.Mismatched // echoed, but not byte for byte
	Unexpected = roundtrip.Unexpected // an echo that answers no outstanding ping
)

// NewReplier is roundtrip.NewReplier.
var NewReplier = roundtrip.NewReplier
