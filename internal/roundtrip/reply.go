package roundtrip

import (
	"fmt"
	"time"
)

// Defaults of the server role, as the Simple sample runs; echo.Prober
// uses them too.
const (
	DefaultInterval = time.Second
	// MinTimeout is the shortest default loss timeout; the default is
	// max(5 × Interval, MinTimeout).
	MinTimeout = 5 * time.Second
)

// Outcome is how a ping ended.
type Outcome int

const (
	Received   Outcome = iota // echoed intact
	Lost                      // no echo in time, or the channel died
	Mismatched                // echoed, but not byte for byte
	Unexpected                // an echo that answers no outstanding ping
)

func (o Outcome) String() string {
	switch o {
	case Received:
		return "received"
	case Lost:
		return "lost"
	case Mismatched:
		return "mismatched"
	case Unexpected:
		return "unexpected"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Reply reports one resolved ping.
type Reply struct {
	Seq     uint32
	Payload int           // payload bytes sent (or, for Unexpected, received)
	RTT     time.Duration // for Received and Mismatched
	Outcome Outcome
	Err     error // what was wrong, for Lost, Mismatched and Unexpected
}

// Line is the reply's log line, e.g. "Ping#3 payload=5120 rttMs=0.42".
func (r Reply) Line() string {
	switch r.Outcome {
	case Received:
		return fmt.Sprintf("Ping#%d payload=%d rttMs=%.2f", r.Seq, r.Payload, ms(r.RTT))
	case Lost:
		return fmt.Sprintf("Ping#%d lost", r.Seq)
	case Mismatched:
		return fmt.Sprintf("Ping#%d mismatched", r.Seq)
	}
	return fmt.Sprintf("Ping#%d unexpected echo", r.Seq)
}
