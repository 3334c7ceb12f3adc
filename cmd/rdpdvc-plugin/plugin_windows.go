package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"

	"github.com/rdpdvc/rdpdvc/backend/com"
	"github.com/rdpdvc/rdpdvc/bridge"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/echo"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/simple"
	"github.com/rdpdvc/rdpdvc/trace"
	"github.com/rdpdvc/rdpdvc/tunnel"
)

// AddInName is the AddIns key the DLL registers under and reads its
// configuration from: the same as rdp-simple-plugin-client.exe's, so one
// hive holds one of the two forms of the same plugin, never both (two
// would listen on the same channels).
const AddInName = "SimpleRdpPlugin"

// CLSID is the class DllGetClassObject serves (the DllPath:{CLSID} form,
// and hosts that create plugins by class). Not the LocalServer's: that
// class is the exe.
const CLSID = "{5028102C-CE40-4D47-9CF9-0DD4E0996DFC}"

// PanicChannel is a test channel whose handler panics on every message;
// listed only when Channels names "panic". It exists so that the DLL's
// panic recovery can be checked from outside, by a host.
const PanicChannel = "rdpdvc::test::panic"

// Registry values under <hive>\...\AddIns\SimpleRdpPlugin (HKCU first,
// then HKLM, value by value), all optional.
const (
	valChannels = "Channels" // REG_SZ: "simple,echo" (default); "panic" adds PanicChannel
	valLogFile  = "LogFile"  // REG_SZ or REG_EXPAND_SZ: default %TEMP%\rdpdvc-plugin.log
	valLogLevel = "LogLevel" // REG_SZ: debug, info (default), warn, error
	valTrace    = "Trace"    // REG_SZ or REG_EXPAND_SZ: record every channel message in this file (docs/trace.md)
	valBridge   = "Bridge"   // REG_MULTI_SZ, one NAME=[FRAMING:]unix:PATH|tcp:HOST:PORT per string, or REG_SZ/REG_EXPAND_SZ with one (docs/bridge.md)
	valTunnel   = "Tunnel"   // REG_MULTI_SZ, one allow:RULE or listen:HOST:PORT per string, or REG_SZ with one (docs/tunnel.md)
)

type config struct {
	channels []string // tokens, in order
	logFile  string
	trace    string // empty: no trace
	bridges  []string
	tunnel   []string // tunnel options; none: no tunnel
	level    slog.Level
	notes    []string // what could not be used, logged once the log is open
}

// lookup reads value name from HKCU, then HKLM.
func lookup(name string) (string, bool) {
	for _, root := range []registry.Key{registry.CURRENT_USER, registry.LOCAL_MACHINE} {
		k, err := registry.OpenKey(root, com.AddInsParent+`\`+AddInName, registry.QUERY_VALUE)
		if err != nil {
			continue
		}
		v, typ, err := k.GetStringValue(name)
		k.Close()
		if err != nil {
			continue
		}
		if typ == registry.EXPAND_SZ {
			if x, err := registry.ExpandString(v); err == nil {
				v = x
			}
		}
		return v, true
	}
	return "", false
}

// lookupStrings reads a REG_MULTI_SZ value, or a string value as a list
// of one, from HKCU, then HKLM.
func lookupStrings(name string) ([]string, bool) {
	for _, root := range []registry.Key{registry.CURRENT_USER, registry.LOCAL_MACHINE} {
		k, err := registry.OpenKey(root, com.AddInsParent+`\`+AddInName, registry.QUERY_VALUE)
		if err != nil {
			continue
		}
		vs, _, err := k.GetStringsValue(name)
		if err != nil {
			var v string
			var typ uint32
			if v, typ, err = k.GetStringValue(name); err == nil && typ == registry.EXPAND_SZ {
				if x, xerr := registry.ExpandString(v); xerr == nil {
					v = x
				}
			}
			vs = []string{v}
		}
		k.Close()
		if err == nil {
			return vs, true
		}
	}
	return nil, false
}

// lookupList is lookupStrings without its empty strings.
func lookupList(name string) []string {
	vs, _ := lookupStrings(name)
	var out []string
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func readConfig() config {
	c := config{channels: []string{"simple", "echo"}, logFile: filepath.Join(os.TempDir(), "rdpdvc-plugin.log")}
	if v, ok := lookup(valChannels); ok {
		c.channels = strings.FieldsFunc(strings.ToLower(v), func(r rune) bool { return r == ',' || r == ';' || r == ' ' })
	}
	if v, ok := lookup(valLogFile); ok && v != "" {
		c.logFile = v
	}
	if v, ok := lookup(valTrace); ok {
		c.trace = v
	}
	c.bridges = lookupList(valBridge)
	c.tunnel = lookupList(valTunnel)
	if v, ok := lookup(valLogLevel); ok {
		if err := c.level.UnmarshalText([]byte(v)); err != nil {
			c.notes = append(c.notes, fmt.Sprintf("%s %q is not debug, info, warn or error; using info", valLogLevel, v))
		}
	}
	return c
}

// listeners turns the configured tokens into channel listeners.
func (c *config) listeners(log *slog.Logger) (names []string, ls []dvc.Listener) {
	seen := map[string]bool{}
	for _, tok := range c.channels {
		var name string
		var l dvc.Listener
		switch tok {
		case "simple":
			name, l = simple.ChannelName, &simple.Echoer{Logger: log}
		case "echo":
			name, l = echo.ChannelName, &echo.Responder{Logger: log}
		case "panic":
			name, l = PanicChannel, dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return panicker{}, nil })
		default:
			c.notes = append(c.notes, fmt.Sprintf("%s: unknown channel %q ignored (known: simple, echo)", valChannels, tok))
			continue
		}
		if !seen[name] {
			seen[name] = true
			names, ls = append(names, name), append(ls, l)
		}
	}
	return names, ls
}

type panicker struct{}

func (panicker) Received([]byte) { panic("rdpdvc-plugin: the test channel panics on every message") }
func (panicker) Closed(error)    {}

// The DLL's state, made on the first call that needs it.
var (
	self struct {
		module windows.Handle
		path   string
		err    error // pinning failed
		dup    error // another copy of this plugin is loaded in the process
	}
	plugin struct {
		once sync.Once
		ip   *com.InProc
		log  *slog.Logger
		// logged is log once set, for exports that did not start the
		// plugin (a panic while registering).
		logged atomic.Pointer[slog.Logger]
	}
	clsid, _ = com.ParseGUID(CLSID)
)

// anchor is a function of this DLL whose address names its module.
func anchor() {}

// pinnedAtLoad reports whether the DLL pinned itself while it was being
// loaded (pin_windows.go, a C constructor; absent without cgo).
var pinnedAtLoad = func() bool { return false }

func init() {
	self.module, self.err = pin()
	if self.err == nil {
		self.path, self.err = modulePath(self.module)
	}
	self.dup = claim()
}

// pin finds this DLL's module and pins it: a Go runtime cannot be
// unloaded (its threads would go on running unmapped code), so a host's
// FreeLibrary must leave it in place, for the life of the process.
func pin() (windows.Handle, error) {
	addr := reflect.ValueOf(anchor).Pointer()
	var h windows.Handle
	err := windows.GetModuleHandleEx(windows.GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS|windows.GET_MODULE_HANDLE_EX_FLAG_PIN,
		*(**uint16)(unsafe.Pointer(&addr)), &h)
	if err != nil {
		return 0, fmt.Errorf("GetModuleHandleExW(PIN): %w", err)
	}
	return h, nil
}

func modulePath(h windows.Handle) (string, error) {
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n, err := windows.GetModuleFileName(h, &buf[0], uint32(len(buf)))
	if err != nil {
		return "", fmt.Errorf("GetModuleFileNameW: %w", err)
	}
	return windows.UTF16ToString(buf[:n]), nil
}

// claim takes this process's plugin mutex, named after the process id. A
// second copy of the DLL (another path: another module, another Go
// runtime) finds it taken and refuses to serve, so that the same channels
// are not listened on twice. The handle is never closed.
func claim() error {
	name, _ := windows.UTF16PtrFromString(fmt.Sprintf(`Local\rdpdvc-plugin-%d`, os.Getpid()))
	_, err := windows.CreateMutex(nil, false, name)
	if errors.Is(err, windows.ERROR_ALREADY_EXISTS) {
		return errors.New("another rdpdvc-plugin.dll is already loaded in this process; this copy serves nothing")
	}
	return nil // any other failure: serve (nothing to be a duplicate of)
}

// ErrAlreadyLoaded is what this copy's exports answer when another copy
// serves the process: HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS).
// sFalse is S_FALSE, DllCanUnloadNow's "not now".
const sFalse hresult.HRESULT = 1

var errAlreadyLoaded = hresult.FromWin32(uint32(windows.ERROR_ALREADY_EXISTS))

// start reads the configuration, opens the log and registers the
// listeners, once.
func start() (*com.InProc, *slog.Logger) {
	plugin.once.Do(func() {
		c := readConfig()
		var w io.Writer = io.Discard
		if f, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
			w = f // open for the life of the process
		} else {
			c.notes = append(c.notes, fmt.Sprintf("log file %q: %v", c.logFile, err))
		}
		log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: c.level})).With("pid", os.Getpid())
		p := &com.Plugin{Logger: log}
		var rec *trace.Recorder // open for the life of the process, like the log
		if c.trace != "" {
			var err error
			if rec, err = trace.Create(c.trace, trace.Client); err != nil {
				c.notes = append(c.notes, fmt.Sprintf("%s: %v", valTrace, err))
			}
		}
		reg := rec.Registrar(p)
		names, ls := c.listeners(log)
		for i, n := range names {
			if err := reg.Listen(n, ls[i]); err != nil {
				c.notes = append(c.notes, err.Error())
			}
		}
		if len(c.bridges) > 0 {
			if err := bridge.Register(reg, c.bridges, log); err != nil {
				c.notes = append(c.notes, fmt.Sprintf("%s: %v", valBridge, err))
			}
		}
		if len(c.tunnel) > 0 {
			// The client lives as long as the process, like the DLL.
			if _, err := tunnel.RegisterOptions(reg, c.tunnel, log.With("feature", "tunnel")); err != nil {
				c.notes = append(c.notes, fmt.Sprintf("%s: %v", valTunnel, err))
			}
		}
		for _, n := range c.notes {
			log.Warn("configuration", "problem", n)
		}
		exe, _ := os.Executable()
		log.Info("plugin DLL loaded", "dll", self.path, "host", exe, "channels", names, "pinned", self.err == nil, "pinned_at_load", pinnedAtLoad())
		if self.err != nil {
			log.Error("could not pin the DLL; the host must not FreeLibrary it", "err", self.err)
		}
		plugin.ip, plugin.log = com.NewInProc(p), log
		plugin.logged.Store(log)
	})
	return plugin.ip, plugin.log
}

func getInstance(riid, pNumObjs, ppObjArray uintptr) hresult.HRESULT {
	if self.dup != nil {
		if pNumObjs != 0 {
			*(*uint32)(ptrOf(pNumObjs)) = 0
		}
		return errAlreadyLoaded
	}
	ip, log := start()
	h := ip.GetInstance(riid, pNumObjs, ppObjArray)
	log.Info("VirtualChannelGetInstance", "count query", ppObjArray == 0, "hr", h)
	return h
}

func getClassObject(rclsid, riid, ppv uintptr) hresult.HRESULT {
	if self.dup != nil {
		if ppv != 0 {
			*(*uintptr)(ptrOf(ppv)) = 0
		}
		return errAlreadyLoaded
	}
	ip, log := start()
	h := ip.GetClassObject(clsid, rclsid, riid, ppv)
	log.Info("DllGetClassObject", "hr", h)
	return h
}

// register writes the DllPath form under HKCU, or HKLM with machine.
func register(machine bool) hresult.HRESULT {
	if self.err != nil {
		return errHR(self.err)
	}
	scope := com.PerUser
	if machine {
		scope = com.Machine
	}
	return errHR(com.RegisterDLL(com.DLLRegistration{Name: AddInName, DLL: self.path}, scope))
}

func unregister() hresult.HRESULT { return errHR(com.UnregisterAddIn(AddInName)) }

// errHR is the HRESULT for err: the Windows error inside it, E_FAIL if
// none, S_OK for nil.
func errHR(err error) hresult.HRESULT {
	var errno windows.Errno
	switch {
	case err == nil:
		return hresult.S_OK
	case errors.As(err, &errno):
		return hresult.FromWin32(uint32(errno))
	}
	return hresult.E_FAIL
}

// install is DllInstall(bInstall, pszCmdLine): "user" (the default) or
// "machine", as regsvr32 /i:machine passes it.
func install(on bool, cmdLine uintptr) hresult.HRESULT {
	var arg string
	if cmdLine != 0 {
		arg = windows.UTF16PtrToString((*uint16)(ptrOf(cmdLine)))
	}
	machine := false
	switch strings.ToLower(strings.TrimSpace(arg)) {
	case "", "user":
	case "machine":
		machine = true
	default:
		return hresult.E_INVALIDARG
	}
	if !on {
		return unregister()
	}
	return register(machine)
}

// ptrOf turns an address the host gave into a pointer (host memory, never
// Go's).
func ptrOf(u uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&u)) }
