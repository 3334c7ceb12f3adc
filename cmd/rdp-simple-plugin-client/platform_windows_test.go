package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"

	"github.com/rdpdvc/rdpdvc/backend/com"
	"github.com/rdpdvc/rdpdvc/simple"
)

// These tests write the real Simple registration and register its class
// object: they run only in test-windows.sh's throw-away Wine prefix.
func needWine(t *testing.T) {
	t.Helper()
	if os.Getenv("RDPDVC_WINE") != "1" {
		t.Skip("writes HKCU/HKLM and registers the Simple CLSID: runs only under scripts/wine/test-windows.sh")
	}
}

func regString(t *testing.T, root registry.Key, path, name string) (string, bool) {
	t.Helper()
	k, err := registry.OpenKey(root, path, registry.QUERY_VALUE)
	if err != nil {
		return "", false
	}
	defer k.Close()
	v, _, err := k.GetStringValue(name)
	return v, err == nil
}

func TestWindowsRegisterUnregister(t *testing.T) {
	needWine(t)
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	const ls = `Software\Classes\CLSID\{D9B80669-C06A-4BD1-9CB1-3B7168C9E3A3}\LocalServer32`
	const addin = `Software\Microsoft\Terminal Server Client\Default\AddIns\SimpleRdpPlugin`
	for _, c := range []struct {
		args []string
		root registry.Key
		hive string
	}{
		{[]string{"/register"}, registry.CURRENT_USER, "HKCU"},
		{[]string{"/REGISTER", "/Machine"}, registry.LOCAL_MACHINE, "HKLM"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), c.args, &out, &errb); code != 0 {
			t.Fatalf("%q: exit %d: %s", c.args, code, errb.String())
		}
		if v, _ := regString(t, c.root, ls, ""); v != com.LocalServerCommand(exe) {
			t.Errorf("%s LocalServer32 = %q, want %q", c.hive, v, exe)
		}
		if v, _ := regString(t, c.root, addin, "Name"); v != "{D9B80669-C06A-4BD1-9CB1-3B7168C9E3A3}" {
			t.Errorf("%s AddIns Name = %q", c.hive, v)
		}
		if !strings.Contains(out.String(), c.hive+`\`+addin) {
			t.Errorf("%q printed %q", c.args, out.String())
		}
	}
	for i := 0; i < 2; i++ { // idempotent
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"-unregister"}, &out, &errb); code != 0 {
			t.Fatalf("/unregister #%d: exit %d: %s", i+1, code, errb.String())
		}
	}
	for _, root := range []registry.Key{registry.CURRENT_USER, registry.LOCAL_MACHINE} {
		if _, ok := regString(t, root, ls, ""); ok {
			t.Error("LocalServer32 left behind")
		}
		if _, ok := regString(t, root, addin, "Name"); ok {
			t.Error("AddIns entry left behind")
		}
	}
}

func TestWindowsSwitchErrors(t *testing.T) {
	for _, args := range [][]string{{"/machine"}, {"/register", "/unregister"}, {"-Embedding", "/register"}, {"/register", "extra"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
}

var (
	ole32                = windows.NewLazySystemDLL("ole32.dll")
	procCoInitializeEx   = ole32.NewProc("CoInitializeEx")
	procCoUninitialize   = ole32.NewProc("CoUninitialize")
	procCoCreateInstance = ole32.NewProc("CoCreateInstance")
)

const clsctxLocalServer = 4

func createInstance(clsid, iid com.GUID) (uintptr, uint32) {
	var p uintptr
	r, _, _ := procCoCreateInstance.Call(uintptr(unsafe.Pointer(&clsid)), 0, clsctxLocalServer, uintptr(unsafe.Pointer(&iid)), uintptr(unsafe.Pointer(&p)))
	return p, uint32(r)
}

// release calls IUnknown::Release (vtable slot 2) on a COM pointer.
func release(p uintptr) {
	obj := *(*unsafe.Pointer)(unsafe.Pointer(&p))
	vtbl := *(*unsafe.Pointer)(obj)
	syscallN((*[3]uintptr)(vtbl)[2], p)
}

// -Embedding registers the class object; the process's run ends once the
// plugin it served is released.
func TestWindowsEmbeddingEndsWhenReleased(t *testing.T) {
	needWine(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	procCoInitializeEx.Call(0, 0) // COINIT_MULTITHREADED
	defer procCoUninitialize.Call()

	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() { done <- run(context.Background(), []string{"-Embedding"}, &bytes.Buffer{}, &errb) }()
	clsid, _ := com.ParseGUID(simple.CLSID)
	var p uintptr
	for i := 0; ; i++ { // until the goroutine has registered the class
		var r uint32
		p, r = createInstance(clsid, com.IID_IWTSPlugin)
		if r == 0 {
			break
		}
		if i == 600 {
			t.Fatalf("CoCreateInstance: 0x%08X", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	release(p)
	if code := <-done; code != 0 {
		t.Fatalf("-Embedding exit %d: %s", code, errb.String())
	}
}

// Real out-of-process activation: with the exe registered under HKLM
// (Wine starts LocalServer32 exes only for classes registered there), COM
// starts it with -Embedding, hands us a proxy, and the exe exits when we
// release it. Custom interfaces do not marshal across processes under
// Wine, so only IUnknown is asked for. test-windows.sh builds the exe and
// passes its path in RDPDVC_CLIENT_EXE.
func TestWindowsOutOfProcessActivation(t *testing.T) {
	needWine(t)
	exe := os.Getenv("RDPDVC_CLIENT_EXE")
	if exe == "" {
		t.Skip("RDPDVC_CLIENT_EXE not set")
	}
	if !strings.Contains(exe, `\`) { // a Unix path: Wine maps / to Z:
		exe = `Z:` + strings.ReplaceAll(exe, "/", `\`)
	}
	r := com.Registration{CLSID: simple.CLSID, Name: AddInName, Exe: exe}
	if err := com.Register(r, com.Machine); err != nil {
		t.Fatal(err)
	}
	defer com.Unregister(r)
	logPath := filepath.Join(os.TempDir(), "rdp-simple-plugin-client.log")
	before, _ := os.ReadFile(logPath)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	procCoInitializeEx.Call(0, 0)
	defer procCoUninitialize.Call()
	clsid, _ := com.ParseGUID(simple.CLSID)
	p, hr := createInstance(clsid, com.IID_IUnknown)
	if hr != 0 {
		t.Fatalf("CoCreateInstance(CLSCTX_LOCAL_SERVER): 0x%08X", hr)
	}
	release(p)
	// The exe logs its start and its exit; wait (bounded) for the latter.
	for i := 0; ; i++ {
		b, _ := os.ReadFile(logPath)
		b = bytes.TrimPrefix(b, before)
		if bytes.Contains(b, []byte("plugin released; exiting")) {
			if !bytes.Contains(b, []byte("started by COM")) {
				t.Errorf("log: %s", b)
			}
			return
		}
		if i == 1200 {
			t.Fatalf("the COM-started exe did not exit after release; its log:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// /register /dll PATH writes the DllPath form (per user, or /machine);
// /unregister removes it from both hives.
func TestWindowsRegisterDLL(t *testing.T) {
	needWine(t)
	const addin = `Software\Microsoft\Terminal Server Client\Default\AddIns\SimpleRdpPlugin`
	// In the working directory: t.TempDir's cleanup fails under Wine 8.0
	// (os.RemoveAll: "Invalid function").
	dll, err := filepath.Abs(fmt.Sprintf("rdpdvc-test-%d.dll", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dll, []byte("MZ"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dll)
	for _, c := range []struct {
		args []string
		root registry.Key
		hive string
	}{
		{[]string{"/register", "/dll", dll}, registry.CURRENT_USER, "HKCU"},
		{[]string{"-DLL", dll, "/register", "/machine"}, registry.LOCAL_MACHINE, "HKLM"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), c.args, &out, &errb); code != 0 {
			t.Fatalf("%q: exit %d: %s", c.args, code, errb.String())
		}
		if v, _ := regString(t, c.root, addin, "Name"); v != dll {
			t.Errorf("%s AddIns Name = %q, want %q", c.hive, v, dll)
		}
		if !strings.Contains(out.String(), c.hive+`\`+addin+`\Name = `+dll) {
			t.Errorf("%q printed %q", c.args, out.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"/unregister"}, &out, &errb); code != 0 {
		t.Fatalf("/unregister: exit %d: %s", code, errb.String())
	}
	for _, root := range []registry.Key{registry.CURRENT_USER, registry.LOCAL_MACHINE} {
		if _, ok := regString(t, root, addin, "Name"); ok {
			t.Error("the DllPath registration survived /unregister")
		}
	}
	missing := dll + ".missing.dll"
	if code := run(context.Background(), []string{"/register", "/dll", missing}, &out, &errb); code != 1 {
		t.Errorf("/register /dll of a missing file: exit %d, want 1", code)
	}
	if _, ok := regString(t, registry.CURRENT_USER, addin, "Name"); ok {
		t.Error("a missing DLL was registered")
	}
}

func TestWindowsDLLSwitchErrors(t *testing.T) {
	for _, args := range [][]string{{"/dll", `C:\x.dll`}, {"/register", "/dll"}, {"/register", "/dll", "a.dll", "/dll", "b.dll"}, {"/unregister", "/dll", `C:\x.dll`}, {"-Embedding", "/dll", `C:\x.dll`}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
}
