package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

func TestHandleIO(t *testing.T) {
	s, c, p := start(t, server.Config{})
	addDevices(t, s, p, 4)
	var (
		mu   sync.Mutex
		reqs []wire.Request
	)
	m := &memResponder{mem: make([]byte, 64), hook: func(f *fakeChan, r wire.Request) bool {
		mu.Lock()
		reqs = append(reqs, r)
		mu.Unlock()
		return false
	}}
	c.serveFiles(t, m)
	ctx := ctxT(t)
	h, err := s.Open(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if h.DeviceID() != 4 || h.ClientVersion() != wire.IOVersionCustomEvents {
		t.Errorf("DeviceID %d, ClientVersion %d", h.DeviceID(), h.ClientVersion())
	}
	if n, err := h.Write(ctx, 10, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if b, err := h.Read(ctx, 8, 9); err != nil || !bytes.Equal(b, []byte("\x00\x00hello\x00\x00")) {
		t.Fatalf("Read = %q, %v", b, err)
	}
	if b, err := h.IoControl(ctx, 0x00222440, []byte("abcdef"), 4); err != nil || string(b) != "abcd" {
		t.Fatalf("IoControl = %q, %v", b, err)
	}
	// An offset above 4 GiB travels as OffsetHigh:OffsetLow; the memory
	// device answers with no data.
	if b, err := h.Read(ctx, 0x70000001ffffffff, 8); err != nil || len(b) != 0 {
		t.Fatalf("Read far = %q, %v", b, err)
	}
	// A failure HRESULT comes back as an error carrying it.
	_, err = h.Write(ctx, 62, []byte("toolong"))
	var he *hresult.Error
	if !errors.As(err, &he) || he.Code != hresult.FromWin32(hresult.ERROR_INVALID_PARAMETER) {
		t.Fatalf("Write past the end: %v, want ERROR_INVALID_PARAMETER", err)
	}
	if dvc.StatusOf(err) != hresult.FromWin32(hresult.ERROR_INVALID_PARAMETER) {
		t.Errorf("StatusOf = %v", dvc.StatusOf(err))
	}
	h.Close()
	if _, err := h.Read(ctx, 0, 1); !errors.Is(err, server.ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if caps := reqs[0].(wire.ServerCapabilitiesRequest); caps.Version != wire.IOVersionCustomEvents {
		t.Errorf("Server Capabilities Request Version %d, want 6", caps.Version)
	}
	cf := reqs[1].(wire.CreateFileRequest)
	want := wire.CreateFileRequest{RequestID: cf.RequestID, DeviceID: 4, DesiredAccess: 0xC0000000, ShareMode: 3, CreationDisposition: 3, FlagsAndAttributes: 0x40000080}
	if cf != want {
		t.Errorf("CreateFile %+v, want %+v (the section 4.4 capture's fields)", cf, want)
	}
	if r := reqs[5].(wire.ReadRequest); r.Offset != 0x70000001ffffffff || r.BytesToRead != 8 {
		t.Errorf("far read request %+v", r)
	}
	for _, r := range reqs {
		if id := r.Header().RequestID; !wire.IsCancelSafeRequestID(id) || id == server.CancelRequestID {
			t.Errorf("%T RequestId 0x%06X is not a cancel-safe request ID", r, id)
		}
	}
}

func TestOpenOptions(t *testing.T) {
	s, c, p := start(t, server.Config{})
	addDevices(t, s, p, 1)
	got := make(chan wire.CreateFileRequest, 1)
	c.serveFiles(t, &memResponder{hook: func(f *fakeChan, r wire.Request) bool {
		if cf, ok := r.(wire.CreateFileRequest); ok {
			got <- cf
		}
		return false
	}})
	h, err := s.Open(ctxT(t), 1, server.WithDesiredAccess(wire.GenericRead), server.WithShareMode(0),
		server.WithCreationDisposition(wire.OpenAlways), server.WithFlagsAndAttributes(wire.FileAttributeNormal))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cf := <-got
	if cf.DesiredAccess != wire.GenericRead || cf.ShareMode != 0 || cf.CreationDisposition != wire.OpenAlways || cf.FlagsAndAttributes != wire.FileAttributeNormal {
		t.Errorf("CreateFile %+v", cf)
	}
}

func TestCreateFileFailure(t *testing.T) {
	s, c, p := start(t, server.Config{})
	addDevices(t, s, p, 1)
	done := make(chan error, 1)
	go func() { _, err := s.Open(ctxT(t), 1); done <- err }()
	f := c.nextFile(t)
	caps := request(t, f.next(t))
	f.send(t, wire.ClientCapabilitiesReply{RequestID: caps.Header().RequestID, Version: 6}.Append(nil))
	cf := request(t, f.next(t))
	f.send(t, wire.CreateFileReply{RequestID: cf.Header().RequestID, Result: hresult.FromWin32(hresult.ERROR_WRITE_PROTECT)}.Append(nil))
	err := <-done
	var he *hresult.Error
	if !errors.As(err, &he) || he.Code != hresult.FromWin32(hresult.ERROR_WRITE_PROTECT) {
		t.Fatalf("Open: %v, want ERROR_WRITE_PROTECT", err)
	}
	f.waitClosed(t)
}

func TestOpenCancelledDuringHandshake(t *testing.T) {
	s, c, p := start(t, server.Config{})
	addDevices(t, s, p, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := s.Open(ctx, 1); done <- err }()
	f := c.nextFile(t)
	request(t, f.next(t)) // the capabilities request, never answered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Open: %v, want context.Canceled", err)
	}
	f.waitClosed(t)
	for {
		select {
		case m := <-f.msgs:
			if r := request(t, m); r.Header().FunctionID == wire.FunctionSpecificIoCancel {
				t.Error("Open sent an IoCancel for its capabilities request; it closes the channel instead")
			}
			continue
		default:
		}
		break
	}
}

// TestRequestIDs: IDs are unique among outstanding requests, never reused
// while pending, always cancel-safe, and a handle queues calls beyond
// MaxOutstanding instead of failing them.
func TestRequestIDs(t *testing.T) {
	s, c, p := start(t, server.Config{})
	addDevices(t, s, p, 1)
	h, f := openHandle(t, s, c, 1, 6)
	const calls = server.MaxOutstanding + 45
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := h.Read(ctxT(t), uint64(i), 4)
			if err == nil && len(b) != 4 {
				err = io.ErrUnexpectedEOF
			}
			errs <- err
		}()
	}
	// Hold every reply until MaxOutstanding requests are outstanding:
	// then no more may come, and all IDs must differ.
	outstanding := map[uint32]bool{}
	var order []uint32
	for len(outstanding) < server.MaxOutstanding {
		r := request(t, f.next(t))
		id := r.Header().RequestID
		if outstanding[id] {
			t.Fatalf("RequestId 0x%06X sent twice while outstanding", id)
		}
		if !wire.IsCancelSafeRequestID(id) || id == server.CancelRequestID {
			t.Fatalf("RequestId 0x%06X is not cancel-safe or is the cancel ID", id)
		}
		outstanding[id] = true
		order = append(order, id)
	}
	select {
	case m := <-f.msgs:
		t.Fatalf("a request beyond MaxOutstanding was sent: % x", m)
	default:
	}
	answered := 0
	reply := func(id uint32) {
		f.send(t, wire.ReadReply{RequestID: id, Data: []byte{1, 2, 3, 4}}.Append(nil))
		answered++
	}
	// Answer in reverse; each answer lets one queued call send.
	for i := len(order) - 1; i >= 0; i-- {
		delete(outstanding, order[i])
		reply(order[i])
	}
	for answered < calls {
		r := request(t, f.next(t))
		reply(r.Header().RequestID)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestCancel: cancelling the context sends exactly one Specific IoCancel
// Request naming the request under both readings of 2.2.2.3.9, and the
// call returns only when the reply arrives (3.3.5.2.2.9).
func TestCancel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		result  hresult.HRESULT
		data    []byte
		wantErr bool
	}{
		{"aborted", hresult.FromWin32(hresult.ERROR_OPERATION_ABORTED), nil, true},
		{"completed anyway", hresult.S_OK, []byte("done"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, p := start(t, server.Config{})
			addDevices(t, s, p, 1)
			h, f := openHandle(t, s, c, 1, 6)
			ctx, cancel := context.WithCancel(context.Background())
			type res struct {
				b   []byte
				err error
			}
			done := make(chan res, 1)
			go func() {
				b, err := h.IoControl(ctx, 0x222004, nil, 8)
				done <- res{b, err}
			}()
			ioctl := request(t, f.next(t)).(wire.IOControlRequest)
			cancel()
			cancel()
			cm, err := wire.ParseSpecificIoCancelRequest(f.next(t))
			if err != nil {
				t.Fatal(err)
			}
			if cm.RequestID != server.CancelRequestID || cm.IDToCancel != ioctl.RequestID || cm.AltIDToCancel() != ioctl.RequestID {
				t.Fatalf("IoCancel %+v does not name 0x%06X under both readings", cm, ioctl.RequestID)
			}
			select {
			case r := <-done:
				t.Fatalf("the call returned (%v) before its reply", r.err)
			default:
			}
			f.send(t, wire.IOControlReply{RequestID: ioctl.RequestID, Result: tc.result, Data: tc.data}.Append(nil))
			r := <-done
			if tc.wantErr {
				var he *hresult.Error
				if !errors.Is(r.err, context.Canceled) || !errors.As(r.err, &he) || he.Code != tc.result {
					t.Errorf("err = %v, want context.Canceled and %v", r.err, tc.result)
				}
			} else if r.err != nil || string(r.b) != "done" {
				t.Errorf("= %q, %v; want the reply's data and no error", r.b, r.err)
			}
			select {
			case m := <-f.msgs:
				t.Errorf("server sent % x after the one IoCancel", m)
			default:
			}
		})
	}
}

func TestCancelExactlyOnce(t *testing.T) {
	s, c, p := start(t, server.Config{})
	addDevices(t, s, p, 1)
	h, f := openHandle(t, s, c, 1, 6)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := h.Read(ctx, 0, 1); done <- err }()
	rd := request(t, f.next(t))
	cancel()
	request(t, f.next(t)) // the cancel
	// A second request on the handle, answered: by then any second cancel
	// would have been written before it.
	go func() { h.Write(context.Background(), 0, []byte{1}) }()
	wr := request(t, f.next(t))
	if wr.Header().FunctionID != wire.FunctionWrite {
		t.Fatalf("after the IoCancel the server sent %v, want only the Write", wr.Header().FunctionID)
	}
	f.send(t, wire.WriteReply{RequestID: wr.Header().RequestID, BytesWritten: 1}.Append(nil))
	f.send(t, wire.ReadReply{RequestID: rd.Header().RequestID, Result: hresult.FromWin32(hresult.ERROR_CANCELLED)}.Append(nil))
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestCancelTimeout(t *testing.T) {
	s, c, p := start(t, server.Config{CancelTimeout: time.Millisecond})
	addDevices(t, s, p, 1)
	h, f := openHandle(t, s, c, 1, 6)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := h.IoControl(ctx, 1, nil, 0); done <- err }()
	request(t, f.next(t))
	cancel()
	err := <-done
	if !errors.Is(err, server.ErrCancelTimeout) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want ErrCancelTimeout and context.Canceled", err)
	}
	f.waitClosed(t)
}

// TestFileRedirectorBadInput holds the server's reaction to each kind of
// bad reply, with a second call pending to show that a closed channel
// fails every call, and an ignored input none.
func TestFileRedirectorBadInput(t *testing.T) {
	tests := []struct {
		name    string
		rule    string
		reply   func(read, ioctl uint32) [][]byte // sent while a Read (4 bytes) and an IoControl (cbOut 4) are pending
		closed  bool
		wantErr error // the Read's error, when closed or failed
	}{
		{
			name: "reply to an unknown RequestId", rule: "ignored (3.3.5.2.2)",
			reply: func(read, ioctl uint32) [][]byte {
				return [][]byte{wire.ReadReply{RequestID: 0x123456, Data: []byte("xx")}.Append(nil)}
			},
		},
		{
			name: "reply to the cancel RequestId", rule: "ignored: it is never outstanding",
			reply: func(read, ioctl uint32) [][]byte {
				return [][]byte{wire.WriteReply{RequestID: server.CancelRequestID}.Append(nil)}
			},
		},
		{
			name: "cbBytesRead above cbBytesToRead", rule: "channel closed (3.3.5.2.2.8, applied to Read too)",
			reply: func(read, ioctl uint32) [][]byte {
				return [][]byte{wire.ReadReply{RequestID: read, Data: []byte("12345")}.Append(nil)}
			},
			closed: true, wantErr: server.ErrProtocol,
		},
		{
			name: "cbBytesReadReturned above cbOut", rule: "channel closed (3.3.5.2.2.8 MUST)",
			reply: func(read, ioctl uint32) [][]byte {
				return [][]byte{wire.IOControlReply{RequestID: ioctl, Data: []byte("12345")}.Append(nil)}
			},
			closed: true, wantErr: server.ErrProtocol,
		},
		{
			name: "truncated Read Reply", rule: "channel closed: the reply cannot complete its request",
			reply: func(read, ioctl uint32) [][]byte {
				b := wire.ReadReply{RequestID: read, Data: []byte("1234")}.Append(nil)
				return [][]byte{b[:len(b)-2]}
			},
			closed: true, wantErr: server.ErrProtocol,
		},
		{
			name: "Read Reply with trailing bytes", rule: "channel closed: the reply cannot complete its request",
			reply: func(read, ioctl uint32) [][]byte {
				return [][]byte{append(wire.ReadReply{RequestID: read}.Append(nil), 0, 0)}
			},
			closed: true, wantErr: server.ErrProtocol,
		},
		{
			name: "Write Reply layout for a Read", rule: "channel closed: the reply cannot complete its request",
			reply: func(read, ioctl uint32) [][]byte {
				return [][]byte{wire.WriteReply{RequestID: read, BytesWritten: 4}.Append(nil)}
			},
			closed: true, wantErr: server.ErrProtocol,
		},
		{
			name: "unknown PacketType", rule: "channel closed: CLIENT_IO_HEADER PacketType MUST be 0 or 1 (2.2.2.1.2)",
			reply: func(read, ioctl uint32) [][]byte {
				b := wire.ReadReply{RequestID: read}.Append(nil)
				b[3] = 2
				return [][]byte{b}
			},
			closed: true, wantErr: server.ErrProtocol,
		},
		{
			name: "message shorter than CLIENT_IO_HEADER", rule: "channel closed",
			reply:  func(read, ioctl uint32) [][]byte { return [][]byte{{0, 0}} },
			closed: true, wantErr: server.ErrProtocol,
		},
		{
			name: "empty message", rule: "channel closed",
			reply:  func(read, ioctl uint32) [][]byte { return [][]byte{{}} },
			closed: true, wantErr: server.ErrProtocol,
		},
		{
			name: "malformed custom event", rule: "ignored: no request depends on it",
			reply: func(read, ioctl uint32) [][]byte {
				b := wire.ClientDeviceCustomEvent{Data: []byte("abc")}.Append(nil)
				return [][]byte{b[:len(b)-1]}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c, p := start(t, server.Config{})
			addDevices(t, s, p, 1)
			h, f := openHandle(t, s, c, 1, 6)
			readErr := make(chan error, 1)
			ioctlErr := make(chan error, 1)
			go func() { _, err := h.Read(context.Background(), 0, 4); readErr <- err }()
			go func() { _, err := h.IoControl(context.Background(), 7, nil, 4); ioctlErr <- err }()
			var read, ioctl uint32
			for range 2 {
				switch r := request(t, f.next(t)).(type) {
				case wire.ReadRequest:
					read = r.RequestID
				case wire.IOControlRequest:
					ioctl = r.RequestID
				}
			}
			for _, m := range tt.reply(read, ioctl) {
				f.send(t, m)
			}
			if tt.closed {
				f.waitClosed(t)
				if err := <-readErr; !errors.Is(err, tt.wantErr) {
					t.Errorf("Read: %v, want %v", err, tt.wantErr)
				}
				if err := <-ioctlErr; err == nil {
					t.Error("IoControl pending on the closed channel succeeded")
				}
				<-h.Done()
				if !errors.Is(h.Err(), tt.wantErr) {
					t.Errorf("Err() = %v", h.Err())
				}
				return
			}
			// Ignored: both calls complete with the real replies.
			f.send(t, wire.ReadReply{RequestID: read, Data: []byte("abcd")}.Append(nil))
			f.send(t, wire.IOControlReply{RequestID: ioctl, Data: []byte("ok")}.Append(nil))
			if err := <-readErr; err != nil {
				t.Errorf("Read: %v", err)
			}
			if err := <-ioctlErr; err != nil {
				t.Errorf("IoControl: %v", err)
			}
			if f.isClosed() {
				t.Error("channel closed; want the input ignored")
			}
		})
	}
}

func TestDuplicateReplyIgnored(t *testing.T) {
	s, c, p := start(t, server.Config{})
	addDevices(t, s, p, 1)
	h, f := openHandle(t, s, c, 1, 6)
	done := make(chan []byte, 1)
	go func() { b, _ := h.Read(context.Background(), 0, 4); done <- b }()
	rd := request(t, f.next(t)).(wire.ReadRequest)
	f.send(t, wire.ReadReply{RequestID: rd.RequestID, Data: []byte("one")}.Append(nil))
	f.send(t, wire.ReadReply{RequestID: rd.RequestID, Data: []byte("two")}.Append(nil))
	if b := <-done; string(b) != "one" {
		t.Errorf("Read = %q", b)
	}
	go func() { b, _ := h.Read(context.Background(), 0, 4); done <- b }()
	rd2 := request(t, f.next(t)).(wire.ReadRequest)
	if rd2.RequestID == rd.RequestID {
		t.Errorf("RequestId 0x%06X reused at once; IDs go round-robin", rd.RequestID)
	}
	f.send(t, wire.ReadReply{RequestID: rd2.RequestID, Data: []byte("3")}.Append(nil))
	if b := <-done; string(b) != "3" {
		t.Errorf("Read = %q", b)
	}
}

func TestWriteReplyTooLarge(t *testing.T) {
	s, c, p := start(t, server.Config{})
	addDevices(t, s, p, 1)
	h, f := openHandle(t, s, c, 1, 6)
	done := make(chan error, 1)
	go func() { _, err := h.Write(context.Background(), 0, []byte("ab")); done <- err }()
	wr := request(t, f.next(t))
	f.send(t, wire.WriteReply{RequestID: wr.Header().RequestID, BytesWritten: 3}.Append(nil))
	if err := <-done; !errors.Is(err, server.ErrProtocol) {
		t.Errorf("Write: %v, want ErrProtocol", err)
	}
	go func() { _, err := h.Write(context.Background(), 0, []byte("ab")); done <- err }()
	wr = request(t, f.next(t))
	f.send(t, wire.WriteReply{RequestID: wr.Header().RequestID, BytesWritten: 1}.Append(nil))
	if err := <-done; !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("short Write: %v, want io.ErrShortWrite", err)
	}
}

func TestCustomEvents(t *testing.T) {
	guid := wire.MustParseGUID("{11111111-8080-425F-922A-DABF3DE3F69A}")
	other := wire.MustParseGUID("{22222222-8080-425F-922A-DABF3DE3F69A}")
	for _, tc := range []struct {
		name           string
		server, client uint16
		deliver        bool
	}{
		{"both 6", 6, 6, true},
		{"client 4", 6, 4, false},
		{"server 4", 4, 6, false},
		{"client 7", 6, 7, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, p := start(t, server.Config{IOVersion: tc.server})
			addDevices(t, s, p, 1)
			got := make(chan server.CustomEvent, 4)
			unsub := s.Subscribe(guid, func(e server.CustomEvent) { got <- e })
			s.Subscribe(other, func(e server.CustomEvent) { t.Error("event delivered to the wrong GUID") })
			h, f := openHandle(t, s, c, 1, tc.client)
			// The section 4.4 capture, then a marker reply to know it was
			// processed.
			f.send(t, []byte{0x00, 0x00, 0x00, 0x01, 0x11, 0x11, 0x11, 0x11, 0x80, 0x80, 0x5f, 0x42, 0x92, 0x2a, 0xda, 0xbf,
				0x3d, 0xe3, 0xf6, 0x9a, 0x08, 0x00, 0x00, 0x00, 0x20, 0x4c, 0x0f, 0x00, 0xc4, 0x00, 0x0f, 0x00, 0x00})
			sync := func() {
				done := make(chan error, 1)
				go func() { _, err := h.Read(context.Background(), 0, 0); done <- err }()
				rd := request(t, f.next(t))
				f.send(t, wire.ReadReply{RequestID: rd.Header().RequestID}.Append(nil))
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			sync()
			select {
			case e := <-got:
				if !tc.deliver {
					t.Fatalf("event delivered with versions %d/%d", tc.server, tc.client)
				}
				if e.GUID != guid || e.DeviceID != 1 || e.Handle != h || !bytes.Equal(e.Data, []byte{0x20, 0x4c, 0x0f, 0x00, 0xc4, 0x00, 0x0f, 0x00}) {
					t.Errorf("event %+v", e)
				}
			default:
				if tc.deliver {
					t.Fatal("event not delivered")
				}
			}
			unsub()
			unsub()
			f.send(t, wire.ClientDeviceCustomEvent{CustomEventGUID: guid}.Append(nil))
			sync()
			select {
			case <-got:
				t.Error("event delivered after unsubscribe")
			default:
			}
		})
	}
}

// TestCustomEventBeforeCapabilities: 3.3.5.2.1.2, the Capabilities Reply
// MUST come first; an event before it is ignored.
func TestCustomEventBeforeCapabilities(t *testing.T) {
	s, c, p := start(t, server.Config{})
	addDevices(t, s, p, 1)
	guid := wire.MustParseGUID("{11111111-8080-425F-922A-DABF3DE3F69A}")
	s.Subscribe(guid, func(e server.CustomEvent) { t.Error("event before the Capabilities Reply delivered") })
	done := make(chan error, 1)
	go func() {
		h, err := s.Open(context.Background(), 1)
		if err == nil {
			h.Close()
		}
		done <- err
	}()
	f := c.nextFile(t)
	f.send(t, wire.ClientDeviceCustomEvent{CustomEventGUID: guid}.Append(nil))
	handshake(t, f, 6)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPendingCallsFailWhenChannelEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(c *fakeClient, f *fakeChan, h *server.Handle)
		want []error
	}{
		{"client closes the channel", func(c *fakeClient, f *fakeChan, h *server.Handle) { f.ch.Close() }, []error{server.ErrChannelLost}},
		{"connection lost", func(c *fakeClient, f *fakeChan, h *server.Handle) { c.hub.Close() }, []error{server.ErrChannelLost, dvc.ErrConnectionLost}},
		{"handle closed", func(c *fakeClient, f *fakeChan, h *server.Handle) { h.Close() }, []error{server.ErrClosed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c, p := start(t, server.Config{})
			addDevices(t, s, p, 1)
			h, f := openHandle(t, s, c, 1, 6)
			const n = 10
			errs := make(chan error, n)
			for i := range n {
				go func() {
					var err error
					switch i % 3 {
					case 0:
						_, err = h.Read(context.Background(), 0, 1)
					case 1:
						_, err = h.Write(context.Background(), 0, []byte{1})
					default:
						_, err = h.IoControl(context.Background(), 1, nil, 1)
					}
					errs <- err
				}()
			}
			for range n {
				request(t, f.next(t))
			}
			tc.end(c, f, h)
			for range n {
				err := <-errs
				for _, w := range tc.want {
					if !errors.Is(err, w) {
						t.Errorf("pending call: %v, want %v", err, w)
					}
				}
			}
			if _, err := h.Read(context.Background(), 0, 1); err == nil {
				t.Error("Read on an ended handle succeeded")
			}
		})
	}
}

func TestServerCloseFailsHandles(t *testing.T) {
	s, c, p := start(t, server.Config{})
	addDevices(t, s, p, 1)
	h, f := openHandle(t, s, c, 1, 6)
	done := make(chan error, 1)
	go func() { _, err := h.Read(context.Background(), 0, 1); done <- err }()
	request(t, f.next(t))
	s.Close()
	if err := <-done; !errors.Is(err, server.ErrClosed) {
		t.Errorf("Read: %v, want ErrClosed", err)
	}
	f.waitClosed(t)
	p.waitClosed(t)
	if _, err := s.Open(context.Background(), 1); !errors.Is(err, server.ErrClosed) {
		t.Errorf("Open after Close: %v", err)
	}
}

// TestStreamBackend runs I/O through a backend that keeps no message
// boundaries, so that PNPDRFramer and FileRedirectorFramer recover them.
func TestStreamBackend(t *testing.T) {
	for _, cut := range []int{1, 3, 7, 4096} {
		c := newFakeClient(t)
		s, err := server.Start(context.Background(), streamOpener{c.hub, cut}, server.Config{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		p := <-c.pnpdr
		p.next(t)
		p.send(t, wire.ClientVersion{MajorVersion: 1, MinorVersion: 5, Capabilities: 1}.Append(nil))
		expectAuth(t, p)
		addDevices(t, s, p, 1, 2, 3)
		p.send(t, removal(2))
		if err := s.WaitRemoved(ctxT(t), 2); err != nil {
			t.Fatal(err)
		}
		guid := wire.MustParseGUID("{11111111-8080-425F-922A-DABF3DE3F69A}")
		events := make(chan server.CustomEvent, 1)
		s.Subscribe(guid, func(e server.CustomEvent) { events <- e })
		m := &memResponder{mem: make([]byte, 8192), hook: func(f *fakeChan, r wire.Request) bool {
			if q, ok := r.(wire.IOControlRequest); ok && q.IoCode == 0xEE {
				f.send(t, wire.ClientDeviceCustomEvent{CustomEventGUID: guid, Data: []byte("ev")}.Append(nil))
			}
			return false
		}}
		c.serveFiles(t, m)
		ctx := ctxT(t)
		h, err := s.Open(ctx, 3)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		data := bytes.Repeat([]byte("0123456789abcdef"), 256)
		if _, err := h.Write(ctx, 100, data); err != nil {
			t.Fatalf("cut %d: Write: %v", cut, err)
		}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := h.Read(ctx, 100+uint64(i), 4096-i)
				if err != nil || !bytes.Equal(b, data[i:]) {
					t.Errorf("cut %d: Read %d: %d bytes, %v", cut, i, len(b), err)
				}
			}()
		}
		wg.Wait()
		if b, err := h.IoControl(ctx, 0xEE, []byte("xyz"), 2); err != nil || string(b) != "xy" {
			t.Errorf("cut %d: IoControl = %q, %v", cut, b, err)
		}
		if e := <-events; string(e.Data) != "ev" {
			t.Errorf("cut %d: event %q", cut, e.Data)
		}
		s.Close()
		c.hub.Close()
	}
}

// TestStreamBackendUnknownReply: on a stream backend a reply to an ID that
// is not outstanding cannot be delimited, so the channel closes.
func TestStreamBackendUnknownReply(t *testing.T) {
	c := newFakeClient(t)
	s, err := server.Start(context.Background(), streamOpener{c.hub, 5}, server.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := <-c.pnpdr
	p.next(t)
	p.send(t, wire.ClientVersion{MajorVersion: 1, MinorVersion: 5, Capabilities: 1}.Append(nil))
	expectAuth(t, p)
	addDevices(t, s, p, 1)
	h, f := openHandle(t, s, c, 1, 6)
	done := make(chan error, 1)
	go func() { _, err := h.Read(context.Background(), 0, 4); done <- err }()
	request(t, f.next(t))
	f.send(t, wire.ReadReply{RequestID: 0x424242, Data: []byte("zz")}.Append(nil))
	if err := <-done; err == nil {
		t.Error("Read succeeded")
	}
	f.waitClosed(t)
}

// limitOpener's Conns refuse messages over max bytes with dvc.ErrTooLarge,
// and every write once fail is set.
type limitOpener struct {
	dvc.Opener
	max  int
	fail *atomic.Bool
}

func (l limitOpener) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	c, err := l.Opener.Open(ctx, name, opts...)
	if err != nil {
		return nil, err
	}
	return limitConn{c, l}, nil
}

type limitConn struct {
	dvc.Conn
	l limitOpener
}

func (c limitConn) Write(ctx context.Context, msg []byte) error {
	if len(msg) > c.l.max {
		return dvc.ErrTooLarge
	}
	if c.l.fail.Load() {
		return errors.New("carrier broke mid-write")
	}
	return c.Conn.Write(ctx, msg)
}

// TestWriteFailures: a message the backend refuses as too large fails only
// its call; any other write failure ends the handle, since the client may
// have got part of the request.
func TestWriteFailures(t *testing.T) {
	var broken atomic.Bool
	s, c, p := startWith(t, server.Config{}, func(o dvc.Opener) dvc.Opener { return limitOpener{o, 64, &broken} })
	addDevices(t, s, p, 1)
	c.serveFiles(t, &memResponder{mem: make([]byte, 256)})
	ctx := ctxT(t)
	h, err := s.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(ctx, 0, make([]byte, 100)); !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("oversized Write: %v, want dvc.ErrTooLarge", err)
	}
	if _, err := h.Write(ctx, 0, []byte("fits")); err != nil {
		t.Fatalf("Write after a refused one: %v", err)
	}
	broken.Store(true)
	if _, err := h.Read(ctx, 0, 4); !errors.Is(err, server.ErrChannelLost) {
		t.Fatalf("Read over a broken carrier: %v, want ErrChannelLost", err)
	}
	<-h.Done()
	if _, err := h.Read(ctx, 0, 4); err == nil {
		t.Error("Read after the handle ended succeeded")
	}
}

// TestWriteSplitByMaxMessage: with Config.MaxMessage, a write too large
// for one message goes as several Write Requests that each fit, in order,
// stopping at the first failure; an IOCTL input that does not fit fails
// before anything is sent.
func TestWriteSplitByMaxMessage(t *testing.T) {
	const max = 64
	var never atomic.Bool
	s, c, p := startWith(t, server.Config{MaxMessage: max}, func(o dvc.Opener) dvc.Opener { return limitOpener{o, max, &never} })
	addDevices(t, s, p, 1)
	var mu sync.Mutex
	var writes []wire.WriteRequest
	mem := &memResponder{mem: make([]byte, 256), hook: func(_ *fakeChan, r wire.Request) bool {
		if w, ok := r.(wire.WriteRequest); ok {
			mu.Lock()
			writes = append(writes, wire.WriteRequest{Offset: w.Offset, Data: bytes.Clone(w.Data)})
			mu.Unlock()
		}
		return false
	}}
	c.serveFiles(t, mem)
	ctx := ctxT(t)
	h, err := s.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 200)
	for i := range data {
		data[i] = byte(i + 1)
	}
	if n, err := h.Write(ctx, 10, data); n != 200 || err != nil {
		t.Fatalf("split Write = %d, %v", n, err)
	}
	got, err := h.Read(ctx, 10, 200)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %x, %v", got, err)
	}
	mu.Lock()
	piece := max - (wire.WriteRequest{}).Len()
	if len(writes) != (200+piece-1)/piece {
		t.Errorf("%d Write Requests, want %d of at most %d bytes", len(writes), (200+piece-1)/piece, piece)
	}
	for i, w := range writes {
		if w.Offset != uint64(10+i*piece) || len(w.Data) > piece {
			t.Errorf("request %d: offset %d, %d bytes", i, w.Offset, len(w.Data))
		}
	}
	writes = nil
	mu.Unlock()

	// Past the end of the 256-byte device, the fourth piece fails: the
	// three before it stay written and count.
	n, err := h.Write(ctx, 100, data)
	var he *hresult.Error
	if n != 3*piece || !errors.As(err, &he) {
		t.Fatalf("Write across the end = %d, %v; want %d and the client's HRESULT", n, err, 3*piece)
	}
	mu.Lock()
	if len(writes) != 4 {
		t.Errorf("%d Write Requests after a failing piece, want 4", len(writes))
	}
	mu.Unlock()

	if _, err := h.IoControl(ctx, 0x00222000, make([]byte, max), 0); !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("oversized IOCTL input: %v, want dvc.ErrTooLarge", err)
	}
	if out, err := h.IoControl(ctx, 0x00222000, []byte("ok"), 2); err != nil || string(out) != "ok" {
		t.Fatalf("IOCTL after the refused one: %q, %v", out, err)
	}
}

func TestMaxMessageTooSmallForAWrite(t *testing.T) {
	s, c, p := start(t, server.Config{MaxMessage: (wire.WriteRequest{}).Len()})
	addDevices(t, s, p, 1)
	c.serveFiles(t, &memResponder{mem: make([]byte, 16)})
	ctx := ctxT(t)
	h, err := s.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(ctx, 0, []byte("x")); !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("Write = %v, want dvc.ErrTooLarge", err)
	}
}

// A handle's log lines carry one channel attribute, its own
// (FileRedirectorChannel), not PNPDR's as well.
func TestHandleLogChannel(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, c, p := start(t, server.Config{Logger: log})
	addDevices(t, s, p, 1)
	h, f := openHandle(t, s, c, 1, 6)
	// A reply to no outstanding request is logged (and ignored); the read
	// after it returns once the client's messages before it were handled.
	f.send(t, wire.ReadReply{RequestID: 0x1234, Data: []byte("x")}.Append(nil))
	done := make(chan error, 1)
	go func() { _, err := h.Read(context.Background(), 0, 4); done <- err }()
	rd := request(t, f.next(t)).(wire.ReadRequest)
	f.send(t, wire.ReadReply{RequestID: rd.RequestID}.Append(nil))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "not outstanding") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no log line for the stray reply:\n%s", logs.String())
	}
	if n := strings.Count(line, `"channel":`); n != 1 || !strings.Contains(line, `"channel":"FileRedirectorChannel"`) {
		t.Errorf("%d channel attributes, want one, FileRedirectorChannel: %s", n, line)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
