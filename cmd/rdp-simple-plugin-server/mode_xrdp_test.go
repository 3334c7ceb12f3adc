package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/simple"
)

// gapSource yields a client that dies, then, as xrdp's source does after
// a lost connection (once the first session has ended), the same session
// again with the time the first client went away pushed back by gap.
type gapSource struct {
	first, second *loopback.Hub
	gap           time.Duration
	i             int
	done          chan struct{} // the first session ended
	mu            sync.Mutex
	endedWith     []error
	lostAt        time.Time
}

func (s *gapSource) Next(ctx context.Context) (session, error) {
	s.i++
	switch s.i {
	case 1:
		return session{opener: s.first, label: "first", close: func() { s.first.Close() }, ended: s.ended}, nil
	case 2:
		select {
		case <-s.done:
		case <-ctx.Done():
			return session{}, io.EOF
		}
		s.mu.Lock()
		lost := s.lostAt
		s.mu.Unlock()
		return session{opener: s.second, label: "second", close: func() {}, ended: s.ended, gapSince: lost.Add(-s.gap)}, nil
	}
	return session{}, io.EOF
}

func (s *gapSource) ended(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endedWith = append(s.endedWith, err)
	if len(s.endedWith) == 1 {
		s.lostAt = time.Now()
		close(s.done)
	}
}
func (s *gapSource) Close() error { return nil }

func TestServeCountsThePingsOfAClientsAbsenceLost(t *testing.T) {
	first, second := loopback.New(), loopback.New()
	if err := first.Listen(simple.ChannelName, &dyingEchoer{hub: first, n: 2}); err != nil {
		t.Fatal(err)
	}
	if err := second.Listen(simple.ChannelName, &simple.Echoer{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	// The gap is set, not waited for: 1 s at 100 ms a ping is at least
	// 10 pings due while nobody was there.
	src := &gapSource{first: first, second: second, gap: time.Second, done: make(chan struct{})}
	p := &simple.Pinger{Interval: 100 * time.Millisecond, Count: 3, Logger: log, Tick: fastTicks(t)}
	tl, err := serve(context.Background(), src, p, simple.ChannelName, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	total := tl.Total()
	if len(src.endedWith) != 2 || !errors.Is(src.endedWith[0], dvc.ErrConnectionLost) || src.endedWith[1] != nil {
		t.Fatalf("ended with %v, want a lost connection, then nil", src.endedWith)
	}
	// First client: 2 echoed, at least one lost as it died; the gap: at
	// least 10 lost; second client: 3 of 3.
	if total.Received != 5 || total.Lost < 11 || total.Sent != total.Received+total.Lost {
		t.Fatalf("%+v\n%s", total, logs.String())
	}
	if !strings.Contains(logs.String(), "client back; pinging again") {
		t.Fatalf("log:\n%s", logs.String())
	}
}

// fastTicks paces pings as fast as the test reads them.
func fastTicks(t *testing.T) <-chan time.Time {
	ch := make(chan time.Time)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case ch <- time.Now():
			case <-done:
				return
			}
		}
	}()
	return ch
}

// TestXRDPSourceWaitsForTheClientOnlyAfterALostConnection: after a lost
// connection the xrdp source yields the session again, opening through
// OpenWhenConnected; after a refusal, or the end of the session, it has
// no more.
func TestXRDPSourceWaitsForTheClientOnlyAfterALostConnection(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "xrdpapi_7"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	op, err := xrdp.New(xrdp.Options{Display: ":7", SocketDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		more bool
	}{
		{"lost", fmt.Errorf("write: %w", dvc.ErrConnectionLost), true},
		{"session ended", fmt.Errorf("%w: %w", xrdp.ErrSessionEnded, dvc.ErrConnectionLost), false},
		{"refused", &dvc.OpenError{Name: simple.ChannelName, Status: 0xC0000001}, false},
		{"count reached", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &xrdpSource{op: op, log: slog.New(slog.DiscardHandler)}
			first, err := s.Next(context.Background())
			if err != nil || first.opener != dvc.Opener(op) || !first.gapSince.IsZero() {
				t.Fatalf("first session: %+v, %v", first, err)
			}
			before := time.Now()
			first.end(tc.err)
			next, err := s.Next(context.Background())
			if !tc.more {
				if err != io.EOF {
					t.Fatalf("after %v: Next = %+v, %v; want io.EOF", tc.err, next, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if next.opener != op.WhenConnected() {
				t.Fatalf("second session opens with %#v, want op.WhenConnected()", next.opener)
			}
			if next.gapSince.Before(before) {
				t.Fatalf("gapSince %v is before the loss at %v", next.gapSince, before)
			}
		})
	}
}
