package com

import (
	"testing"

	"golang.org/x/sys/windows/registry"
)

// The DllPath form per user and machine-wide; both unregistering calls
// remove it from both hives, and a configuration value a user added keeps
// the key (but not the Name value).
func TestRegisterDLLUnregister(t *testing.T) {
	needWine(t)
	r := DLLRegistration{Name: testRegistration().Name + "-dll", DLL: `C:\Program Files\rdpdvc\rdpdvc-plugin.dll`}
	check := func(root registry.Key, hive string) {
		t.Helper()
		k, err := registry.OpenKey(root, r.AddInKey(), registry.QUERY_VALUE)
		if err != nil {
			t.Fatalf("%s\\%s: %v", hive, r.AddInKey(), err)
		}
		v, vt, err := k.GetStringValue("Name")
		info, _ := k.Stat()
		k.Close()
		if err != nil || vt != registry.SZ || v != r.DLL || info.ValueCount != 1 {
			t.Errorf("%s Name = %q type %d (%v), %d values; want only Name = %q", hive, v, vt, err, info.ValueCount, r.DLL)
		}
	}
	for _, unregister := range []func() error{
		func() error { return UnregisterAddIn(r.Name) },
		func() error { return Unregister(Registration{CLSID: testRegistration().CLSID, Name: r.Name}) },
	} {
		if err := RegisterDLL(r, PerUser); err != nil {
			t.Fatal(err)
		}
		check(registry.CURRENT_USER, "HKCU")
		if exists(registry.LOCAL_MACHINE, r.AddInKey()) {
			t.Fatal("a per-user registration wrote HKLM")
		}
		if err := RegisterDLL(r, Machine); err != nil {
			t.Fatal(err)
		}
		check(registry.LOCAL_MACHINE, "HKLM")
		for i := 0; i < 2; i++ {
			if err := unregister(); err != nil {
				t.Fatalf("unregister #%d: %v", i+1, err)
			}
		}
		for _, root := range []registry.Key{registry.CURRENT_USER, registry.LOCAL_MACHINE} {
			if exists(root, r.AddInKey()) {
				t.Error("the AddIns key is left")
			}
		}
	}

	// The {CLSID} form is replaced by the DllPath form under one Name.
	lr := testRegistration()
	lr.Name = r.Name
	if err := Register(lr, PerUser); err != nil {
		t.Fatal(err)
	}
	if err := RegisterDLL(r, PerUser); err != nil {
		t.Fatal(err)
	}
	check(registry.CURRENT_USER, "HKCU")

	// A user's configuration value keeps the key.
	k, err := registry.OpenKey(registry.CURRENT_USER, r.AddInKey(), registry.SET_VALUE)
	if err != nil {
		t.Fatal(err)
	}
	k.SetStringValue("Channels", "simple")
	k.Close()
	if err := Unregister(lr); err != nil {
		t.Fatal(err)
	}
	k, err = registry.OpenKey(registry.CURRENT_USER, r.AddInKey(), registry.QUERY_VALUE)
	if err != nil {
		t.Fatal("the key with a configuration value was removed")
	}
	_, _, nerr := k.GetStringValue("Name")
	k.Close()
	if nerr == nil {
		t.Error("Name survived Unregister")
	}
	if exists(registry.CURRENT_USER, lr.LocalServerKey()) {
		t.Error("LocalServer32 survived Unregister")
	}
	registry.DeleteKey(registry.CURRENT_USER, r.AddInKey())
}

func TestRegisterDLLValidates(t *testing.T) {
	if err := RegisterDLL(DLLRegistration{Name: "n", DLL: "relative.dll"}, PerUser); err == nil {
		t.Error("a relative path accepted")
	}
	if err := UnregisterAddIn(""); err == nil {
		t.Error("an empty name accepted")
	}
}
