//go:build freerdp

// Command plugin is librdpdvc-client.so, rdpdvc's FreeRDP 2 client plugin.
// Build it with cgo against freerdp2-dev and install it in FreeRDP's
// addin folder:
//
//	go build -tags freerdp -buildmode=c-shared -o librdpdvc-client.so ./freerdp/plugin
//	install -m 644 librdpdvc-client.so /usr/lib/$(gcc -print-multiarch)/freerdp2/
//	xfreerdp /v:host /u:user /dvc:rdpdvc,simple
//
// Every client-side channel of rdpdvc lives in this one library (one Go
// runtime per process); the arguments after "rdpdvc" choose the features
// (see features.go). The state machine is in package freerdp; this
// package only converts FreeRDP's C callbacks (glue.c) into calls on it.
package main

/*
#cgo pkg-config: freerdp2 winpr2
#include <stdlib.h>
#include "glue.h"
*/
import "C"

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/cgo"
	"unsafe"

	"github.com/rdpdvc/rdpdvc/freerdp"
)

func main() {}

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
	if err := freerdp.Configure(p.host, features(p.log), args); err != nil {
		fmt.Fprintf(os.Stderr, "rdpdvc: %v\n", err)
		return 0
	}
	p.log.Info("loaded", "args", args, "listeners", p.host.Names())
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
