package com

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"unsafe"

	"github.com/rdpdvc/rdpdvc/hresult"
)

// InProc serves a Plugin to a host in this process: the in-process plugin
// DLL (cmd/rdpdvc-plugin) that mstsc, or any other DVC host, loads and
// asks for IWTSPlugin through VirtualChannelGetInstance or
// DllGetClassObject. The objects are the LocalServer's (same vtables,
// same reference rules); what differs is who calls them:
//
//   - No COM runtime sits in between: the pointers the host passes are its
//     own objects, not proxies, and Microsoft requires a DVC plugin (and so
//     its host) to be free-threaded. They are called directly on whatever
//     thread the call is made from, host thread or Go thread, without
//     joining the MTA: a host thread may be in an STA (mstsc's UI thread
//     is), where CoInitializeEx(COINIT_MULTITHREADED) would refuse.
//   - Every interface pointer handed to the host is LocalAlloc'd memory
//     (see objectMem), never Go memory, let alone a goroutine stack.
//   - A panic in a channel handler is recovered: the call returns E_FAIL,
//     the channel is closed (IWTSVirtualChannel::Close) and the handler's
//     Closed gets the panic as its error. The host is not harmed.
type InProc struct {
	s *Server
}

// NewInProc makes the in-process server for p.
func NewInProc(p *Plugin) *InProc {
	return &InProc{s: &Server{plugin: p, inProc: true, usedc: make(chan struct{}), idle: make(chan struct{})}}
}

// Live is the number of this server's objects the host still holds
// (plugins, listener and channel callbacks, class factories' locks).
func (ip *InProc) Live() int {
	ip.s.mu.Lock()
	defer ip.s.mu.Unlock()
	return ip.s.live
}

// Instances is how many IWTSPlugin objects VirtualChannelGetInstance
// reports and returns per call: one, whose Initialize creates every
// registered listener.
const Instances = 1

// GetInstance is VirtualChannelGetInstance(REFIID refiid, ULONG *pNumObjs,
// VOID **ppObjArray): refiid must be IID_IWTSPlugin (else E_NOINTERFACE);
// with ppObjArray NULL, *pNumObjs receives the number of plugins on offer;
// otherwise up to *pNumObjs new plugins, each with one reference for the
// caller, are stored in ppObjArray and *pNumObjs is set to how many.
func (ip *InProc) GetInstance(riid, pNumObjs, ppObjArray uintptr) hresult.HRESULT {
	if riid == 0 || pNumObjs == 0 {
		return hresult.E_POINTER
	}
	if *(*GUID)(ptr(riid)) != IID_IWTSPlugin {
		return hresult.E_NOINTERFACE
	}
	n := (*uint32)(ptr(pNumObjs))
	if ppObjArray == 0 {
		*n = Instances
		return hresult.S_OK
	}
	k := min(*n, Instances)
	for i := uint32(0); i < k; i++ {
		pi := ip.s.newPlugin() // its creation reference is the caller's
		*(*uintptr)(ptr(ppObjArray + uintptr(i)*unsafe.Sizeof(uintptr(0)))) = pi.obj.mem
	}
	*n = k
	return hresult.S_OK
}

// ClassENotAvailable is CLASS_E_CLASSNOTAVAILABLE: DllGetClassObject for a
// class the DLL does not serve.
const ClassENotAvailable hresult.HRESULT = 0x80040111

// GetClassObject is DllGetClassObject(REFCLSID rclsid, REFIID riid, LPVOID
// *ppv) for the class clsid: the class factory, whose CreateInstance makes
// a plugin as GetInstance does.
func (ip *InProc) GetClassObject(clsid GUID, rclsid, riid, ppv uintptr) hresult.HRESULT {
	if ppv == 0 {
		return hresult.E_POINTER
	}
	*(*uintptr)(ptr(ppv)) = 0
	if rclsid == 0 || riid == 0 {
		return hresult.E_POINTER
	}
	if *(*GUID)(ptr(rclsid)) != clsid {
		return ClassENotAvailable
	}
	f := newObject(classFactoryVtbl, &classFactory{s: ip.s}, nil, IID_IClassFactory)
	r := hr(queryInterface(f.mem, riid, ppv))
	f.release() // the creation reference; the caller's, if any, remains
	return r
}

// callOut runs f, a call on the host's objects: directly in process
// (InProc), in the MTA for a LocalServer, whose pointers are proxies.
func callOut(direct bool, f func() hresult.HRESULT) hresult.HRESULT {
	if direct {
		return f()
	}
	return inMTA(f)
}

// guarded runs f, code of a channel protocol called from a COM method,
// and turns a panic in it into an error, logged with its stack: a panic
// unwinding out of a callback would take the host process down with it.
func guarded(log *slog.Logger, what string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("com: the channel's %s panicked: %v", what, r)
			log.Error("handler panicked; closing the channel", "in", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
	return nil
}
