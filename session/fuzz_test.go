package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// The fuzzers below feed a manager the PDUs a hostile or broken peer could
// send, in any order, and check what MS-RDPEDYC 3.1.5.2.4 and the Carrier
// contract promise whatever arrives:
//
//   - Receive never panics and never blocks for good;
//   - every PDU the manager sends is at most drdynvc.MaxPDU (1600) bytes
//     and parses as a PDU of its role;
//   - once Receive has returned an error the manager is dead (Done is
//     closed), and later Receives change nothing that outlives Shutdown;
//   - Shutdown returns, and no goroutine of the manager or its handlers
//     is left behind.
//
// Fuzz input: one mode byte, then records of a 2-byte little-endian length
// and that many bytes (cut short at the end of the input), each one PDU.
// Mode bit 0 makes the harness do a valid capabilities exchange first (so
// the fuzzer need not find one); for the server, bits 1-3 are how many
// channels named "x" it opens before the fuzzed PDUs (ChannelIds 1..n).

// fuzzCfg keeps the ceilings small so that the fuzzer reaches them, and
// memory stays bounded whatever it announces.
func fuzzCfg() Config {
	return Config{MaxMessage: 8 << 10, MaxChannels: 8, InboxBytes: 4 << 10, Logger: quiet}
}

// fuzzRecorder is a Carrier that never blocks and checks every PDU sent.
type fuzzRecorder struct {
	from drdynvc.Sender

	mu   sync.Mutex
	n    int
	bad  []string
	sent chan struct{} // one token per PDU, dropped when full
}

func newFuzzRecorder(from drdynvc.Sender) *fuzzRecorder {
	return &fuzzRecorder{from: from, sent: make(chan struct{}, 64)}
}

func (r *fuzzRecorder) WritePDU(p []byte) error {
	var bad string
	if len(p) > drdynvc.MaxPDU {
		bad = fmt.Sprintf("sent a %d-byte PDU, over MaxPDU %d: % x", len(p), drdynvc.MaxPDU, p[:16])
	} else if _, err := drdynvc.Parse(p, r.from); err != nil {
		bad = fmt.Sprintf("sent a PDU that does not parse as from the %v: %v: % x", r.from, err, p)
	}
	r.mu.Lock()
	r.n++
	if bad != "" {
		r.bad = append(r.bad, bad)
	}
	r.mu.Unlock()
	select {
	case r.sent <- struct{}{}:
	default:
	}
	return nil
}

func (r *fuzzRecorder) Flush() error { return nil }

// waitSent waits until n PDUs have been sent in all.
func (r *fuzzRecorder) waitSent(t *testing.T, n int) {
	t.Helper()
	for {
		r.mu.Lock()
		got := r.n
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-r.sent:
		case <-time.After(10 * time.Second):
			t.Fatalf("the manager sent %d PDUs, want %d", got, n)
		}
	}
}

func (r *fuzzRecorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bad {
		t.Error(b)
	}
}

// splitPDUs cuts fuzz input into its mode byte and PDUs.
func splitPDUs(b []byte) (mode byte, pdus [][]byte) {
	if len(b) == 0 {
		return 0, nil
	}
	mode, b = b[0], b[1:]
	for len(b) >= 2 {
		n := int(binary.LittleEndian.Uint16(b))
		b = b[2:]
		n = min(n, len(b))
		pdus = append(pdus, b[:n])
		b = b[n:]
	}
	return mode, pdus
}

// joinPDUs is splitPDUs' inverse, for seeds.
func joinPDUs(mode byte, pdus ...[]byte) []byte {
	b := []byte{mode}
	for _, p := range pdus {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b
}

// watchdog turns a hang into a crash with every goroutine's stack, which
// the fuzzer records as a failing input. It measures nothing: 60 s is only
// there to tell "stuck" from "slow machine".
func watchdog(what string, in []byte) (stop func() bool) {
	return time.AfterFunc(60*time.Second, func() {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		panic(fmt.Sprintf("%s is stuck on input %x; goroutines:\n%s", what, in, buf))
	}).Stop
}

// receiveAll feeds pdus to m and checks the rules about errors.
func receiveAll(t *testing.T, m interface {
	Receive([]byte) error
	Done() <-chan struct{}
}, pdus [][]byte) {
	t.Helper()
	var first error
	for i, p := range pdus {
		err := m.Receive(p)
		if err != nil {
			var pe *ProtocolError
			if first == nil && !errors.As(err, &pe) {
				t.Errorf("PDU %d (% x): error %v is not a *ProtocolError", i, p, err)
			}
			select {
			case <-m.Done():
			default:
				t.Errorf("PDU %d (% x): Receive failed with %v but Done is not closed", i, p, err)
			}
		}
		if first == nil {
			first = err
		}
	}
}

// fuzzHandler echoes what it receives; a message starting with 'C' makes
// it close its channel instead, and one starting with 'W' makes it write
// a message as large as the manager accepts.
type fuzzHandler struct {
	ch dvc.Channel
	wg *sync.WaitGroup
}

func (h *fuzzHandler) Received(m []byte) {
	ctx := context.Background()
	switch {
	case len(m) > 0 && m[0] == 'C':
		h.ch.Close()
	case len(m) > 0 && m[0] == 'W':
		h.ch.Write(ctx, bytes.Repeat([]byte{'w'}, int(fuzzCfg().MaxMessage)))
	default:
		h.ch.Write(ctx, m)
	}
}

func (h *fuzzHandler) Closed(error) { h.wg.Done() }

// Seeds, as PDUs from the server: MS-RDPEDYC section 4 examples and the
// ones a session goes through.
var (
	seedCapsV2   = []byte{0x58, 0x00, 0x02, 0x00, 0x33, 0x33, 0x11, 0x11, 0x3d, 0x0a, 0xa7, 0x04} // 4.1.1
	seedCapsV1   = []byte{0x50, 0x00, 0x01, 0x00}
	seedCapsV3   = []byte{0x50, 0x00, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}
	seedCreateX  = []byte{0x10, 0x03, 'x', 0x00}                                                  // like 4.2.1, on ChannelId 3
	seedCreateT  = []byte{0x10, 0x03, 0x74, 0x65, 0x73, 0x74, 0x64, 0x76, 0x63, 0x00}             // 4.2.1 "testdvc"
	seedDataFst  = append([]byte{0x24, 0x03, 0x7b, 0x0c}, bytes.Repeat([]byte{0x71}, 1596)...)    // 4.3.1
	seedData     = append([]byte{0x34, 0x03}, bytes.Repeat([]byte{0x71}, 1598)...)                // 4.3.2
	seedDataLast = []byte{0x34, 0x03, 0x71}                                                       // 4.3.2, the last
	seedDataFC   = []byte{0x64, 0x03, 0x7b, 0x0c, 0xe0, 0x26, 0x38, 0xc4, 0x3f, 0xf4, 0x74, 0x01} // 4.3.3
	seedDataC    = []byte{0x70, 0x03, 0x06, 0x71, 0x71, 0x71}                                     // 4.3.4, the last
	seedClose    = []byte{0x40, 0x03}                                                             // 4.4.1
	seedSoftSync = []byte{0x80, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00}
)

func FuzzClientReceive(f *testing.F) {
	f.Add(joinPDUs(0, seedCapsV2, seedCreateX, []byte{0x30, 0x03, 'h', 'i'}, seedClose))
	f.Add(joinPDUs(0, seedCapsV2, seedCreateT, seedDataFst, seedData, seedDataLast))
	f.Add(joinPDUs(1, seedCreateX, seedDataFst, seedData, seedDataLast, seedClose))
	f.Add(joinPDUs(1, seedCreateX, []byte{0x30, 0x03, 'C'}, []byte{0x30, 0x03, 'x'}, seedClose, seedCreateX))
	f.Add(joinPDUs(1, seedCreateX, []byte{0x30, 0x03, 'W'}, seedCreateX))
	f.Add(joinPDUs(1, []byte{0x10, 0x05, 'r', 0}, []byte{0x10, 0x06, 'n', 'o', 0}, []byte{0x30, 0x05, 1}))
	f.Add(joinPDUs(1, seedCreateX, []byte{0x28, 0x03, 0x00, 0x00, 0x01, 0x00, 'a'}, seedData)) // over the ceiling
	f.Add(joinPDUs(1, seedCreateX, seedDataFst, seedDataFst))
	f.Add(joinPDUs(1, seedCreateX, seedCreateX))
	f.Add(joinPDUs(0, seedCapsV1, seedCapsV1))
	f.Add(joinPDUs(0, seedCapsV3, seedCreateX, seedDataFC, seedDataC))
	f.Add(joinPDUs(1, []byte{0xf0}, seedCreateX, []byte{0x30, 0x03, 1}))
	f.Add(joinPDUs(0, []byte{}))
	f.Add(joinPDUs(1, seedDataLast))
	// Found by this fuzzer: a create request after a terminating error
	// started a channel goroutine that nothing ended, and Shutdown hung.
	f.Add(joinPDUs(1, seedSoftSync, seedCreateX))

	f.Fuzz(func(t *testing.T, in []byte) {
		before := goleak.IgnoreCurrent()
		defer watchdog("FuzzClientReceive", in)()
		mode, pdus := splitPDUs(in)

		r := newFuzzRecorder(drdynvc.FromClient)
		c := NewClient(r, fuzzCfg())
		var handlers sync.WaitGroup
		accept := dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
			handlers.Add(1)
			return &fuzzHandler{ch: ch, wg: &handlers}, nil
		})
		c.Listen("x", accept)
		c.Listen("testdvc", accept)
		c.Listen("r", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) {
			return nil, hresult.New("fuzz", hresult.E_ACCESSDENIED)
		}))
		if mode&1 != 0 {
			if err := c.Receive(seedCapsV2); err != nil {
				t.Fatal(err)
			}
			r.waitSent(t, 1)
		}
		receiveAll(t, c, pdus)
		c.Shutdown(errors.New("fuzz: done"))
		handlers.Wait() // Shutdown promises every Handler has had Closed
		r.check(t)
		goleak.VerifyNone(t, before)
	})
}

func FuzzServerReceive(f *testing.F) {
	rsp := func(id byte, status uint32) []byte {
		return binary.LittleEndian.AppendUint32([]byte{0x10, id}, status)
	}
	ok1 := rsp(1, 0)
	caps := []byte{0x50, 0x00, 0x02, 0x00} // 4.1.2
	dataFst := append([]byte{0x24, 0x01, 0x7b, 0x0c}, bytes.Repeat([]byte{0x71}, 1596)...)
	data := append([]byte{0x34, 0x01}, bytes.Repeat([]byte{0x71}, 1598)...)
	f.Add(joinPDUs(0, caps))
	f.Add(joinPDUs(0, caps, caps))
	f.Add(joinPDUs(0, []byte{0x50, 0x00, 0x09, 0x00}))
	f.Add(joinPDUs(1<<1, caps, ok1, []byte{0x30, 0x01, 'h', 'i'}, []byte{0x40, 0x01}))
	f.Add(joinPDUs(1|1<<1, ok1, dataFst, data, []byte{0x34, 0x01, 0x71}, []byte{0x40, 0x01}))
	f.Add(joinPDUs(1|1<<1, ok1, []byte{0x30, 0x01, 'C'}, []byte{0x40, 0x01}, []byte{0x30, 0x01, 'x'}))
	f.Add(joinPDUs(1|1<<1, ok1, []byte{0x30, 0x01, 'W'}, []byte{0x40, 0x01}))
	f.Add(joinPDUs(1|3<<1, ok1, rsp(2, 0xC0000001), []byte{0x40, 0x03}, rsp(3, 0)))
	f.Add(joinPDUs(1|1<<1, ok1, []byte{0x28, 0x01, 0x00, 0x00, 0x01, 0x00, 'a'}, []byte{0x40, 0x01}))
	f.Add(joinPDUs(1|1<<1, ok1, ok1))
	f.Add(joinPDUs(1, rsp(7, 0)))
	f.Add(joinPDUs(1|1<<1, ok1, []byte{0x70, 0x01, 0x06, 0x71}, seedSoftSync))
	f.Add(joinPDUs(1|7<<1, rsp(1, 0), rsp(2, 0), rsp(3, 0), rsp(4, 0), rsp(5, 0), rsp(6, 0), rsp(7, 0)))
	f.Add(joinPDUs(1, []byte{}))

	f.Fuzz(func(t *testing.T, in []byte) {
		before := goleak.IgnoreCurrent()
		defer watchdog("FuzzServerReceive", in)()
		mode, pdus := splitPDUs(in)

		r := newFuzzRecorder(drdynvc.FromServer)
		s := NewServer(r, fuzzCfg())
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		r.waitSent(t, 1)
		if mode&1 != 0 {
			if err := s.Receive([]byte{0x50, 0x00, 0x02, 0x00}); err != nil {
				t.Fatal(err)
			}
		}
		// The opens run beside the fuzzed PDUs: each waits for its create
		// response, then echoes what it reads (or closes on 'C', or writes
		// a message as large as allowed on 'W') until the channel ends.
		ctx, cancel := context.WithCancel(context.Background())
		var opens sync.WaitGroup
		nopen := int(mode>>1) & 7
		for range nopen {
			opens.Add(1)
			go func() {
				defer opens.Done()
				conn, err := s.Open(ctx, "x")
				if err != nil {
					return
				}
				for {
					m, err := conn.Read(ctx)
					if err != nil {
						conn.Close()
						return
					}
					switch {
					case len(m) > 0 && m[0] == 'C':
						conn.Close()
					case len(m) > 0 && m[0] == 'W':
						conn.Write(ctx, bytes.Repeat([]byte{'w'}, int(fuzzCfg().MaxMessage)))
					default:
						conn.Write(ctx, m)
					}
				}
			}()
		}
		if mode&1 != 0 {
			r.waitSent(t, 1+nopen) // every DYNVC_CREATE_REQ is out: ChannelIds 1..n are pending
		}
		receiveAll(t, s, pdus)
		cancel()
		s.Shutdown(errors.New("fuzz: done"))
		opens.Wait()
		r.check(t)
		goleak.VerifyNone(t, before)
	})
}
