package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/simple"
	"github.com/rdpdvc/rdpdvc/trace"
)

// atExit runs after every test (the e2e tests remove their binaries).
var atExit []func()

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		for _, f := range atExit {
			f()
		}
		os.Exit(code)
	}))
}

// hubSource yields loopback hubs as RDP connections. The client of the
// first one dies after a few echoes.
type hubSource struct {
	hubs []*loopback.Hub
	i    int
}

func (s *hubSource) Next(ctx context.Context) (session, error) {
	if s.i == len(s.hubs) {
		return session{}, io.EOF
	}
	h := s.hubs[s.i]
	s.i++
	return session{opener: h, label: "hub", close: func() { h.Close() }}, nil
}
func (s *hubSource) Close() error { return nil }

// dyingEchoer echoes n messages, then drops the RDP connection without
// echoing the next one: Ping n+1 is in flight when the client dies.
type dyingEchoer struct {
	hub *loopback.Hub
	n   int32
	got atomic.Int32
}

func (d *dyingEchoer) Accept(ch dvc.Channel) (dvc.Handler, error) {
	return handler(func(msg []byte) {
		if d.got.Add(1) > d.n {
			go d.hub.Close()
			return
		}
		_ = ch.Write(context.Background(), msg)
	}), nil
}

type handler func([]byte)

func (h handler) Received(m []byte) { h(m) }
func (handler) Closed(error)        {}

func TestServeKeepsGoingAfterAClientDies(t *testing.T) {
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
	p := &simple.Pinger{Interval: time.Millisecond, Count: 4, Logger: log}
	tl, err := serve(context.Background(), &hubSource{hubs: []*loopback.Hub{first, second}}, p, simple.ChannelName, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	total := tl.Total()
	// First client: 2 echoed, Ping#3 lost as it died (and #4, if a tick
	// came before the death was seen: its Write fails, and the echoes
	// queued before the death still count). Second: 4 of 4.
	if total.Received != 6 || total.Lost < 1 || total.Sent != total.Received+total.Lost || total.OK() {
		t.Fatalf("%+v\n%s", total, logs.String())
	}
	if !strings.Contains(logs.String(), "client gone") || !strings.Contains(logs.String(), "Ping#3 lost") {
		t.Fatalf("log:\n%s", logs.String())
	}
}

func TestServeReportsRefusedOpenAndGoesOn(t *testing.T) {
	noListener, good := loopback.New(), loopback.New()
	defer noListener.Close()
	defer good.Close()
	if err := good.Listen(simple.ChannelName, &simple.Echoer{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	p := &simple.Pinger{Interval: time.Millisecond, Count: 2, Logger: log}
	tl, err := serve(context.Background(), &hubSource{hubs: []*loopback.Hub{noListener, good}}, p, simple.ChannelName, 0, log)
	total := tl.Total()
	if err != nil || total.Received != 2 || !total.OK() {
		t.Fatalf("%+v %v", total, err)
	}
	if !strings.Contains(logs.String(), "cannot open the channel") {
		t.Fatalf("log:\n%s", logs.String())
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	hub := loopback.New()
	defer hub.Close()
	if err := hub.Listen(simple.ChannelName, &simple.Echoer{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	p := &simple.Pinger{Interval: time.Millisecond, Logger: log, OnReply: func(r simple.Reply) {
		if r.Seq == 3 {
			cancel()
		}
	}}
	tl, err := serve(ctx, &hubSource{hubs: []*loopback.Hub{hub}}, p, simple.ChannelName, 0, log)
	total := tl.Total()
	if !errors.Is(err, context.Canceled) || total.Received < 3 || !total.OK() {
		t.Fatalf("%+v %v", total, err)
	}
}

func TestFlags(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"-interval", "0"}, {"-payload", "-1"}, {"extra"}, {"-log-format", "xml"}, {"-nope"}} {
		out.Reset()
		errb.Reset()
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if runtime.GOOS != "windows" {
		if code := run(context.Background(), []string{"/filehandle"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `mode "filehandle" is not available`) {
			t.Errorf("/filehandle off Windows: exit %d, %s", code, errb.String())
		}
	}
	errb.Reset()
	if code := run(context.Background(), []string{"-h"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "-listen") {
		t.Errorf("-h: exit %d, %s", code, errb.String())
	}
}

func TestPickMode(t *testing.T) {
	saved := xrdpDetect
	defer func() { xrdpDetect = saved }()
	xrdpDetect = func() bool { return false }
	plain := "portable" // with no flags: the portable transport, or WTS on Windows as in the sample
	if runtime.GOOS == "windows" {
		plain = "wts"
	}
	for _, c := range []struct {
		o    options
		want string
	}{
		{options{}, plain},
		{options{listen: "127.0.0.1:1"}, "portable"},
		{options{xrdp: true}, "xrdp"},
		{options{fileHandle: true}, "filehandle"},
	} {
		if got := pickMode(&c.o); got != c.want {
			t.Errorf("%+v: %s, want %s", c.o, got, c.want)
		}
	}
	xrdpDetect = func() bool { return true }
	if got := pickMode(&options{}); got != "xrdp" {
		t.Errorf("inside xrdp: %s", got)
	}
	if got := pickMode(&options{listen: "127.0.0.1:1"}); got != "portable" {
		t.Errorf("-listen inside xrdp: %s", got)
	}
}

func TestServeSingleSessionRefusedIsAnError(t *testing.T) {
	// As in xrdp mode: one session, whose client has no listener.
	hub := loopback.New()
	defer hub.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	_, err := serve(context.Background(), &hubSource{hubs: []*loopback.Hub{hub}}, &simple.Pinger{Logger: log}, "rdpdvc::no-such-listener", 0, log)
	var oe *dvc.OpenError
	if !errors.As(err, &oe) || !strings.Contains(logs.String(), "C0000001") {
		t.Fatalf("err %v\n%s", err, logs.String())
	}
}

// A client that answers the capabilities but never the channel's
// DYNVC_CREATE_REQ no longer denies the server to the client after it:
// clients are served at once, and the stuck one's Open times out. Before,
// the second client waited for ever behind the first.
func TestStuckFirstClientDoesNotDelayTheNext(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	o := &options{listen: "127.0.0.1:0", maxClients: 4, limits: limits{caps: 5 * time.Second, open: 200 * time.Millisecond, write: 5 * time.Second}}
	src, err := openPortable(context.Background(), o, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	addr := src.(*portableSource).ln.Addr().String()

	// The stuck client: it answers DYNVC_CAPS_VERSION2 with DYNVC_CAPS_RSP
	// (one chunk, MS-RDPBCGR CHANNEL_PDU_HEADER FIRST|LAST) and then reads
	// and ignores everything.
	stuck, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	if _, err := stuck.Write([]byte{4, 0, 0, 0, 3, 0, 0, 0, 0x50, 0, 2, 0}); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stuck)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	legit, err := portable.Dial(ctx, addr, portable.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := legit.Listen(simple.ChannelName, &simple.Echoer{Logger: log}); err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- legit.Run(ctx) }()

	p := &simple.Pinger{Interval: 10 * time.Millisecond, Count: 3, Logger: log}
	tl, err := serve(context.Background(), src, p, simple.ChannelName, 3, log)
	if err != nil {
		t.Fatal(err)
	}
	if got := tl.Total(); got.Received != 3 || !got.OK() {
		t.Fatalf("%+v", got)
	}
	if !strings.Contains(tl.Summary(simple.ChannelName), "ping statistics") {
		t.Fatal(tl.Summary(simple.ChannelName))
	}
	cancel()
	<-ran
}

// silent accepts the channel and never echoes.
type silent struct{}

func (silent) Accept(dvc.Channel) (dvc.Handler, error) { return handler(func([]byte) {}), nil }

// A client that opens the channel and never echoes is dropped after
// -drop-after pings lost in a row; before, it was pinged for ever.
func TestClientThatNeverEchoesIsDropped(t *testing.T) {
	hub := loopback.New()
	defer hub.Close()
	if err := hub.Listen(simple.ChannelName, silent{}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	p := &simple.Pinger{Interval: time.Millisecond, Timeout: 5 * time.Millisecond, Logger: log}
	done := make(chan error, 1)
	var tl *tally
	go func() {
		var err error
		tl, err = serve(context.Background(), &hubSource{hubs: []*loopback.Hub{hub}}, p, simple.ChannelName, 3, log)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errDropped) {
			t.Fatalf("serve: %v, want errDropped", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a client that never echoes is still being pinged")
	}
	if got := tl.Total(); got.Lost < 3 || got.Received != 0 {
		t.Fatalf("%+v", got)
	}
}

// With several clients the summary gives each one's figures.
func TestSummaryCountsPerClient(t *testing.T) {
	tl := &tally{}
	tl.add("#1", simple.Stats{Sent: 3, Received: 3})
	tl.add("#2", simple.Stats{Sent: 4, Lost: 4})
	s := tl.Summary(simple.ChannelName)
	for _, want := range []string{"client #1: 3 sent, 3 received, 0 lost", "client #2: 4 sent, 0 received, 4 lost", "7 sent, 3 received, 4 lost"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if tl.OK() {
		t.Error("OK with a client's losses")
	}
}

// Silent connections filling -max-clients do not keep a real client out:
// the oldest still in its handshake is dropped to make room for it.
func TestSilentConnectionsAtMaxClientsAreEvicted(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	o := &options{listen: "127.0.0.1:0", maxClients: 2, limits: limits{caps: time.Minute, open: time.Minute, write: 5 * time.Second}}
	src, err := openPortable(context.Background(), o, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	addr := src.(*portableSource).ln.Addr().String()
	for range 3 { // the listen backlog hands them over in this order
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	legit, err := portable.Dial(ctx, addr, portable.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	legit.Listen(simple.ChannelName, &simple.Echoer{Logger: log})
	ran := make(chan error, 1)
	go func() { ran <- legit.Run(ctx) }()
	p := &simple.Pinger{Interval: 10 * time.Millisecond, Count: 2, Logger: log}
	done := make(chan error, 1)
	var tl *tally
	go func() {
		var err error
		tl, err = serve(context.Background(), src, p, simple.ChannelName, 3, log)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the real client was kept out by silent connections")
	}
	if got := tl.Total(); got.Received != 2 {
		t.Fatalf("%+v", got)
	}
	cancel()
	<-ran
}

// -trace: every session's channel is recorded, pings and echoes, each
// session as its own connection.
func TestServeTraced(t *testing.T) {
	hub := loopback.New()
	defer hub.Close()
	if err := hub.Listen(simple.ChannelName, &simple.Echoer{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	src := &tracedSource{source: &hubSource{hubs: []*loopback.Hub{hub}}, rec: trace.New(&buf, trace.Server)}
	p := &simple.Pinger{Interval: time.Millisecond, Count: 3, Logger: slog.New(slog.DiscardHandler)}
	if _, err := serve(context.Background(), src, p, simple.ChannelName, 0, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for r := trace.NewReader(&buf); ; {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Conn != 1 || e.Channel != simple.ChannelName {
			t.Errorf("record %+v", e)
		}
		counts[string(e.Kind)+" "+string(e.From)]++
	}
	if counts["open server"] != 1 || counts["data server"] != 3 || counts["data client"] != 3 || counts["close server"] != 1 {
		t.Fatalf("trace: %v", counts)
	}
}

// Logs go to stderr, the summary alone to stdout (issue: they were mixed).
func TestLogsOnStderrSummaryOnStdout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	er, ew := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-count", "1"}, &out, ew)
		ew.Close()
	}()
	sc := bufio.NewScanner(er)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "listening (portable transport)") {
			cancel() // Ctrl+C, with no client
			break
		}
	}
	go io.Copy(io.Discard, er)
	<-done
	if s := out.String(); strings.Contains(s, " INFO ") || strings.Contains(s, "listening") || !strings.Contains(s, "ping statistics") {
		t.Fatalf("stdout:\n%s", s)
	}
}
