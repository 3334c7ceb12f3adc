package com

import (
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/rdpdvc/rdpdvc/hresult"
)

// The ole32 calls, with their HRESULTs as they are: x/sys/windows's
// CoInitializeEx reports S_FALSE ("already initialized", a success that
// still needs its CoUninitialize) as an error.
var (
	modole32                  = windows.NewLazySystemDLL("ole32.dll")
	procCoInitializeEx        = modole32.NewProc("CoInitializeEx")
	procCoUninitialize        = modole32.NewProc("CoUninitialize")
	procCoRegisterClassObject = modole32.NewProc("CoRegisterClassObject")
	procCoRevokeClassObject   = modole32.NewProc("CoRevokeClassObject")
	procCoCreateInstance      = modole32.NewProc("CoCreateInstance")
)

// CLSCTX and REGCLS values (wtypesbase.h, combaseapi.h).
const (
	clsctxLocalServer = 0x4 // CLSCTX_LOCAL_SERVER
	regclsSingleUse   = 0   // REGCLS_SINGLEUSE
	regclsMultipleUse = 1   // REGCLS_MULTIPLEUSE
)

func coInitializeEx(model uint32) hresult.HRESULT {
	r, _, _ := procCoInitializeEx.Call(0, uintptr(model))
	return hr(r)
}

func coUninitialize() { procCoUninitialize.Call() }

func coRegisterClassObject(clsid *GUID, unk uintptr, ctx, flags uint32) (uint32, hresult.HRESULT) {
	var cookie uint32
	r, _, _ := procCoRegisterClassObject.Call(uintptr(unsafe.Pointer(clsid)), unk, uintptr(ctx), uintptr(flags), uintptr(unsafe.Pointer(&cookie)))
	return cookie, hr(r)
}

func coRevokeClassObject(cookie uint32) hresult.HRESULT {
	r, _, _ := procCoRevokeClassObject.Call(uintptr(cookie))
	return hr(r)
}

// coCreateInstance is CoCreateInstance(clsid, NULL, ctx, iid, &p).
func coCreateInstance(clsid *GUID, ctx uint32, iid *GUID) (uintptr, hresult.HRESULT) {
	var p uintptr
	r, _, _ := procCoCreateInstance.Call(uintptr(unsafe.Pointer(clsid)), 0, uintptr(ctx), uintptr(unsafe.Pointer(iid)), uintptr(unsafe.Pointer(&p)))
	return p, hr(r)
}
