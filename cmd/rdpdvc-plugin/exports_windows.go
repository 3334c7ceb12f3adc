package main

// The DLL's exports. Each is a thin wrapper: the work, and every COM
// object the host receives, is backend/com's (LocalAlloc'd objects, so no
// pointer the host holds is Go memory). A panic never unwinds into the
// host: it becomes E_UNEXPECTED.

import "C"

import (
	"fmt"
	"runtime/debug"

	"github.com/rdpdvc/rdpdvc/hresult"
)

func safe(what string, r *int32) {
	if p := recover(); p != nil {
		*r = hr32(hresult.E_UNEXPECTED)
		if log := plugin.logged.Load(); log != nil {
			log.Error("export panicked", "export", what, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}
}

func hr32(h hresult.HRESULT) int32 { return int32(h) }

// VirtualChannelGetInstance(REFIID refiid, ULONG *pNumObjs, VOID **ppObjArray).
//
//export VirtualChannelGetInstance
func VirtualChannelGetInstance(riid, pNumObjs, ppObjArray uintptr) (r int32) {
	defer safe("VirtualChannelGetInstance", &r)
	return hr32(getInstance(riid, pNumObjs, ppObjArray))
}

// DllGetClassObject(REFCLSID rclsid, REFIID riid, LPVOID *ppv).
//
//export DllGetClassObject
func DllGetClassObject(rclsid, riid, ppv uintptr) (r int32) {
	defer safe("DllGetClassObject", &r)
	return hr32(getClassObject(rclsid, riid, ppv))
}

// DllCanUnloadNow is always S_FALSE: the DLL is pinned and its Go
// runtime cannot be unloaded.
//
//export DllCanUnloadNow
func DllCanUnloadNow() int32 { return hr32(sFalse) }

// DllRegisterServer writes the DllPath registration for this user
// (regsvr32 rdpdvc-plugin.dll).
//
//export DllRegisterServer
func DllRegisterServer() (r int32) {
	defer safe("DllRegisterServer", &r)
	return hr32(register(false))
}

// DllUnregisterServer removes the AddIns entry from both hives
// (regsvr32 /u rdpdvc-plugin.dll).
//
//export DllUnregisterServer
func DllUnregisterServer() (r int32) {
	defer safe("DllUnregisterServer", &r)
	return hr32(unregister())
}

// DllInstall(BOOL bInstall, PCWSTR pszCmdLine): regsvr32 /n /i:machine
// registers for all users.
//
//export DllInstall
func DllInstall(install_ int32, cmdLine uintptr) (r int32) {
	defer safe("DllInstall", &r)
	return hr32(install(install_ != 0, cmdLine))
}
