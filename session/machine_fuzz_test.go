package session

import (
	"fmt"
	"testing"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// FuzzMachine drives a machine alone, on one goroutine, with PDUs from a
// hostile peer interleaved with local requests, and checks after every
// step what the machine promises whatever arrives:
//
//   - it never panics;
//   - every PDU it asks to send is at most drdynvc.MaxPDU bytes and parses
//     as a PDU of its role;
//   - open channels stay within MaxChannels, reassembly within
//     MaxHeldBytes and ReassemblyBudget, delivered messages within
//     MaxMessage;
//   - once receive has returned an error the machine is failed: no
//     channel left, and nothing more is delivered, opened or accepted;
//   - after fail, every reassembly byte has been given back.
//
// Input: one mode byte (bit 0: client, else server; bit 1: a valid
// capabilities exchange first), then records of a 2-byte little-endian
// length and that many bytes (splitPDUs). A record's first byte is the
// operation, the rest its argument: 0 receive the rest as a PDU; 1 open
// (server) or listen (client) the rest as a name; 2 close channel k
// (the argument's first byte, modulo the channels seen so far); 3 accept
// channel k (client) or abandon it (server); 4 refuse channel k (client)
// or report its request unsent (server); 5 the caps timer fires; 6 fail.
func FuzzMachine(f *testing.F) {
	rec := func(op byte, b ...byte) []byte { return append([]byte{op}, b...) }
	recv := func(b []byte) []byte { return rec(0, b...) }
	name := func(op byte, s string) []byte { return rec(op, []byte(s)...) }
	f.Add(joinPDUs(1, name(1, "x"), recv(seedCapsV2), recv(seedCreateX), rec(3, 0), recv([]byte{0x30, 0x03, 'h', 'i'}), recv(seedClose)))
	f.Add(joinPDUs(1|2, name(1, "testdvc"), recv(seedCreateT), rec(3, 0), recv(seedDataFst), recv(seedData), recv(seedDataLast), rec(2, 0)))
	f.Add(joinPDUs(1|2, name(1, "x"), recv(seedCreateX), rec(2, 0), rec(3, 0), recv(seedCreateX), rec(4, 0), recv(seedCreateX)))
	f.Add(joinPDUs(1|2, name(1, "x"), recv(seedCreateX), rec(3, 0), recv([]byte{0x28, 0x03, 0x00, 0x00, 0x01, 0x00, 'a'}), recv(seedData)))
	f.Add(joinPDUs(1|2, recv(seedCapsV2)))
	f.Add(joinPDUs(2, name(1, "x"), name(1, "x"), recv([]byte{0x10, 0x01, 0, 0, 0, 0}), recv([]byte{0x30, 0x01, 'h'}), rec(2, 0), recv([]byte{0x40, 0x01})))
	f.Add(joinPDUs(2, name(1, "x"), rec(3, 0), recv([]byte{0x10, 0x01, 0, 0, 0, 0}), recv([]byte{0x40, 0x01})))
	f.Add(joinPDUs(2, name(1, "x"), recv([]byte{0x10, 0x01, 0, 0, 0, 0}), recv([]byte{0x24, 0x01, 0x7b, 0x0c, 1, 2, 3}), rec(6)))
	f.Add(joinPDUs(0, rec(5), recv([]byte{0x50, 0x00, 0x02, 0x00}), name(1, "x")))
	f.Add(joinPDUs(2, name(1, ""), name(1, "a\x00b"), recv([]byte{0x10, 0x01, 0x01, 0x00, 0x00, 0xc0})))

	f.Fuzz(machineRun)
}

// machineRun is FuzzMachine's body: one input, every check.
func machineRun(t *testing.T, in []byte) {
	{
		defer watchdog("FuzzMachine", in)()
		mode, recs := splitPDUs(in)
		cfg := fuzzCfg()
		cfg.MaxChannels = 4
		cfg.MaxHeldBytes = 12 << 10
		cfg.ReassemblyBudget = 6 << 10
		r, from := roleServer, drdynvc.FromServer
		if mode&1 != 0 {
			r, from = roleClient, drdynvc.FromClient
		}
		m := newMachine(r, cfg)
		var chans []*mchan
		o := &output{}
		failed := false
		check := func(step int) {
			t.Helper()
			for _, p := range o.send {
				if len(p) > drdynvc.MaxPDU {
					t.Fatalf("step %d: a %d-byte PDU, over MaxPDU", step, len(p))
				}
				if _, err := drdynvc.Parse(p, from); err != nil {
					t.Fatalf("step %d: sent a PDU that does not parse as from the %v: %v: % x", step, from, err, p)
				}
			}
			for _, ev := range o.events {
				switch ev.kind {
				case evDeliver:
					if uint32(len(ev.msg)) > cfg.MaxMessage {
						t.Fatalf("step %d: delivered %d bytes, over MaxMessage", step, len(ev.msg))
					}
				case evAccept:
					chans = append(chans, ev.ch)
				}
				if failed && (ev.kind == evDeliver || ev.kind == evAccept || ev.kind == evOpened) {
					t.Fatalf("step %d: event %v after the machine failed", step, ev.kind)
				}
			}
			if n := m.live(); n > cfg.MaxChannels && r == roleServer || len(m.channels) > cfg.MaxChannels && r == roleClient {
				t.Fatalf("step %d: %d channels, MaxChannels %d", step, len(m.channels), cfg.MaxChannels)
			}
			if h := m.held.used.Load(); h < 0 || h > cfg.MaxHeldBytes {
				t.Fatalf("step %d: %d bytes held, cap %d", step, h, cfg.MaxHeldBytes)
			}
			if b := m.reserved.used.Load(); b < 0 || b > cfg.ReassemblyBudget {
				t.Fatalf("step %d: %d bytes reserved, budget %d", step, b, cfg.ReassemblyBudget)
			}
			if failed && len(m.channels) != 0 {
				t.Fatalf("step %d: %d channels after the machine failed", step, len(m.channels))
			}
			o.reset()
		}
		pick := func(arg []byte) *mchan {
			if len(chans) == 0 || len(arg) == 0 {
				return nil
			}
			return chans[int(arg[0])%len(chans)]
		}
		if r == roleServer {
			req := m.start()
			o.pdu(req)
			check(-1)
		}
		if mode&2 != 0 {
			var err error
			if r == roleServer {
				err = m.receive([]byte{0x50, 0x00, 0x02, 0x00}, o)
			} else {
				err = m.receive(seedCapsV2, o)
			}
			if err != nil {
				t.Fatal(err)
			}
			check(-1)
		}
		for i, rec := range recs {
			if len(rec) == 0 {
				continue
			}
			op, arg := rec[0], rec[1:]
			switch op % 8 {
			case 0:
				if err := m.receive(arg, o); err != nil {
					if m.dead == nil {
						t.Fatalf("step %d: receive failed with %v, machine not failed", i, err)
					}
					failed = true
				}
			case 1:
				if r == roleClient {
					if kitName(string(arg)) {
						m.listen(string(arg))
					}
					break
				}
				if e, req, err := m.open(string(arg), 0); err == nil {
					chans = append(chans, e)
					o.pdu(req)
				} else if e != nil || req != nil {
					t.Fatalf("step %d: open failed with %v but returned a channel", i, err)
				}
			case 2:
				if e := pick(arg); e != nil {
					if pdu, _ := m.closeLocal(e); pdu != nil {
						o.pdu(pdu)
					}
				}
			case 3:
				if e := pick(arg); e != nil {
					if r == roleClient {
						if e.state == statePending {
							if rsp := m.accepted(e); rsp != nil {
								o.pdu(rsp)
							}
						}
					} else {
						m.abandon(e)
					}
				}
			case 4:
				if e := pick(arg); e != nil {
					if r == roleClient {
						if e.state == statePending {
							o.pdu(m.acceptFailed(e, hresult.E_ACCESSDENIED))
						}
					} else {
						m.unsent(e)
					}
				}
			case 5:
				if r == roleServer {
					m.capsTimer()
				}
			case 6:
				m.fail(fmt.Errorf("fuzz: fail at step %d", i), o)
				failed = true
			}
			check(i)
		}
		m.fail(nil, o)
		failed = true
		check(len(recs))
		if h, b := m.held.used.Load(), m.reserved.used.Load(); h != 0 || b != 0 {
			t.Fatalf("after fail: %d bytes held, %d reserved", h, b)
		}
	}
}

// kitName is the client driver's registry rule for names the fuzzer
// listens on (the machine trusts its driver to check them).
func kitName(name string) bool {
	return drdynvc.CreateRequest{ChannelName: name}.Validate() == nil
}
