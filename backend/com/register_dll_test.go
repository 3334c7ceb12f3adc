package com

import "testing"

func TestDLLRegistrationValidate(t *testing.T) {
	for _, c := range []struct {
		r  DLLRegistration
		ok bool
	}{
		{DLLRegistration{"SimpleRdpPlugin", `C:\Program Files\rdpdvc\rdpdvc-plugin.dll`}, true},
		{DLLRegistration{"SimpleRdpPlugin", `c:/x/Plugin.DLL`}, true},
		{DLLRegistration{"SimpleRdpPlugin", `\\server\share\rdpdvc-plugin.dll`}, true},
		{DLLRegistration{"SimpleRdpPlugin", `rdpdvc-plugin.dll`}, false},      // relative: LoadLibrary would search
		{DLLRegistration{"SimpleRdpPlugin", `C:\x\rdpdvc-plugin.exe`}, false}, // not a DLL
		{DLLRegistration{"SimpleRdpPlugin", `C:\x.dll\plugin`}, false},
		{DLLRegistration{"SimpleRdpPlugin", ``}, false},
		{DLLRegistration{"", `C:\x.dll`}, false},
		{DLLRegistration{`a\b`, `C:\x.dll`}, false},
	} {
		if err := c.r.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%v", c.r, err, c.ok)
		}
	}
	r := DLLRegistration{Name: "SimpleRdpPlugin"}
	if k := r.AddInKey(); k != `Software\Microsoft\Terminal Server Client\Default\AddIns\SimpleRdpPlugin` {
		t.Errorf("AddInKey = %q", k)
	}
}
