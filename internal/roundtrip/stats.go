package roundtrip

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
)

// Stats are the figures of a run of pings, in the spirit of ping(8): every
// ping sent ends up exactly once in Received, Lost or Mismatched, once the
// run is over. The ECHO prober (package echo) reports the same type.
type Stats struct {
	Sent       int // pings written to the channel
	Received   int // echoes that came back intact
	Lost       int // no echo within the timeout, or the channel died first
	Mismatched int // an echo came back, but not byte for byte what was sent
	// Unexpected counts echoes that answer no outstanding ping: a late
	// echo of a ping already counted lost, a duplicate, or a corrupted
	// sequence number. They are not pings, so they are outside the sum.
	Unexpected int
	// RTTs holds the round-trip time of every intact echo, in arrival
	// order.
	RTTs []time.Duration
}

// OK reports whether every ping sent came back intact and nothing else
// came back.
func (s *Stats) OK() bool { return s.Lost == 0 && s.Mismatched == 0 && s.Unexpected == 0 }

// Merge adds o's counts and round trips to s (the server program sums the
// clients it served in turn).
func (s *Stats) Merge(o *Stats) {
	s.Sent += o.Sent
	s.Received += o.Received
	s.Lost += o.Lost
	s.Mismatched += o.Mismatched
	s.Unexpected += o.Unexpected
	s.RTTs = append(s.RTTs, o.RTTs...)
}

// Min is the smallest round trip, 0 with none.
func (s *Stats) Min() time.Duration {
	if len(s.RTTs) == 0 {
		return 0
	}
	return slices.Min(s.RTTs)
}

// Max is the largest round trip, 0 with none.
func (s *Stats) Max() time.Duration {
	if len(s.RTTs) == 0 {
		return 0
	}
	return slices.Max(s.RTTs)
}

// Avg is the mean round trip, 0 with none.
func (s *Stats) Avg() time.Duration {
	if len(s.RTTs) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range s.RTTs {
		sum += d
	}
	return sum / time.Duration(len(s.RTTs))
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// the round trips, 0 with none: the smallest RTT that at least p% of the
// RTTs do not exceed.
func (s *Stats) Percentile(p float64) time.Duration {
	if len(s.RTTs) == 0 {
		return 0
	}
	sorted := slices.Clone(s.RTTs)
	slices.Sort(sorted)
	return percentile(sorted, p)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Summary is a ping(8)-style report headed by name:
//
//	--- dvc::sample::simpleplugin ping statistics ---
//	5 sent, 5 received, 0 lost, 0 mismatched, 0.0% loss
//	rtt min/avg/p50/p99/max = 0.118/0.164/0.151/0.240/0.240 ms
//
// An unexpected-echo count is added to the second line when there were
// any; the rtt line is left out when nothing came back.
func (s *Stats) Summary(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s ping statistics ---\n", name)
	loss := 0.0
	if s.Sent > 0 {
		loss = 100 * float64(s.Sent-s.Received) / float64(s.Sent)
	}
	fmt.Fprintf(&b, "%d sent, %d received, %d lost, %d mismatched", s.Sent, s.Received, s.Lost, s.Mismatched)
	if s.Unexpected > 0 {
		fmt.Fprintf(&b, ", %d unexpected", s.Unexpected)
	}
	fmt.Fprintf(&b, ", %.1f%% loss\n", loss)
	if len(s.RTTs) > 0 {
		sorted := slices.Clone(s.RTTs)
		slices.Sort(sorted)
		fmt.Fprintf(&b, "rtt min/avg/p50/p99/max = %.3f/%.3f/%.3f/%.3f/%.3f ms\n",
			ms(sorted[0]), ms(s.Avg()), ms(percentile(sorted, 50)), ms(percentile(sorted, 99)), ms(sorted[len(sorted)-1]))
	}
	return b.String()
}

// ms converts d to milliseconds as the log lines print them.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// LogValue makes Stats log as a group of counts and round trips in
// milliseconds, for JSON logs:
// {"sent":5,"received":5,...,"rttMs":{"min":0.1,"avg":0.2,...}}.
func (s *Stats) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.Int("sent", s.Sent), slog.Int("received", s.Received), slog.Int("lost", s.Lost),
		slog.Int("mismatched", s.Mismatched), slog.Int("unexpected", s.Unexpected),
	}
	if len(s.RTTs) > 0 {
		sorted := slices.Clone(s.RTTs)
		slices.Sort(sorted)
		attrs = append(attrs, slog.Group("rttMs",
			"min", ms(sorted[0]), "avg", ms(s.Avg()), "p50", ms(percentile(sorted, 50)),
			"p99", ms(percentile(sorted, 99)), "max", ms(sorted[len(sorted)-1])))
	}
	return slog.GroupValue(attrs...)
}
