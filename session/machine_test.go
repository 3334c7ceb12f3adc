package session

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// The machine alone: PDUs and local requests in, PDUs and events out, on
// the test's goroutine. "Nothing sent" is an empty output, not a wait.

func newMachine(r role, cfg Config) *machine {
	cfg.Logger = quiet
	m := &machine{}
	m.init(r, cfg)
	return m
}

// feed gives m one PDU written in hex and returns its output.
func feed(t *testing.T, m *machine, pdu string) (*output, error) {
	t.Helper()
	o := &output{}
	err := m.receive(hexb(t, pdu), o)
	return o, err
}

// mustFeed is feed for a PDU that must be accepted.
func mustFeed(t *testing.T, m *machine, pdu string) *output {
	t.Helper()
	o, err := feed(t, m, pdu)
	if err != nil {
		t.Fatalf("PDU %s: %v", pdu, err)
	}
	return o
}

// sends checks that o sends exactly the PDUs want (hex), in order.
func sends(t *testing.T, o *output, want ...string) {
	t.Helper()
	if len(o.send) != len(want) {
		t.Fatalf("sent %d PDUs (% x), want %d", len(o.send), o.send, len(want))
	}
	for i, w := range want {
		if !bytes.Equal(o.send[i], hexb(t, w)) {
			t.Fatalf("PDU %d: % x, want %s", i, o.send[i], w)
		}
	}
}

// only checks that o's events are exactly of the kinds want, in order,
// and returns them.
func only(t *testing.T, o *output, want ...evKind) []event {
	t.Helper()
	if len(o.events) != len(want) {
		t.Fatalf("%d events %+v, want kinds %v", len(o.events), o.events, want)
	}
	for i, k := range want {
		if o.events[i].kind != k {
			t.Fatalf("event %d is %+v, want kind %v", i, o.events[i], k)
		}
	}
	return o.events
}

// nothing checks that o asks for nothing at all.
func nothing(t *testing.T, o *output) {
	t.Helper()
	if !o.empty() {
		t.Fatalf("output not empty: sends % x, events %+v", o.send, o.events)
	}
}

// clientWith is a client machine past the capabilities request (v2,
// MS-RDPEDYC 4.1.1) with a listener for each name.
func clientWith(t *testing.T, cfg Config, names ...string) *machine {
	t.Helper()
	m := newMachine(roleClient, cfg)
	for _, n := range names {
		m.listen(n)
	}
	o := mustFeed(t, m, "58 00 02 00 33 33 11 11 3d 0a a7 04")
	sends(t, o, "50 00 02 00") // 4.1.2
	if ev := only(t, o, evCaps); ev[0].version != 2 {
		t.Fatalf("version %d", ev[0].version)
	}
	return m
}

// acceptOn has the client machine accept a create request for name on id
// (hex), as its driver does once the listener accepts, and checks the
// DYNVC_CREATE_RSP.
func acceptOn(t *testing.T, m *machine, create string) *mchan {
	t.Helper()
	ev := only(t, mustFeed(t, m, create), evAccept)
	e := ev[0].ch
	if err := m.writable(e); err == nil {
		t.Fatal("writable before the create response")
	}
	rsp := m.accepted(e)
	if want := (drdynvc.CreateResponse{ChannelID: e.id}).Append(nil); !bytes.Equal(rsp, want) {
		t.Fatalf("create response % x, want % x", rsp, want)
	}
	if err := m.writable(e); err != nil {
		t.Fatal(err)
	}
	return e
}

// The client's side of MS-RDPEDYC section 4, byte for byte.
func TestMachineClientScript(t *testing.T) {
	m := clientWith(t, Config{}, "testdvc")
	// 4.2.1 create request → 4.2.2 create response, once accepted.
	e := acceptOn(t, m, "10 03 74 65 73 74 64 76 63 00")
	if e.id != 3 || e.name != "testdvc" {
		t.Fatalf("accepted %d %q", e.id, e.name)
	}
	// A DYNVC_DATA is a whole message.
	ev := only(t, mustFeed(t, m, "30 03 01 02 03"), evDeliver)
	if ev[0].ch != e || !bytes.Equal(ev[0].msg, []byte{1, 2, 3}) {
		t.Fatalf("delivered % x to %d", ev[0].msg, ev[0].ch.id)
	}
	// 4.3.1, 4.3.2: DATA_FIRST and DATA make one message of 3195 bytes.
	nothing(t, mustFeed(t, m, "24 03 7b 0c "+strings.Repeat("71 ", 1596)))
	nothing(t, mustFeed(t, m, "34 03 "+strings.Repeat("71 ", 1598)))
	ev = only(t, mustFeed(t, m, "34 03 71"), evDeliver)
	if !bytes.Equal(ev[0].msg, bytes.Repeat([]byte{0x71}, 3195)) {
		t.Fatalf("reassembled %d bytes", len(ev[0].msg))
	}
	// No listener: STATUS_UNSUCCESSFUL, little-endian, and an event for
	// the (rate-limited) log.
	o := mustFeed(t, m, "10 04 6e 6f 00")
	sends(t, o, "10 04 01 00 00 c0")
	if ev := only(t, o, evRefused); ev[0].why != "no listener" || ev[0].name != "no" || ev[0].id != 4 {
		t.Fatalf("refusal event %+v", ev[0])
	}
	// Close from the server is answered (4.4.1) and ends the channel with
	// EOF after what is queued.
	o = mustFeed(t, m, "40 03")
	sends(t, o, "40 03")
	if ev := only(t, o, evEnd); ev[0].ch != e || ev[0].err != nil || ev[0].discard {
		t.Fatalf("end %+v", ev[0])
	}
	if err := m.writable(e); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("write after the server's close: %v", err)
	}
	// A close for an unknown id is ignored and not answered (3.2.5.2).
	nothing(t, mustFeed(t, m, "40 09"))
	// Data for it is dropped.
	nothing(t, mustFeed(t, m, "30 03 01"))
	// The id is free: the server may use it again.
	acceptOn(t, m, "10 03 74 65 73 74 64 76 63 00")
}

// serverOpen is a server machine past the capabilities exchange with n
// channels open (ChannelIds 1..n).
func serverOpen(t *testing.T, cfg Config, n int) (*machine, []*mchan) {
	t.Helper()
	m := newMachine(roleServer, cfg)
	want := drdynvc.CapsRequest{Version: 2, PriorityCharges: DefaultPriorityCharges}.Append(nil)
	if got := m.start(); !bytes.Equal(got, want) {
		t.Fatalf("caps request % x, want % x", got, want)
	}
	if _, _, err := m.open("x", 0); err == nil {
		t.Fatal("open before the capabilities answer")
	}
	if ev := only(t, mustFeed(t, m, "50 00 02 00"), evCaps); ev[0].version != 2 {
		t.Fatalf("version %d", ev[0].version)
	}
	var chans []*mchan
	for i := range n {
		e, req, err := m.open("x", 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := (drdynvc.CreateRequest{ChannelID: uint32(i + 1), ChannelName: "x"}).Append(nil); !bytes.Equal(req, want) {
			t.Fatalf("create request % x, want % x", req, want)
		}
		if ev := only(t, mustFeed(t, m, fmt.Sprintf("10 %02x 00 00 00 00", i+1)), evOpened); ev[0].ch != e {
			t.Fatal("opened the wrong channel")
		}
		chans = append(chans, e)
	}
	return m, chans
}

// The server's side: open, data both ways' rules, close and its reply.
func TestMachineServerScript(t *testing.T) {
	m, chans := serverOpen(t, Config{}, 2)
	a, b := chans[0], chans[1]
	ev := only(t, mustFeed(t, m, "30 01 68 69"), evDeliver)
	if ev[0].ch != a || string(ev[0].msg) != "hi" {
		t.Fatalf("delivered %q to %d", ev[0].msg, ev[0].ch.id)
	}
	// Closed from this end: DYNVC_CLOSE goes out, the id stays taken
	// until the client's reply, data in flight is dropped.
	pdu, first := m.closeLocal(a)
	if !first || !bytes.Equal(pdu, []byte{0x40, 0x01}) {
		t.Fatalf("close % x %v", pdu, first)
	}
	if _, first := m.closeLocal(a); first {
		t.Fatal("second close counted")
	}
	nothing(t, mustFeed(t, m, "30 01 68 69"))
	if e, _, _ := m.open("x", 0); e.id != 3 {
		t.Fatalf("new channel got id %d while 1 awaits its close reply", e.id)
	}
	nothing(t, mustFeed(t, m, "40 01")) // the reply: not answered, nothing to end
	if m.channels[1] != nil {
		t.Fatal("id 1 still taken after the close reply")
	}
	// The client closes b: not answered (3.3.5.2), EOF for the reader.
	o := mustFeed(t, m, "40 02")
	sends(t, o)
	if ev := only(t, o, evEnd); ev[0].ch != b || ev[0].err != nil {
		t.Fatalf("end %+v", ev[0])
	}
	if err := m.writable(b); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("write after the client's close: %v", err)
	}
}

// A refusal ends the pending open with the client's status; a close
// instead of an answer is a refusal with E_FAIL.
func TestMachineServerRefusals(t *testing.T) {
	m, _ := serverOpen(t, Config{}, 0)
	e, _, _ := m.open("x", 0)
	var oe *dvc.OpenError
	ev := only(t, mustFeed(t, m, "10 01 01 00 00 c0"), evEnd)
	if !errors.As(ev[0].err, &oe) || oe.Status != hresult.StatusUnsuccessful || ev[0].ch != e {
		t.Fatalf("end %+v", ev[0])
	}
	if len(m.channels) != 0 {
		t.Fatal("a refused id is still taken")
	}
	e, _, _ = m.open("x", 0)
	ev = only(t, mustFeed(t, m, fmt.Sprintf("40 %02x", e.id)), evEnd)
	if !errors.As(ev[0].err, &oe) || oe.Status != hresult.E_FAIL {
		t.Fatalf("close instead of an answer: %+v", ev[0])
	}
}

// An Open that gave up: the late success is closed at once, the late
// reply then frees the id; nothing is delivered to anyone.
func TestMachineAbandonedOpen(t *testing.T) {
	m, _ := serverOpen(t, Config{}, 0)
	e, _, _ := m.open("x", 0)
	if !m.abandon(e) {
		t.Fatal("abandon of a pending open")
	}
	o := mustFeed(t, m, "10 01 00 00 00 00")
	sends(t, o, "40 01")
	only(t, o)
	nothing(t, mustFeed(t, m, "40 01"))
	// Answered before the opener gave up: not abandoned, the opener
	// takes the answer.
	e, _, _ = m.open("x", 0)
	only(t, mustFeed(t, m, fmt.Sprintf("10 %02x 00 00 00 00", e.id)), evOpened)
	if m.abandon(e) {
		t.Fatal("abandoned an answered open")
	}
	// Never written: the id is free again.
	e, _, _ = m.open("x", 0)
	m.unsent(e)
	if m.channels[e.id] != nil {
		t.Fatal("an unsent request keeps its id")
	}
}

// The caps timer is an input: once it has fired, open refuses, even after
// a late answer (3.3.2, 3.3.3.1.4); fired after the answer, it changes
// nothing.
func TestMachineCapsTimer(t *testing.T) {
	m := newMachine(roleServer, Config{})
	m.start()
	if !m.capsTimer() {
		t.Fatal("the timer did not win before any answer")
	}
	if _, _, err := m.open("x", 0); !errors.Is(err, errCapsTimeout) {
		t.Fatalf("open after the timer: %v", err)
	}
	only(t, mustFeed(t, m, "50 00 02 00"), evCaps)
	if _, _, err := m.open("x", 0); !errors.Is(err, errCapsTimeout) {
		t.Fatalf("open after a late answer: %v", err)
	}
	m2, _ := serverOpen(t, Config{}, 0)
	if m2.capsTimer() {
		t.Fatal("the timer won after the answer")
	}
	if _, _, err := m2.open("x", 0); err != nil {
		t.Fatal(err)
	}
}

// A name no DYNVC_CREATE_REQ can carry is refused before anything is sent
// (2.2.2.1, 3.1.5.2.4): no PDU, no channel.
func TestMachineOpenRefusesBadNames(t *testing.T) {
	m, _ := serverOpen(t, Config{}, 0)
	for _, name := range []string{"", strings.Repeat("a", 257), "a\x00b"} {
		e, req, err := m.open(name, 0)
		var pe *drdynvc.ParseError
		if !errors.As(err, &pe) || pe.Field != "ChannelName" || e != nil || req != nil {
			t.Fatalf("open(%.20q) = %v, % x, %v", name, e, req, err)
		}
	}
	if len(m.channels) != 0 {
		t.Fatalf("%d channels after refused opens", len(m.channels))
	}
	if _, req, err := m.open(strings.Repeat("a", drdynvc.MaxChannelNameLen), 0); err != nil || len(req) == 0 {
		t.Fatalf("the longest legal name: %v", err)
	}
}

// MaxChannels on both ends: the server's open fails (channels awaiting a
// close reply do not count), the client refuses with E_OUTOFMEMORY.
func TestMachineMaxChannels(t *testing.T) {
	m, chans := serverOpen(t, Config{MaxChannels: 2}, 2)
	if _, _, err := m.open("x", 0); err == nil || !strings.Contains(err.Error(), "MaxChannels") {
		t.Fatalf("third open: %v", err)
	}
	m.closeLocal(chans[0])
	if _, _, err := m.open("x", 0); err != nil {
		t.Fatalf("open beside a channel awaiting its close reply: %v", err)
	}

	c := clientWith(t, Config{MaxChannels: 1}, "x")
	acceptOn(t, c, "10 03 78 00")
	o := mustFeed(t, c, "10 04 78 00")
	sends(t, o, "10 04 0e 00 07 80")
	if ev := only(t, o, evRefused); ev[0].why != "too many" {
		t.Fatalf("event %+v", ev[0])
	}
}

// The client's own close is not answered, so its id is free at once; a
// close during Accept makes the answer a refusal (3.2.3.2.1); a listener's
// refusal carries its status.
func TestMachineClientCloses(t *testing.T) {
	m := clientWith(t, Config{}, "x")
	e := acceptOn(t, m, "10 03 78 00")
	pdu, first := m.closeLocal(e)
	if !first || !bytes.Equal(pdu, []byte{0x40, 0x03}) || m.channels[3] != nil {
		t.Fatalf("close % x %v; table %v", pdu, first, m.channels)
	}
	if err := m.writable(e); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	nothing(t, mustFeed(t, m, "30 03 01")) // in flight: dropped

	e = only(t, mustFeed(t, m, "10 05 78 00"), evAccept)[0].ch
	if pdu, _ := m.closeLocal(e); pdu != nil {
		t.Fatalf("a close during Accept sent % x", pdu)
	}
	if rsp := m.accepted(e); !bytes.Equal(rsp, hexb(t, "10 05 01 00 00 c0")) {
		t.Fatalf("answer after a close during Accept: % x", rsp)
	}

	e = only(t, mustFeed(t, m, "10 06 78 00"), evAccept)[0].ch
	if rsp := m.acceptFailed(e, hresult.E_ACCESSDENIED); !bytes.Equal(rsp, hexb(t, "10 06 05 00 07 80")) {
		t.Fatalf("listener refusal: % x", rsp)
	}
	if m.channels[6] != nil {
		t.Fatal("a refused id is still taken")
	}

	// The server closed the id while Accept ran: nobody to answer.
	e = only(t, mustFeed(t, m, "10 07 78 00"), evAccept)[0].ch
	sends(t, mustFeed(t, m, "40 07")) // pending: no reply
	if rsp := m.accepted(e); rsp != nil {
		t.Fatalf("answered a closed id: % x", rsp)
	}
}

// A message over MaxMessage closes only its channel, from this end: the
// server keeps the id for the reply, the client frees it.
func TestMachineOversizedMessage(t *testing.T) {
	for _, r := range []role{roleServer, roleClient} {
		var m *machine
		var e *mchan
		if r == roleServer {
			var chans []*mchan
			m, chans = serverOpen(t, Config{MaxMessage: 4096}, 1)
			e = chans[0]
		} else {
			m = clientWith(t, Config{MaxMessage: 4096}, "x")
			e = acceptOn(t, m, "10 01 78 00")
		}
		o := mustFeed(t, m, "28 01 00 20 00 00 01") // DATA_FIRST.Length 8192
		sends(t, o, "40 01")
		if ev := only(t, o, evEnd); !errors.Is(ev[0].err, dvc.ErrTooLarge) || !ev[0].discard || ev[0].ch != e {
			t.Fatalf("role %d: end %+v", r, ev[0])
		}
		nothing(t, mustFeed(t, m, "30 01 01")) // the rest: dropped
		if r == roleServer && m.channels[1] == nil || r == roleClient && m.channels[1] != nil {
			t.Fatalf("role %d: table after the abort: %v", r, m.channels)
		}
	}
}

// Input MS-RDPEDYC 3.1.5.2.4 says terminates the connection: receive
// returns a *ProtocolError naming the PDU, and the machine has failed —
// every channel ended with dvc.ErrConnectionLost, nothing opens again.
func TestMachineClientBadInputTerminates(t *testing.T) {
	caps := "50 00 02 00 00 00 00 00 00 00 00 00"
	open := "10 03 78 00" // create "x" on channel 3
	for _, tc := range []struct {
		name, after, pdu, want string
	}{
		{"data before caps", "", "30 03 00", "DYNVC_DATA"},
		{"create before caps", "", open, "DYNVC_CREATE"},
		{"caps twice", caps, caps, "twice"},
		{"caps version 0", "", "50 00 00 00", "Version"},
		{"truncated caps", "", "50 00 02", "DYNVC_CAPS"},
		{"create without terminator", caps, "10 03 78", "DYNVC_CREATE_REQ"},
		{"duplicate channel id", caps + "|" + open, open, "already in use"},
		{"invalid cbId", caps, "33 03", "DYNVC_DATA"},
		{"compressed data", caps, "70 03 00", "DYNVC_DATA_COMPRESSED"},
		{"soft-sync", caps, "80 00 08 00 00 00 01 00 00 00", "SOFT_SYNC"},
		{"unknown cmd", caps, "f0 00", "unknown Cmd"},
		{"data first twice", caps + "|" + open + "|" + "24 03 ff 01 02", "24 03 ff 01 02", "out of sequence"},
		{"data overruns data first", caps + "|" + open + "|" + "20 03 03 01 02", "30 03 01 02", "overrun"},
		{"empty", caps, "", "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(roleClient, Config{})
			m.listen("x")
			var open *mchan
			if tc.after != "" {
				for _, p := range strings.Split(tc.after, "|") {
					o := mustFeed(t, m, p)
					for _, ev := range o.events {
						if ev.kind == evAccept {
							m.accepted(ev.ch)
							open = ev.ch
						}
					}
				}
			}
			o, err := feed(t, m, tc.pdu)
			var pe *ProtocolError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a *ProtocolError mentioning %q", err, tc.want)
			}
			terminated(t, m, o, open)
			if o, err := feed(t, m, open3); err == nil || !o.empty() {
				t.Fatalf("create request after the error: %v, %+v", err, o)
			}
		})
	}
}

const open3 = "10 03 78 00"

// terminated checks that m has failed and that o ends e (if any) with
// dvc.ErrConnectionLost and sends nothing.
func terminated(t *testing.T, m *machine, o *output, e *mchan) {
	t.Helper()
	if m.dead == nil || len(m.channels) != 0 {
		t.Fatalf("machine not failed: dead %v, %d channels", m.dead, len(m.channels))
	}
	sends(t, o)
	if e == nil {
		only(t, o)
		return
	}
	if ev := only(t, o, evEnd); ev[0].ch != e || !errors.Is(ev[0].err, dvc.ErrConnectionLost) {
		t.Fatalf("end %+v", ev[0])
	}
	if err := m.writable(e); !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("writable after the error: %v", err)
	}
}

func TestMachineServerBadInputTerminates(t *testing.T) {
	for _, tc := range []struct {
		name      string
		caps      bool
		pdu, want string
	}{
		{"data before caps", false, "30 03 00", "DYNVC_DATA"},
		{"caps response version 9", false, "50 00 09 00", "Version 9"},
		{"caps response padded", false, "50 00 02 00 00", "after the Version field"},
		{"caps twice", true, "50 00 02 00", "twice"},
		{"create response for nothing", true, "10 07 00 00 00 00", "no pending"},
		{"create response twice", true, "10 01 00 00 00 00", "no pending"},
		{"compressed data", true, "60 01 08 00", "DYNVC_DATA_FIRST_COMPRESSED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(roleServer, Config{})
			m.start()
			var e *mchan
			if tc.caps {
				only(t, mustFeed(t, m, "50 00 02 00"), evCaps)
				e, _, _ = m.open("x", 0)
				only(t, mustFeed(t, m, "10 01 00 00 00 00"), evOpened)
			}
			o, err := feed(t, m, tc.pdu)
			var pe *ProtocolError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a *ProtocolError mentioning %q", err, tc.want)
			}
			terminated(t, m, o, e)
			if _, _, err := m.open("x", 0); !errors.Is(err, dvc.ErrConnectionLost) {
				t.Fatalf("open after the error: %v", err)
			}
		})
	}
}

// fail ends every channel, pending ones included (their Open gets the
// error as its answer), once.
func TestMachineFail(t *testing.T) {
	m, chans := serverOpen(t, Config{}, 2)
	pending, _, _ := m.open("x", 0)
	o := &output{}
	m.fail(errors.New("cable cut"), o)
	ended := map[*mchan]bool{}
	for _, ev := range only(t, o, evEnd, evEnd, evEnd) {
		if !errors.Is(ev.err, dvc.ErrConnectionLost) || !strings.Contains(ev.err.Error(), "cable cut") {
			t.Fatalf("end %+v", ev)
		}
		ended[ev.ch] = true
	}
	if !ended[chans[0]] || !ended[chans[1]] || !ended[pending] {
		t.Fatal("a channel was not ended")
	}
	o.reset()
	m.fail(errors.New("again"), o)
	nothing(t, o)
	if !strings.Contains(m.dead.Error(), "cable cut") {
		t.Fatalf("dead = %v", m.dead)
	}
}

// The connection's held reassembly bytes: the DATA_FIRST that would pass
// MaxHeldBytes closes its own channel, not the connection; bytes come back
// when a message completes or its channel goes.
func TestMachineHeldBytes(t *testing.T) {
	m, chans := serverOpen(t, Config{MaxMessage: 100 << 10, MaxHeldBytes: 150 << 10}, 2)
	first := func(id uint32) *output {
		o := &output{}
		if err := m.receive(drdynvc.DataFirst{ChannelID: id, Length: 100 << 10, Data: make([]byte, 1000)}.Append(nil), o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	nothing(t, first(1))
	o := first(2)
	sends(t, o, "40 02")
	if ev := only(t, o, evEnd); !errors.Is(ev[0].err, dvc.ErrTooLarge) || ev[0].ch != chans[1] {
		t.Fatalf("end %+v", ev[0])
	}
	if got := m.held.used.Load(); got != 100<<10 {
		t.Fatalf("%d bytes held, want the one message's %d", got, 100<<10)
	}
	m.closeLocal(chans[0])
	if got, r := m.held.used.Load(), m.reserved.used.Load(); got != 0 || r != 0 {
		t.Fatalf("after the close: %d held, %d reserved", got, r)
	}
}
