package com

import (
	"errors"
	"fmt"
	"strings"
)

// Registration is what makes mstsc load a dynamic virtual channel plugin
// served by a COM LocalServer (the "DVC Plug-in Registration" rules the
// Simple sample follows):
//
//	<hive>\Software\Classes\CLSID\{CLSID}\LocalServer32      (default) = the exe path
//	<hive>\Software\Microsoft\Terminal Server Client\Default\AddIns\<Name>   Name = {CLSID}
//
// with <hive> HKEY_CURRENT_USER for a per-user registration and
// HKEY_LOCAL_MACHINE for a machine-wide one. Nothing else is written.
type Registration struct {
	// CLSID in registry form, braces included:
	// "{D9B80669-C06A-4BD1-9CB1-3B7168C9E3A3}".
	CLSID string
	// Name is the AddIns subkey, e.g. "SimpleRdpPlugin".
	Name string
	// Exe is the absolute path of the LocalServer executable; COM starts
	// it with " -Embedding" appended. Only Register needs it.
	Exe string
}

// ClassKey is the class's key under the hive root.
func (r Registration) ClassKey() string { return `Software\Classes\CLSID\` + r.CLSID }

// LocalServerKey is the key whose default value is the server command.
func (r Registration) LocalServerKey() string { return r.ClassKey() + `\LocalServer32` }

// AddInsParent is the key mstsc enumerates for plugins.
const AddInsParent = `Software\Microsoft\Terminal Server Client\Default\AddIns`

// AddInKey is the plugin's own key under AddInsParent.
func (r Registration) AddInKey() string { return AddInsParent + `\` + r.Name }

// LocalServerCommand is the LocalServer32 value for exe: the path, quoted
// when it has a space. Unquoted, COM would try "C:\Program" first
// (CreateProcess's rule for unquoted paths).
func LocalServerCommand(exe string) string {
	if strings.ContainsAny(exe, " \t") && !strings.HasPrefix(exe, `"`) {
		return `"` + exe + `"`
	}
	return exe
}

// ErrNeedAdmin is wrapped by Register and Unregister errors when a
// machine-wide (HKEY_LOCAL_MACHINE) key could not be written or removed
// for lack of rights.
var ErrNeedAdmin = errors.New("machine-wide registration needs administrator rights: run from an elevated prompt (Run as administrator), or register per user without /machine")

// Validate checks the fields before anything is written.
func (r Registration) Validate(needExe bool) error {
	if len(r.CLSID) != 38 || r.CLSID[0] != '{' || r.CLSID[37] != '}' {
		return fmt.Errorf("com: registration: CLSID %q is not of the form {XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}", r.CLSID)
	}
	if r.Name == "" || strings.ContainsAny(r.Name, `\`) {
		return fmt.Errorf("com: registration: AddIns name %q must be non-empty and contain no backslash", r.Name)
	}
	if needExe && r.Exe == "" {
		return errors.New("com: registration: no executable path")
	}
	return nil
}
