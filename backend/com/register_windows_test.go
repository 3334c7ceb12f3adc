package com

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// needWine keeps tests that write the registry for real off developers'
// Windows machines: they run in test-windows.sh's throw-away prefix.
func needWine(t *testing.T) {
	t.Helper()
	if os.Getenv("RDPDVC_WINE") != "1" {
		t.Skip("writes HKCU and HKLM: runs only under scripts/wine/test-windows.sh")
	}
}

// A CLSID and name of the tests' own, so a run never touches the real
// Simple registration.
func testRegistration() Registration {
	return Registration{
		CLSID: "{0F5E7A2C-9C1B-4E55-8E0A-7D3C1B2A9F01}",
		Name:  fmt.Sprintf("rdpdvc-test-%d", os.Getpid()),
		Exe:   `C:\Program Files\rdpdvc\rdp-simple-plugin-client.exe`,
	}
}

func exists(root registry.Key, path string) bool {
	k, err := registry.OpenKey(root, path, registry.QUERY_VALUE)
	if err != nil {
		return false
	}
	k.Close()
	return true
}

// checkRegistered checks the two values and that nothing else was written.
func checkRegistered(t *testing.T, root registry.Key, hive string, r Registration) {
	t.Helper()
	k, err := registry.OpenKey(root, r.LocalServerKey(), registry.QUERY_VALUE)
	if err != nil {
		t.Fatalf("%s\\%s: %v", hive, r.LocalServerKey(), err)
	}
	v, _, err := k.GetStringValue("")
	info, _ := k.Stat()
	k.Close()
	if err != nil || v != `"C:\Program Files\rdpdvc\rdp-simple-plugin-client.exe"` || info.ValueCount != 1 || info.SubKeyCount != 0 {
		t.Errorf("%s LocalServer32 = %q (%v), %d values, %d subkeys", hive, v, err, info.ValueCount, info.SubKeyCount)
	}
	k, err = registry.OpenKey(root, r.ClassKey(), registry.QUERY_VALUE)
	if err != nil {
		t.Fatal(err)
	}
	info, _ = k.Stat()
	k.Close()
	if info.ValueCount != 0 || info.SubKeyCount != 1 {
		t.Errorf("%s CLSID key has %d values and %d subkeys, want only LocalServer32", hive, info.ValueCount, info.SubKeyCount)
	}
	k, err = registry.OpenKey(root, r.AddInKey(), registry.QUERY_VALUE)
	if err != nil {
		t.Fatalf("%s\\%s: %v", hive, r.AddInKey(), err)
	}
	v, vt, err := k.GetStringValue("Name")
	info, _ = k.Stat()
	k.Close()
	if err != nil || vt != registry.SZ || v != r.CLSID || info.ValueCount != 1 || info.SubKeyCount != 0 {
		t.Errorf("%s AddIns Name = %q type %d (%v), %d values", hive, v, vt, err, info.ValueCount)
	}
}

func checkGone(t *testing.T, root registry.Key, hive string, r Registration) {
	t.Helper()
	for _, p := range []string{r.LocalServerKey(), r.ClassKey(), r.AddInKey()} {
		if exists(root, p) {
			t.Errorf("%s\\%s still there", hive, p)
		}
	}
}

func TestRegisterUnregister(t *testing.T) {
	needWine(t)
	r := testRegistration()
	if err := Register(r, PerUser); err != nil {
		t.Fatalf("Register per user: %v", err)
	}
	checkRegistered(t, registry.CURRENT_USER, "HKCU", r)
	if exists(registry.LOCAL_MACHINE, r.AddInKey()) {
		t.Fatal("per-user registration wrote HKLM")
	}
	if err := Register(r, Machine); err != nil {
		t.Fatalf("Register /machine: %v", err)
	}
	checkRegistered(t, registry.LOCAL_MACHINE, "HKLM", r)
	if err := Register(r, PerUser); err != nil {
		t.Fatalf("registering again: %v", err)
	}
	checkRegistered(t, registry.CURRENT_USER, "HKCU", r)

	// A neighbour plugin must survive.
	other := r
	other.Name += "-other"
	other.CLSID = "{0F5E7A2C-9C1B-4E55-8E0A-7D3C1B2A9F02}"
	if err := Register(other, PerUser); err != nil {
		t.Fatal(err)
	}
	defer Unregister(other)

	if err := Unregister(r); err != nil {
		t.Fatalf("Unregister: %v", err)
	}
	checkGone(t, registry.CURRENT_USER, "HKCU", r)
	checkGone(t, registry.LOCAL_MACHINE, "HKLM", r)
	checkRegistered(t, registry.CURRENT_USER, "HKCU", other)
	if !exists(registry.CURRENT_USER, AddInsParent) {
		t.Error("the AddIns key itself was removed")
	}
	if err := Unregister(r); err != nil {
		t.Fatalf("Unregister again (must be idempotent): %v", err)
	}
}

// A CLSID key that also holds something not ours is kept; only
// LocalServer32 goes.
func TestUnregisterKeepsForeignContent(t *testing.T) {
	needWine(t)
	r := testRegistration()
	if err := Register(r, PerUser); err != nil {
		t.Fatal(err)
	}
	k, _, err := registry.CreateKey(registry.CURRENT_USER, r.ClassKey()+`\ProgID`, registry.SET_VALUE)
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	defer registry.DeleteKey(registry.CURRENT_USER, r.ClassKey())
	defer registry.DeleteKey(registry.CURRENT_USER, r.ClassKey()+`\ProgID`)
	if err := Unregister(r); err != nil {
		t.Fatal(err)
	}
	if exists(registry.CURRENT_USER, r.LocalServerKey()) || !exists(registry.CURRENT_USER, r.ClassKey()+`\ProgID`) {
		t.Error("Unregister removed the wrong things")
	}
}

func TestAccessDeniedOnHKLMSaysAdmin(t *testing.T) {
	err := keyError("creating", "HKLM", `Software\Classes\CLSID\{x}\LocalServer32`, windows.ERROR_ACCESS_DENIED)
	if !errors.Is(err, ErrNeedAdmin) || !strings.Contains(err.Error(), "Run as administrator") || !errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		t.Errorf("HKLM access denied: %v", err)
	}
	if err := keyError("creating", "HKCU", "x", windows.ERROR_ACCESS_DENIED); errors.Is(err, ErrNeedAdmin) {
		t.Errorf("HKCU access denied blamed on admin rights: %v", err)
	}
}

func TestRegisterValidates(t *testing.T) {
	if err := Register(Registration{CLSID: "{x}", Name: "n", Exe: "e"}, PerUser); err == nil {
		t.Error("bad CLSID accepted")
	}
}
