package com

import (
	"fmt"
	"strings"
)

// DLLRegistration is the DllPath form of a plugin's registration, for an
// in-process plugin DLL that exports VirtualChannelGetInstance ("DVC
// plug-in registration" lists it beside the {CLSID} form Registration
// writes):
//
//	<hive>\Software\Microsoft\Terminal Server Client\Default\AddIns\<Name>   Name = <full path of the DLL>
//
// mstsc then loads the DLL itself (LoadLibrary) and asks it for IWTSPlugin
// objects; no COM class is registered. A hive holds one Name value per
// AddIns key, so registering one form under a Name replaces the other.
type DLLRegistration struct {
	// Name is the AddIns subkey, e.g. "SimpleRdpPlugin".
	Name string
	// DLL is the absolute path of the plugin DLL, written as it is (not
	// quoted: the value is a path for LoadLibrary, not a command line).
	DLL string
}

// AddInKey is the plugin's own key under AddInsParent.
func (r DLLRegistration) AddInKey() string { return AddInsParent + `\` + r.Name }

// Validate checks the fields before anything is written.
func (r DLLRegistration) Validate() error {
	if r.Name == "" || strings.ContainsAny(r.Name, `\`) {
		return fmt.Errorf("com: registration: AddIns name %q must be non-empty and contain no backslash", r.Name)
	}
	if !isAbsWindowsPath(r.DLL) || !strings.EqualFold(pathExt(r.DLL), ".dll") {
		return fmt.Errorf("com: registration: %q is not an absolute path to a .dll (C:\\... or \\\\server\\share\\...)", r.DLL)
	}
	return nil
}

// isAbsWindowsPath reports whether p is a drive path (C:\...) or a UNC
// path (\\server\share\...), whatever OS this runs on.
func isAbsWindowsPath(p string) bool {
	if len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/') {
		c := p[0] | 0x20
		return 'a' <= c && c <= 'z'
	}
	return strings.HasPrefix(p, `\\`) && len(p) > 2
}

func pathExt(p string) string {
	i := strings.LastIndexAny(p, `.\/`)
	if i < 0 || p[i] != '.' {
		return ""
	}
	return p[i:]
}
