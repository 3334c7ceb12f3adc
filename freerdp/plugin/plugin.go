//go:build (freerdp && !freerdp3) || (freerdp3 && !freerdp)

// Command plugin is librdpdvc-client.so, rdpdvc's client plugin for
// FreeRDP 2 and FreeRDP 3, built with cgo against the headers of one of
// them and installed in that FreeRDP's addin folder.
//
// FreeRDP 3 (Debian 13, or 12 with bookworm-backports: freerdp3-x11,
// freerdp3-dev, libwinpr3-dev):
//
//	go build -tags freerdp3 -buildmode=c-shared -o librdpdvc-client.so ./freerdp/plugin
//	install -D -m 644 librdpdvc-client.so /usr/lib/$(gcc -print-multiarch)/freerdp3/librdpdvc-client.so
//	xfreerdp3 /v:host /u:user /dvc:rdpdvc,simple
//
// FreeRDP 2 (Debian 12: freerdp2-x11, freerdp2-dev, libwinpr2-dev):
//
//	go build -tags freerdp -buildmode=c-shared -o librdpdvc-client.so ./freerdp/plugin
//	install -D -m 644 librdpdvc-client.so /usr/lib/$(gcc -print-multiarch)/freerdp2/librdpdvc-client.so
//	xfreerdp /v:host /u:user /dvc:rdpdvc,simple
//
// The tag picks the pkg-config packages (cgo_freerdp2.go,
// cgo_freerdp3.go); the code is the same for both, with
// #if FREERDP_VERSION_MAJOR >= 3 in glue.c where FreeRDP 3's
// freerdp/dvc.h differs (a trailing pInterface in IWTSListenerCallback
// and IWTSVirtualChannelCallback; GetPluginData returning const
// ADDIN_ARGV*). The structures are FreeRDP's own from its headers, so a
// plugin fits the major it was compiled against only: the plugin links
// neither libfreerdp nor libwinpr, so it can be loaded by either major,
// and DVCPluginEntry first asks the process which FreeRDP it is
// (freerdp_get_version, looked up globally, else in every mapped
// libfreerdpN) and refuses another major with a message on stderr, such
// as "rdpdvc: this librdpdvc-client.so was built for FreeRDP 2 but is
// loaded by FreeRDP 3.15.0 (...); rebuild with -tags freerdp3".
//
// Every client-side channel of rdpdvc lives in this one library (one Go
// runtime per process); the arguments after "rdpdvc" choose the features
// (see features.go). The state machine is in package freerdp; this
// package only converts FreeRDP's C callbacks (glue.c) into calls on it.
package main

/*
// --as-needed: glue.c calls nothing in libfreerdp or libwinpr (only
// function pointers FreeRDP hands over), so the plugin does not depend on
// either and loads into a FreeRDP of the other major far enough to
// refuse it with a clear message. cgo puts these flags before the
// pkg-config ones, which they must precede to apply.
#cgo LDFLAGS: -Wl,--as-needed -ldl
#include <stdlib.h>
#include "glue.h"
*/
import "C"

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/cgo"
	"sync/atomic"
	"unsafe"

	"github.com/rdpdvc/rdpdvc/freerdp"
	"github.com/rdpdvc/rdpdvc/freerdp/features"
)

func main() {}

// builtMajor is the FreeRDP major of the headers the plugin was compiled
// against.
const builtMajor = int(C.RDPDVC_BUILT_MAJOR)

// hostInfo is what goCheckHost learnt about the FreeRDP that loaded the
// plugin.
type hostInfo struct {
	version freerdp.HostVersion
	known   bool
}

var loadedBy atomic.Pointer[hostInfo]

// goCheckHost is DVCPluginEntry's first step: 1 when the FreeRDP in this
// process is the major the plugin was built for (or cannot be told), 0
// after printing why not.
//
//export goCheckHost
func goCheckHost() C.int {
	var found [8]C.rdpdvc_host_version
	n := int(C.rdpdvc_host_versions(&found[0], C.int(len(found))))
	vs := make([]freerdp.HostVersion, 0, n)
	for i := range n {
		f := &found[i]
		vs = append(vs, freerdp.HostVersion{
			Major:    int(f.major),
			Minor:    int(f.minor),
			Revision: int(f.revision),
			Path:     C.GoString(&f.path[0]),
			Global:   f.global != 0,
		})
	}
	v, known, err := freerdp.CheckHost(builtMajor, vs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rdpdvc: %v\n", err)
		return 0
	}
	loadedBy.Store(&hostInfo{version: v, known: known})
	return 1
}

// plugin is the Go state behind one rdpdvc_plugin.
type plugin struct {
	host *freerdp.Host
	log  *slog.Logger
}

// logger writes to stderr, at the level in $RDPDVC_LOG (debug, info,
// warn, error; warn by default), so that xfreerdp's own output stays
// readable.
func logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(os.Getenv("RDPDVC_LOG"))); err != nil || os.Getenv("RDPDVC_LOG") == "" {
		lvl = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("plugin", "rdpdvc")
}

//export goNewHost
func goNewHost(argc C.int, argv **C.char) C.uintptr_t {
	var args []string
	if argc > 1 && argv != nil {
		for _, a := range unsafe.Slice(argv, int(argc))[1:] {
			args = append(args, C.GoString(a))
		}
	}
	p := &plugin{host: freerdp.NewHost(), log: logger()}
	if err := features.Configure(p.host, plugFeatures(p.log), args); err != nil {
		fmt.Fprintf(os.Stderr, "rdpdvc: %v\n", err)
		return 0
	}
	hi := loadedBy.Load()
	if hi == nil || !hi.known {
		p.log.Warn("could not tell which FreeRDP loaded the plugin (no libfreerdpN found); going on as built", "built", builtMajor)
		p.log.Info("loaded", "built", builtMajor, "args", args, "listeners", p.host.Names())
	} else {
		p.log.Info("loaded", "built", builtMajor, "freerdp", hi.version.String(), "lib", hi.version.Path, "args", args, "listeners", p.host.Names())
	}
	return C.uintptr_t(cgo.NewHandle(p))
}

func pluginOf(h C.uintptr_t) *plugin { return cgo.Handle(h).Value().(*plugin) }

//export goInitialize
func goInitialize(h C.uintptr_t, cp *C.rdpdvc_plugin) C.UINT {
	p := pluginOf(h)
	err := p.host.Attach(func(name string) error {
		cname := C.CString(name)
		defer C.free(unsafe.Pointer(cname))
		if rc := C.rdpdvc_create_listener(cp, cname); rc != 0 {
			return fmt.Errorf("CreateListener: error %d", uint32(rc))
		}
		return nil
	})
	if err != nil {
		p.log.Error("initialize", "err", err)
		return 1359 // ERROR_INTERNAL_ERROR
	}
	return 0
}

//export goTerminated
func goTerminated(h C.uintptr_t) {
	p := pluginOf(h)
	p.host.Terminate()
	cgo.Handle(h).Delete()
}

// native is the IWTSVirtualChannel of one instance.
type native struct{ ch *C.IWTSVirtualChannel }

func (n native) Write(msg []byte) error {
	var p *C.BYTE
	if len(msg) > 0 {
		p = (*C.BYTE)(unsafe.Pointer(&msg[0]))
	}
	if rc := C.rdpdvc_write(n.ch, p, C.ULONG(len(msg))); rc != 0 {
		return fmt.Errorf("IWTSVirtualChannel::Write: error %d", uint32(rc))
	}
	return nil
}

//export goNewChannel
func goNewChannel(h C.uintptr_t, name *C.char, id C.UINT32, c *C.rdpdvc_channel) C.uintptr_t {
	p := pluginOf(h)
	n := C.GoString(name)
	in, err := p.host.NewChannel(n, uint32(id), native{ch: c.channel})
	if err != nil {
		p.log.Warn("channel refused", "channel", n, "id", uint32(id), "err", err)
		return 0
	}
	return C.uintptr_t(cgo.NewHandle(in))
}

//export goData
func goData(h C.uintptr_t, data *C.BYTE, n C.size_t) {
	in := cgo.Handle(h).Value().(*freerdp.Instance)
	if n == 0 {
		in.Data([]byte{})
		return
	}
	in.Data(unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n)))
}

//export goGone
func goGone(h C.uintptr_t) {
	in := cgo.Handle(h).Value().(*freerdp.Instance)
	in.Gone(nil)
	cgo.Handle(h).Delete()
}
