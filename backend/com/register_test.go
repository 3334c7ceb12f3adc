package com

import "testing"

func TestRegistrationKeys(t *testing.T) {
	r := Registration{CLSID: "{D9B80669-C06A-4BD1-9CB1-3B7168C9E3A3}", Name: "SimpleRdpPlugin"}
	if got, want := r.LocalServerKey(), `Software\Classes\CLSID\{D9B80669-C06A-4BD1-9CB1-3B7168C9E3A3}\LocalServer32`; got != want {
		t.Errorf("LocalServerKey = %s, want %s", got, want)
	}
	if got, want := r.AddInKey(), `Software\Microsoft\Terminal Server Client\Default\AddIns\SimpleRdpPlugin`; got != want {
		t.Errorf("AddInKey = %s, want %s", got, want)
	}
	if err := r.Validate(false); err != nil {
		t.Error(err)
	}
	if err := r.Validate(true); err == nil {
		t.Error("no exe path accepted")
	}
	for _, bad := range []Registration{
		{CLSID: "D9B80669-C06A-4BD1-9CB1-3B7168C9E3A3", Name: "x"},
		{CLSID: r.CLSID, Name: ""},
		{CLSID: r.CLSID, Name: `a\b`},
	} {
		if bad.Validate(false) == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestLocalServerCommand(t *testing.T) {
	for in, want := range map[string]string{
		`C:\rdpdvc\rdp-simple-plugin-client.exe`:                 `C:\rdpdvc\rdp-simple-plugin-client.exe`,
		`C:\Program Files\rdpdvc\rdp-simple-plugin-client.exe`:   `"C:\Program Files\rdpdvc\rdp-simple-plugin-client.exe"`,
		`"C:\Program Files\rdpdvc\rdp-simple-plugin-client.exe"`: `"C:\Program Files\rdpdvc\rdp-simple-plugin-client.exe"`,
	} {
		if got := LocalServerCommand(in); got != want {
			t.Errorf("LocalServerCommand(%s) = %s, want %s", in, got, want)
		}
	}
}
