package features

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/freerdp"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

var quiet = slog.New(slog.DiscardHandler)

// msgNative is a FreeRDP channel whose writes arrive on a Go channel.
type msgNative struct {
	mu  sync.Mutex
	in  *freerdp.Instance
	out chan []byte
}

func newMsgNative() *msgNative { return &msgNative{out: make(chan []byte, 16)} }

func (n *msgNative) Write(msg []byte) error {
	if len(msg) == 0 {
		n.mu.Lock()
		in := n.in
		n.mu.Unlock()
		in.Gone(nil)
		return nil
	}
	n.out <- append([]byte(nil), msg...)
	return nil
}

// next is the next message the client sent. The bound only keeps a broken
// client from hanging the test; nothing is timed.
func (n *msgNative) next(t *testing.T) []byte {
	t.Helper()
	select {
	case m := <-n.out:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("the client sent nothing")
		return nil
	}
}

func newChannel(t *testing.T, h *freerdp.Host, name string, id uint32) (*freerdp.Instance, *msgNative) {
	t.Helper()
	n := newMsgNative()
	n.mu.Lock()
	defer n.mu.Unlock()
	in, err := h.NewChannel(name, id, n)
	if err != nil {
		t.Fatal(err)
	}
	n.in = in
	return in, n
}

func TestPNPFeatureArguments(t *testing.T) {
	dir := t.TempDir()
	features := []Feature{PNP(quiet), {Name: "simple", Setup: NoValue(func(dvc.Registrar) error { return nil })}}
	for _, c := range []struct {
		args []string
		want string // in the error; "" for success
	}{
		{[]string{"simple", "pnp=mem:1MiB", "pnp=mem:4K:desc=second"}, ""},
		{[]string{"pnp=file:" + filepath.Join(dir, "new.img") + ":hwid=TEST\\RW"}, ""}, // writable: may be created later
		{[]string{"pnp"}, "wants a device"},
		{[]string{"pnp="}, "wants a device"},
		{[]string{"pnp=mem:1MiB", "pnp=mem:"}, "empty argument"},
		{[]string{"pnp=disk:/x"}, `unknown kind "disk"`},
		{[]string{"pnp=mem:1MiB:ro"}, `unknown option "ro"`},
		{[]string{"pnp=file:" + filepath.Join(dir, "missing.img") + ":ro"}, "no such file"},
		{[]string{"pnp=file:" + dir}, "is a directory"},
		{[]string{"pnp=mem:1,ro"}, "size"}, // FreeRDP never passes a comma; if it did, it is no separator
	} {
		h := freerdp.NewHost()
		err := Configure(h, features, c.args)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"pnp"`)):
			t.Errorf("%q: error %v, want one about feature \"pnp\" with %q", c.args, err, c.want)
		}
		if c.want == "" {
			if got := strings.Join(h.Names(), " "); got != wire.ChannelPNPDR+" "+wire.ChannelFileRedirector {
				t.Errorf("%q: listeners %q", c.args, got)
			}
		} else if len(h.Names()) != 0 {
			t.Errorf("%q: listeners %q registered by a refused configuration", c.args, h.Names())
		}
		h.Terminate()
	}
	devs, err := ParsePNPDevices([]string{"mem:1MiB", `emu:demo:size=0:desc=a\:b`})
	if err != nil || len(devs) != 2 || devs[0].(*device.Memory).Size() != 1<<20 || devs[1].Describe().Text != "a:b" {
		t.Fatalf("ParsePNPDevices: %v %v", devs, err)
	}
}

// The plugin exposes exactly the devices named, in order, and serves I/O
// on them through the Host, as FreeRDP would drive it.
func TestPNPFeatureServesTheNamedDevices(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rw.img")
	if err := os.WriteFile(file, []byte("AAAAAAAAAA"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := freerdp.NewHost()
	defer h.Terminate()
	if err := Configure(h, []Feature{PNP(quiet)}, []string{"pnp=mem:1MiB", `pnp=file:` + file + `:hwid=TEST\RW:desc=disk\: one`}); err != nil {
		t.Fatal(err)
	}
	if err := h.Attach(func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}

	pnpdr, n := newChannel(t, h, wire.ChannelPNPDR, 1)
	// Both server messages in one delivery, as a server behind xrdp that
	// writes back to back would make FreeRDP deliver them: the Reframe
	// wrapper splits them by PNP_INFO_HEADER Size.
	pnpdr.Data(wire.AuthenticatedClient{}.Append(wire.ServerVersion{MajorVersion: 1, MinorVersion: 5, Capabilities: 1}.Append(nil)))
	if m, err := wire.ParsePNPDR(wire.ClientToServer, n.next(t)); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(wire.ClientVersion); !ok {
		t.Fatalf("first message %T, want ClientVersion", m)
	}
	m, err := wire.ParsePNPDR(wire.ClientToServer, n.next(t))
	if err != nil {
		t.Fatal(err)
	}
	add, ok := m.(wire.ClientDeviceAddition)
	if !ok || len(add.Devices) != 2 {
		t.Fatalf("second message %T %+v, want a Client Device Addition of 2 devices", m, m)
	}
	if d := add.Devices[0]; d.ClientDeviceID != 1 || d.HardwareIDs[0] != device.MemoryHardwareID {
		t.Errorf("device 1: %+v", d)
	}
	if d := add.Devices[1]; d.ClientDeviceID != 2 || d.HardwareIDs[0] != `TEST\RW` || d.DeviceDescription != "disk: one" {
		t.Errorf("device 2: %+v", d)
	}

	// Write to the file device over FileRedirectorChannel.
	fc, fn := newChannel(t, h, wire.ChannelFileRedirector, 2)
	fc.Data(wire.ServerCapabilitiesRequest{RequestID: 0, Version: wire.IOVersionCustomEvents}.Append(nil))
	if _, err := wire.ParseReply(fn.next(t), wire.FunctionCapabilities); err != nil {
		t.Fatal(err)
	}
	fc.Data(wire.CreateFileRequest{RequestID: 0x010101, DeviceID: 2, DesiredAccess: wire.GenericRead | wire.GenericWrite,
		ShareMode: 3, CreationDisposition: wire.OpenExisting}.Append(nil))
	if r, err := wire.ParseReply(fn.next(t), wire.FunctionCreateFile); err != nil || r.(wire.CreateFileReply).Result != 0 {
		t.Fatalf("CreateFile: %+v %v", r, err)
	}
	fc.Data(wire.WriteRequest{RequestID: 0x020202, Offset: 3, Data: []byte("xyz")}.Append(nil))
	if r, err := wire.ParseReply(fn.next(t), wire.FunctionWrite); err != nil || r.(wire.WriteReply).BytesWritten != 3 {
		t.Fatalf("Write: %+v %v", r, err)
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, []byte("AAAxyzAAAA")) {
		t.Fatalf("file holds %q", b)
	}

	// A device that was not named does not exist.
	other, on := newChannel(t, h, wire.ChannelFileRedirector, 3)
	other.Data(wire.ServerCapabilitiesRequest{Version: wire.IOVersionCustomEvents}.Append(nil))
	on.next(t)
	other.Data(wire.CreateFileRequest{RequestID: 0x010101, DeviceID: 3, DesiredAccess: wire.GenericRead, ShareMode: 3,
		CreationDisposition: wire.OpenExisting}.Append(nil))
	if r, err := wire.ParseReply(on.next(t), wire.FunctionCreateFile); err != nil || !r.(wire.CreateFileReply).Result.Failed() {
		t.Fatalf("CreateFile of device 3: %+v %v", r, err)
	}
}

func TestOnTerminate(t *testing.T) {
	h := freerdp.NewHost()
	var calls []string
	h.OnTerminate(func() { calls = append(calls, "a") })
	h.OnTerminate(func() { calls = append(calls, "b") })
	h.Terminate()
	h.OnTerminate(func() { calls = append(calls, "late") })
	if got := strings.Join(calls, " "); got != "a b late" {
		t.Fatalf("calls %q", got)
	}
}
