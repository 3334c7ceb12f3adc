package device

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rw is what a Windows server sends (Appendix A <9>, <10>).
var rw = OpenRequest{
	DesiredAccess:       wire.GenericRead | wire.GenericWrite,
	ShareMode:           wire.FileShareRead | wire.FileShareWrite,
	CreationDisposition: wire.OpenExisting,
}

func with(r OpenRequest, f func(*OpenRequest)) OpenRequest { f(&r); return r }

func wantCode(t *testing.T, err error, want hresult.HRESULT) {
	t.Helper()
	if got := HRESULTOf(err); got != want {
		t.Fatalf("error %v: HRESULT %v, want %v", err, got, want)
	}
}

func tempFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(tempDir(t), "dev.bin")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileReadWriteAtOffset(t *testing.T) {
	p := tempFile(t, "0123456789")
	d, err := NewFile(p, false, Description{Text: "f"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := d.Open(ctx, rw)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := h.WriteAt(ctx, []byte("abc"), 4); n != 3 || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	buf := make([]byte, 8)
	n, err := h.ReadAt(ctx, buf, 3)
	if err != nil || string(buf[:n]) != "3abc789" {
		t.Fatalf("ReadAt = %q, %v; want a short read of 3abc789 with no error", buf[:n], err)
	}
	if n, err := h.ReadAt(ctx, buf, 1<<40); n != 0 || err != nil {
		t.Fatalf("ReadAt past the end = %d, %v; want 0, nil", n, err)
	}
	if _, err := h.ReadAt(ctx, buf, 1<<63); err == nil {
		t.Fatal("ReadAt at an offset beyond int64 succeeded")
	}
	if _, err := h.IoControl(ctx, 0x222000, nil, 0); HRESULTOf(err) != ErrorInvalidFunction {
		t.Fatalf("IoControl on a file: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "0123abc789" {
		t.Fatalf("file holds %q", got)
	}
	if d.OpenHandles() != 0 {
		t.Fatal("handle still counted after Close")
	}
}

// TestFileOpenRules covers every refusal of File.Open and the handle's
// access checks; each case also checks the file is unchanged.
func TestFileOpenRules(t *testing.T) {
	const content = "precious"
	readOnlyAccess := func(r *OpenRequest) { r.DesiredAccess = wire.GenericRead }
	cases := []struct {
		name     string
		readOnly bool
		missing  bool // the path does not exist (writable devices only)
		req      OpenRequest
		open     hresult.HRESULT // CreateFile result
		write    hresult.HRESULT // then WriteAt's, if the open succeeded
		read     hresult.HRESULT // then ReadAt's
		after    string          // file content afterwards ("" with missing: still missing)
	}{
		{name: "ro/open-existing-rw", readOnly: true, req: rw, write: ErrorWriteProtect, after: content},
		{name: "ro/create-new", readOnly: true, req: with(rw, func(r *OpenRequest) { r.CreationDisposition = wire.CreateNew }), open: ErrorWriteProtect, after: content},
		{name: "ro/create-always", readOnly: true, req: with(rw, func(r *OpenRequest) { r.CreationDisposition = wire.CreateAlways }), open: ErrorWriteProtect, after: content},
		{name: "ro/truncate-existing", readOnly: true, req: with(rw, func(r *OpenRequest) { r.CreationDisposition = wire.TruncateExisting }), open: ErrorWriteProtect, after: content},
		{name: "ro/open-always", readOnly: true, req: with(rw, func(r *OpenRequest) { r.CreationDisposition = wire.OpenAlways }), write: ErrorWriteProtect, after: content},
		{name: "rw/read-access-only", req: with(rw, readOnlyAccess), write: ErrorAccessDenied, after: content},
		{name: "rw/write-access-only", req: with(rw, func(r *OpenRequest) { r.DesiredAccess = wire.GenericWrite }), read: ErrorAccessDenied, after: "XXecious"},
		{name: "rw/no-access", req: with(rw, func(r *OpenRequest) { r.DesiredAccess = 0 }), read: ErrorAccessDenied, write: ErrorAccessDenied, after: content},
		{name: "rw/disposition-0", req: with(rw, func(r *OpenRequest) { r.CreationDisposition = 0 }), open: ErrorInvalidParameter, after: content},
		{name: "rw/disposition-6", req: with(rw, func(r *OpenRequest) { r.CreationDisposition = 6 }), open: ErrorInvalidParameter, after: content},
		{name: "rw/delete-on-close", req: with(rw, func(r *OpenRequest) { r.FlagsAndAttributes = wire.FileFlagDeleteOnClose }), open: ErrorAccessDenied, after: content},
		{name: "rw/create-new-exists", req: with(rw, func(r *OpenRequest) { r.CreationDisposition = wire.CreateNew }), open: ErrorFileExists, after: content},
		{name: "rw/truncate-without-write", req: with(rw, func(r *OpenRequest) { readOnlyAccess(r); r.CreationDisposition = wire.TruncateExisting }), open: ErrorAccessDenied, after: content},
		{name: "rw/open-existing-missing", missing: true, req: rw, open: ErrorFileNotFound},
		{name: "rw/truncate-existing-missing", missing: true, req: with(rw, func(r *OpenRequest) { r.CreationDisposition = wire.TruncateExisting }), open: ErrorFileNotFound},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(tempDir(t), "missing")
			if !c.missing {
				p = tempFile(t, content)
			}
			d, err := NewFile(p, c.readOnly, Description{})
			if err != nil {
				t.Fatal(err)
			}
			h, err := d.Open(ctx, c.req)
			wantCode(t, err, c.open)
			if err == nil {
				_, err = h.WriteAt(ctx, []byte("XX"), 0)
				wantCode(t, err, c.write)
				_, err = h.ReadAt(ctx, make([]byte, 4), 0)
				wantCode(t, err, c.read)
				h.Close()
			}
			got, err := os.ReadFile(p)
			if c.missing {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("the refused open created %s", p)
				}
				return
			}
			if string(got) != c.after {
				t.Fatalf("file holds %q, want %q", got, c.after)
			}
		})
	}
}

func TestFileDispositionsThatCreate(t *testing.T) {
	ctx := context.Background()
	for _, disp := range []uint32{wire.CreateNew, wire.CreateAlways, wire.OpenAlways} {
		p := filepath.Join(tempDir(t), "new")
		d, err := NewFile(p, false, Description{})
		if err != nil {
			t.Fatal(err)
		}
		h, err := d.Open(ctx, with(rw, func(r *OpenRequest) { r.CreationDisposition = disp }))
		if err != nil {
			t.Fatalf("disposition %d: %v", disp, err)
		}
		h.Close()
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("disposition %d did not create the file: %v", disp, err)
		}
	}
	p := tempFile(t, "old content")
	d, _ := NewFile(p, false, Description{})
	h, err := d.Open(ctx, with(rw, func(r *OpenRequest) { r.CreationDisposition = wire.TruncateExisting }))
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if st, _ := os.Stat(p); st.Size() != 0 {
		t.Fatalf("TRUNCATE_EXISTING left %d bytes", st.Size())
	}
}

func TestNewFileRefuses(t *testing.T) {
	if _, err := NewFile(tempDir(t), false, Description{}); err == nil {
		t.Error("a directory was accepted")
	}
	if _, err := NewFile(filepath.Join(tempDir(t), "missing"), true, Description{}); err == nil {
		t.Error("a missing read-only file was accepted")
	}
	if _, err := NewFile(tempFile(t, ""), false, Description{HardwareIDs: []string{""}}); err == nil {
		t.Error("an invalid description was accepted")
	}
}

func TestCharacterDevice(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	d, err := NewFile("/dev/zero", true, Description{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := d.Open(ctx, rw)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := bytes.Repeat([]byte{1}, 16)
	if n, err := h.ReadAt(ctx, buf, 12345); n != 16 || err != nil || !bytes.Equal(buf, make([]byte, 16)) {
		t.Fatalf("ReadAt = %d, %v, % x", n, err, buf)
	}
	if _, err := h.WriteAt(ctx, buf, 0); HRESULTOf(err) != ErrorWriteProtect {
		t.Fatalf("WriteAt on a read-only device: %v", err)
	}
}

func TestSharing(t *testing.T) {
	share := func(access, mode uint32) OpenRequest {
		return with(rw, func(r *OpenRequest) { r.DesiredAccess = access; r.ShareMode = mode })
	}
	const R, W = wire.GenericRead, wire.GenericWrite
	const SR, SW = wire.FileShareRead, wire.FileShareWrite
	cases := []struct {
		name         string
		first, again OpenRequest
		ok           bool
	}{
		{"both share all", share(R|W, SR|SW), share(R|W, SR|SW), true},
		{"first shares nothing", share(R, 0), share(R, SR|SW), false},
		{"first shares read, second writes", share(R, SR), share(W, SR|SW), false},
		{"first shares read, second reads", share(R, SR), share(R, SR), true},
		{"second does not share first's write", share(W, SR|SW), share(R, SR), false},
		{"no access never conflicts", share(R|W, 0), share(0, 0), true},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, _ := NewMemory(16, Description{})
			h1, err := m.Open(ctx, c.first)
			if err != nil {
				t.Fatal(err)
			}
			h2, err := m.Open(ctx, c.again)
			if c.ok != (err == nil) {
				t.Fatalf("second open: %v, want ok=%v", err, c.ok)
			}
			if err != nil {
				wantCode(t, err, ErrorSharingViolation)
			} else {
				h2.Close()
			}
			h1.Close()
			h1.Close() // idempotent: must not release someone else's entry
			if h3, err := m.Open(ctx, c.again); err != nil {
				t.Fatalf("open after the first closed: %v", err)
			} else {
				h3.Close()
			}
		})
	}
}

func TestMemory(t *testing.T) {
	ctx := context.Background()
	m, err := NewMemory(8, Description{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		disp uint32
		want hresult.HRESULT
	}{
		{wire.CreateNew, ErrorFileExists},
		{wire.CreateAlways, ErrorInvalidParameter},
		{wire.TruncateExisting, ErrorInvalidParameter},
		{wire.OpenAlways, hresult.S_OK},
	} {
		h, err := m.Open(ctx, with(rw, func(r *OpenRequest) { r.CreationDisposition = c.disp }))
		wantCode(t, err, c.want)
		if h != nil {
			h.Close()
		}
	}
	h, err := m.Open(ctx, rw)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	n, err := h.WriteAt(ctx, []byte("abcdef"), 5)
	if n != 3 {
		t.Fatalf("write across the end wrote %d", n)
	}
	wantCode(t, err, ErrorDiskFull)
	if n, err := h.WriteAt(ctx, []byte("x"), 1<<62); n != 0 || HRESULTOf(err) != ErrorDiskFull {
		t.Fatalf("write far past the end: %d, %v", n, err)
	}
	buf := make([]byte, 8)
	if n, err := h.ReadAt(ctx, buf, 4); n != 4 || err != nil || string(buf[:4]) != "\x00abc" {
		t.Fatalf("ReadAt = %d %v %q", n, err, buf[:n])
	}
	if got := m.Snapshot(5, 10); string(got) != "abc" {
		t.Fatalf("Snapshot = %q", got)
	}
	if _, err := h.IoControl(ctx, 1, nil, 0); HRESULTOf(err) != ErrorInvalidFunction {
		t.Fatalf("IoControl: %v", err)
	}
	if _, err := NewMemory(-1, Description{}); err == nil {
		t.Fatal("negative size accepted")
	}
}

func TestEmulated(t *testing.T) {
	ctx := context.Background()
	e, err := NewDemo(Description{Text: "demo"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []Event
	h, err := e.Open(ctx, with(rw, func(r *OpenRequest) {
		r.Events = func(ev Event) { got = append(got, Event{ev.GUID, append([]byte(nil), ev.Data...)}) }
	}))
	if err != nil {
		t.Fatal(err)
	}
	quiet, err := e.Open(ctx, rw) // no Events: custom events not negotiated
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.IoControl(ctx, IoctlDemoEcho, []byte("hello"), 3)
	if err != nil || string(out) != "hel" {
		t.Fatalf("echo = %q, %v", out, err)
	}
	if _, err := h.IoControl(ctx, 0x12345678, nil, 0); HRESULTOf(err) != ErrorInvalidFunction {
		t.Fatalf("unknown IoCode: %v", err)
	}
	if _, err := h.ReadAt(ctx, make([]byte, 1), 0); HRESULTOf(err) != ErrorInvalidFunction {
		t.Fatalf("read without storage: %v", err)
	}
	out, err = quiet.IoControl(ctx, IoctlDemoRaise, []byte{7}, 4)
	if err != nil || !bytes.Equal(out, []byte{1, 0, 0, 0}) {
		t.Fatalf("raise = % x, %v; want one handle told", out, err)
	}
	if len(got) != 1 || got[0].GUID != DemoEventGUID || !bytes.Equal(got[0].Data, []byte{7}) {
		t.Fatalf("events = %+v", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := h.IoControl(cctx, IoctlDemoSlow, nil, 0)
		done <- err
	}()
	cancel()
	wantCode(t, <-done, ErrorOperationAborted)
	h.Close()
	if n := e.RaiseEvent(Event{GUID: DemoEventGUID}); n != 0 || len(got) != 1 {
		t.Fatalf("event reached a closed handle (%d told)", n)
	}
	quiet.Close()

	// RequiredAccess bits of the IoCode.
	const readIoctl = 0x22<<16 | 1<<14 | 0x900<<2
	e.SetIoctl(readIoctl, func(context.Context, []byte, uint32) ([]byte, error) { return nil, nil })
	h, _ = e.Open(ctx, with(rw, func(r *OpenRequest) { r.DesiredAccess = wire.GenericWrite }))
	if _, err := h.IoControl(ctx, readIoctl, nil, 0); HRESULTOf(err) != ErrorAccessDenied {
		t.Fatalf("FILE_READ_ACCESS IoCode on a write-only handle: %v", err)
	}
	h.Close()
}

func TestHRESULTOf(t *testing.T) {
	cases := []struct {
		err  error
		want hresult.HRESULT
	}{
		{nil, hresult.S_OK},
		{context.Canceled, ErrorOperationAborted},
		{context.DeadlineExceeded, ErrorOperationAborted},
		{hresult.New("x", 0x80070020), 0x80070020},
		{&fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, ErrorFileNotFound},
		{fs.ErrPermission, ErrorAccessDenied},
		{fs.ErrExist, ErrorFileExists},
		{errors.New("other"), hresult.E_FAIL},
	}
	for _, c := range cases {
		if got := HRESULTOf(c.err); got != c.want {
			t.Errorf("HRESULTOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	for _, c := range []struct {
		got, want hresult.HRESULT
	}{
		{ErrorAccessDenied, hresult.FromWin32(hresult.ERROR_ACCESS_DENIED)},
		{ErrorWriteProtect, hresult.FromWin32(hresult.ERROR_WRITE_PROTECT)},
		{ErrorFileNotFound, hresult.FromWin32(hresult.ERROR_FILE_NOT_FOUND)},
		{ErrorInvalidParameter, hresult.FromWin32(hresult.ERROR_INVALID_PARAMETER)},
		{ErrorInsufficientBuffer, hresult.FromWin32(hresult.ERROR_INSUFFICIENT_BUFFER)},
		{ErrorOperationAborted, hresult.FromWin32(hresult.ERROR_OPERATION_ABORTED)},
		{ErrorSharingViolation, hresult.FromWin32(hresult.ERROR_SHARING_VIOLATION)},
		{ErrorDevNotExist, hresult.FromWin32(hresult.ERROR_DEV_NOT_EXIST)},
		{ErrorFileExists, hresult.FromWin32(hresult.ERROR_FILE_EXISTS)},
		{ErrorNoSystemResources, hresult.FromWin32(1450)},
		{ErrorDiskFull, hresult.FromWin32(112)},
	} {
		if c.got != c.want {
			t.Errorf("constant %v, want %v", c.got, c.want)
		}
	}
}
