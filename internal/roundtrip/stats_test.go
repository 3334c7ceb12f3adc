package roundtrip

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestStatsFigures(t *testing.T) {
	var s Stats
	if s.Min() != 0 || s.Avg() != 0 || s.Percentile(50) != 0 || s.Max() != 0 || !s.OK() {
		t.Fatal("empty stats")
	}
	// 1..100 ms, shuffled order must not matter.
	for i := 100; i >= 1; i-- {
		s.RTTs = append(s.RTTs, time.Duration(i)*time.Millisecond)
	}
	s.Sent, s.Received = 100, 100
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := s.Percentile(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if s.Min() != time.Millisecond || s.Max() != 100*time.Millisecond || s.Avg() != 50500*time.Microsecond {
		t.Errorf("min %v avg %v max %v", s.Min(), s.Avg(), s.Max())
	}
}

func TestStatsSummary(t *testing.T) {
	s := Stats{Sent: 4, Received: 2, Lost: 1, Mismatched: 1,
		RTTs: []time.Duration{1500 * time.Microsecond, 500 * time.Microsecond}}
	want := "--- dvc::sample::simpleplugin ping statistics ---\n" +
		"4 sent, 2 received, 1 lost, 1 mismatched, 50.0% loss\n" +
		"rtt min/avg/p50/p99/max = 0.500/1.000/0.500/1.500/1.500 ms\n"
	if got := s.Summary("dvc::sample::simpleplugin"); got != want {
		t.Errorf("Summary =\n%s\nwant\n%s", got, want)
	}
	if s.OK() {
		t.Error("OK with losses")
	}
	s = Stats{Sent: 1, Lost: 1, Unexpected: 2}
	want = "--- ECHO ping statistics ---\n1 sent, 0 received, 1 lost, 0 mismatched, 2 unexpected, 100.0% loss\n"
	if got := s.Summary("ECHO"); got != want {
		t.Errorf("Summary =\n%s\nwant\n%s", got, want)
	}
	if (&Stats{Sent: 1, Received: 1, Unexpected: 1}).OK() {
		t.Error("OK with an unexpected echo")
	}
}

func TestStatsLogValue(t *testing.T) {
	var buf bytes.Buffer
	s := &Stats{Sent: 2, Received: 1, Lost: 1, RTTs: []time.Duration{1500 * time.Microsecond}}
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("summary", "stats", s)
	want := `"stats":{"sent":2,"received":1,"lost":1,"mismatched":0,"unexpected":0,"rttMs":{"min":1.5,"avg":1.5,"p50":1.5,"p99":1.5,"max":1.5}}`
	if !strings.Contains(buf.String(), want) {
		t.Fatalf("%s\nlacks %s", buf.String(), want)
	}
}

func TestStatsMerge(t *testing.T) {
	a := Stats{Sent: 2, Received: 1, Lost: 1, RTTs: []time.Duration{1}}
	b := Stats{Sent: 3, Received: 2, Mismatched: 1, Unexpected: 1, RTTs: []time.Duration{2, 3}}
	a.Merge(&b)
	if a.Sent != 5 || a.Received != 3 || a.Lost != 1 || a.Mismatched != 1 || a.Unexpected != 1 || len(a.RTTs) != 3 {
		t.Fatalf("%+v", a)
	}
}

func TestReplyLine(t *testing.T) {
	r := Reply{Seq: 12, Payload: 5120, RTT: 12345 * time.Microsecond}
	if got := r.Line(); got != "Ping#12 payload=5120 rttMs=12.35" && got != "Ping#12 payload=5120 rttMs=12.34" {
		t.Fatalf("Line = %q", got)
	}
	r.RTT = 7 * time.Millisecond
	if got := r.Line(); got != "Ping#12 payload=5120 rttMs=7.00" {
		t.Fatalf("Line = %q", got)
	}
}
