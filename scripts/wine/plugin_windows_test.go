package wine

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows/registry"
)

// The in-process plugin DLL, loaded by host/dvchost.c (a C program playing
// mstsc's side: LoadLibrary, VirtualChannelGetInstance or
// DllGetClassObject, IWTSPlugin::Initialize with its own channel manager,
// OnNewChannelConnection, OnDataReceived with Simple frames, echoes
// checked in its IWTSVirtualChannel::Write, Terminated, FreeLibrary).
// test-windows.sh builds both and names them in the environment; each
// scenario is one host process, so a crash fails exactly that scenario.

const addInKey = `Software\Microsoft\Terminal Server Client\Default\AddIns\SimpleRdpPlugin`

// pluginFiles returns the DLL and the host, as absolute Windows paths.
func pluginFiles(t *testing.T) (dll, host string) {
	t.Helper()
	dll, host = os.Getenv("RDPDVC_PLUGIN_DLL"), os.Getenv("RDPDVC_DVCHOST")
	if dll == "" || host == "" || os.Getenv("RDPDVC_WINE") != "1" {
		t.Skip("needs rdpdvc-plugin.dll and dvchost.exe: runs under scripts/wine/test-windows.sh")
	}
	var err error
	if dll, err = filepath.Abs(dll); err != nil {
		t.Fatal(err)
	}
	if host, err = filepath.Abs(host); err != nil {
		t.Fatal(err)
	}
	return dll, host
}

// configure writes the DLL's configuration values for this user, and
// removes the key afterwards.
func configure(t *testing.T, values map[string]string) {
	t.Helper()
	k, _, err := registry.CreateKey(registry.CURRENT_USER, addInKey, registry.SET_VALUE)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for n, v := range values {
		if err := k.SetStringValue(n, v); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { registry.DeleteKey(registry.CURRENT_USER, addInKey) })
}

// runHost runs one scenario and returns its output; the host's exit status
// is its number of failed checks.
func runHost(t *testing.T, host string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, host, args...).CombinedOutput()
	if err != nil {
		t.Errorf("dvchost %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the plugin's log: %v", err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	return string(b)
}

func TestPluginDLL(t *testing.T) {
	dll, host := pluginFiles(t)
	for _, c := range []struct {
		scenario string
		channels string   // the Channels value; "" for the default
		inLog    []string // lines the plugin's log must show
	}{
		// VirtualChannelGetInstance: count, instance, the whole mstsc
		// sequence; FreeLibrary leaves the DLL pinned and working.
		// An unknown channel in the configuration is logged and skipped.
		{"getinstance", "Simple, echo;bogus", []string{`msg="plugin DLL loaded"`, "pinned=true", "pinned_at_load=true", "channels=\"[dvc::sample::simpleplugin ECHO]\"", `unknown channel \"bogus\" ignored`, `msg="plugin terminated"`}},
		// The same through DllGetClassObject's class factory.
		{"classobject", "", []string{`msg=DllGetClassObject`, `msg="plugin terminated"`}},
		// NULL pointers, unknown IIDs, 0 bytes, 64 MiB, Terminated twice.
		{"badinput", "", []string{`msg="plugin terminated"`}},
		// Six host threads at once: two in an STA, two in the MTA, two
		// without COM.
		{"threads", "", []string{`msg="plugin terminated"`}},
		// A handler that panics: a failed HRESULT, the channel closed.
		{"panic", "simple,echo,panic", []string{`msg="handler panicked; closing the channel"`, `channel=rdpdvc::test::panic`}},
	} {
		t.Run(c.scenario, func(t *testing.T) {
			dir := tempDir(t)
			logFile := filepath.Join(dir, "plugin.log")
			cfg := map[string]string{"LogFile": logFile}
			if c.channels != "" {
				cfg["Channels"] = c.channels
			}
			traceFile := filepath.Join(dir, "plugin.jsonl")
			if c.scenario == "getinstance" {
				cfg["Trace"] = traceFile
			}
			configure(t, cfg)
			out := runHost(t, host, c.scenario, dll)
			if !strings.Contains(out, c.scenario+": 0 failure(s)") {
				t.Errorf("dvchost did not finish cleanly:\n%s", out)
			}
			log := readLog(t, logFile)
			for _, want := range c.inLog {
				if !strings.Contains(log, want) {
					t.Errorf("the plugin's log lacks %q:\n%s", want, log)
				}
			}
			if c.scenario == "getinstance" {
				// The Trace value: the host's Simple frames and the
				// plugin's echoes, as the plugin saw them.
				tr := readLog(t, traceFile)
				if !strings.Contains(tr, `"from":"server","event":"data","channel":"dvc::sample::simpleplugin"`) ||
					!strings.Contains(tr, `"from":"client","event":"data","channel":"dvc::sample::simpleplugin"`) {
					t.Errorf("the plugin's trace lacks the Simple frames each way:\n%.2000s", tr)
				}
			}
		})
	}
}

// Two Go DLLs in one process: a second copy of the plugin (another path:
// another module with its own Go runtime) loads, initializes and answers,
// refuses to serve the channels the first already serves, and the first
// goes on working.
func TestPluginDLLTwoCopies(t *testing.T) {
	dll, host := pluginFiles(t)
	dir := tempDir(t)
	logFile := filepath.Join(dir, "plugin.log")
	configure(t, map[string]string{"LogFile": logFile})
	b, err := os.ReadFile(dll)
	if err != nil {
		t.Fatal(err)
	}
	dll2 := filepath.Join(dir, "rdpdvc-plugin-copy.dll")
	if err := os.WriteFile(dll2, b, 0o755); err != nil {
		t.Fatal(err)
	}
	out := runHost(t, host, "twocopies", dll, dll2)
	if !strings.Contains(out, "twocopies: 0 failure(s)") {
		t.Errorf("dvchost did not finish cleanly:\n%s", out)
	}
	if log := readLog(t, logFile); strings.Count(log, `msg="plugin DLL loaded"`) != 1 {
		t.Errorf("want exactly one copy serving (one \"plugin DLL loaded\"):\n%s", log)
	}
}

// regsvr32 drives DllRegisterServer, DllInstall and DllUnregisterServer:
// the DllPath form per user, for all users with /i:machine, and /u
// removing both.
func TestPluginDLLRegsvr32(t *testing.T) {
	dll, _ := pluginFiles(t)
	regsvr32 := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "regsvr32.exe", append([]string{"/s"}, append(args, dll)...)...).CombinedOutput(); err != nil {
			t.Fatalf("regsvr32 %q: %v %s", args, err, out)
		}
	}
	name := func(root registry.Key) (string, bool) {
		k, err := registry.OpenKey(root, addInKey, registry.QUERY_VALUE)
		if err != nil {
			return "", false
		}
		defer k.Close()
		v, _, err := k.GetStringValue("Name")
		return v, err == nil
	}
	t.Cleanup(func() {
		registry.DeleteKey(registry.CURRENT_USER, addInKey)
		registry.DeleteKey(registry.LOCAL_MACHINE, addInKey)
	})
	regsvr32()
	if v, _ := name(registry.CURRENT_USER); !strings.EqualFold(v, dll) {
		t.Errorf("HKCU Name = %q after regsvr32, want %q", v, dll)
	}
	if _, ok := name(registry.LOCAL_MACHINE); ok {
		t.Error("regsvr32 without /i:machine wrote HKLM")
	}
	regsvr32("/n", "/i:machine")
	if v, _ := name(registry.LOCAL_MACHINE); !strings.EqualFold(v, dll) {
		t.Errorf("HKLM Name = %q after regsvr32 /n /i:machine, want %q", v, dll)
	}
	for i := 0; i < 2; i++ {
		regsvr32("/u")
	}
	for _, root := range []registry.Key{registry.CURRENT_USER, registry.LOCAL_MACHINE} {
		if _, ok := name(root); ok {
			t.Error("Name left after regsvr32 /u")
		}
	}
}

// tempDir is t.TempDir for Wine 8.0, where os.RemoveAll (and so
// t.TempDir's cleanup) fails with "Invalid function": the files are
// removed one by one with os.Remove.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rdpdvc-wine-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Error(err)
			}
		}
		if err := os.Remove(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}
