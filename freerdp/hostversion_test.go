package freerdp

import (
	"strings"
	"testing"
)

func TestMajorFromLibName(t *testing.T) {
	for _, c := range []struct {
		name  string
		major int
		ok    bool
	}{
		{"/usr/lib/x86_64-linux-gnu/libfreerdp2.so.2", 2, true},
		{"/usr/lib/x86_64-linux-gnu/libfreerdp3.so.3", 3, true},
		{"libfreerdp3.so", 3, true},
		{"/opt/freerdp/lib/libfreerdp3.so.3.15.0", 3, true},
		{"libfreerdp10.so.10", 10, true},
		{"/usr/lib/x86_64-linux-gnu/libfreerdp-client3.so.3", 0, false},
		{"/usr/lib/x86_64-linux-gnu/libfreerdp-server-proxy3.so.3", 0, false},
		{"/usr/lib/x86_64-linux-gnu/libwinpr3.so.3", 0, false},
		{"/usr/lib/x86_64-linux-gnu/freerdp3/librdpdvc-client.so", 0, false},
		{"libfreerdp.so", 0, false},
		{"libfreerdp3.sox", 0, false},
		{"libfreerdp03.so", 0, false},
		{"", 0, false},
	} {
		major, ok := MajorFromLibName(c.name)
		if major != c.major || ok != c.ok {
			t.Errorf("MajorFromLibName(%q) = %d, %v; want %d, %v", c.name, major, ok, c.major, c.ok)
		}
	}
}

func TestCheckHost(t *testing.T) {
	v2 := HostVersion{Major: 2, Minor: 11, Revision: 7, Path: "/usr/lib/x86_64-linux-gnu/libfreerdp2.so.2"}
	v3 := HostVersion{Major: 3, Minor: 15, Revision: 0, Path: "/usr/lib/x86_64-linux-gnu/libfreerdp3.so.3"}
	g2, g3 := v2, v3
	g2.Global, g3.Global = true, true
	v3name := HostVersion{Major: 3, Minor: -1, Revision: -1, Path: "/usr/lib/x86_64-linux-gnu/libfreerdp3.so.3"}
	v4 := HostVersion{Major: 4, Minor: 0, Revision: 1, Global: true}

	for _, c := range []struct {
		name  string
		built int
		found []HostVersion
		host  HostVersion
		ok    bool
		err   string // substring; "" for no error
	}{
		{"2 in 2", 2, []HostVersion{g2, v2}, g2, true, ""},
		{"3 in 3", 3, []HostVersion{g3, v3}, g3, true, ""},
		{"2 in 3", 2, []HostVersion{g3, v3},
			g3, true, "this librdpdvc-client.so was built for FreeRDP 2 but is loaded by FreeRDP 3.15.0 (/usr/lib/x86_64-linux-gnu/libfreerdp3.so.3); rebuild with -tags freerdp3"},
		{"3 in 2", 3, []HostVersion{g2},
			g2, true, "built for FreeRDP 3 but is loaded by FreeRDP 2.11.7 (/usr/lib/x86_64-linux-gnu/libfreerdp2.so.2); rebuild with -tags freerdp"},
		// The global library wins over a mapped one of the built major:
		// a plugin that dragged in its own libfreerdp2 is still in a
		// FreeRDP 3 process.
		{"2 in 3 with 2 mapped", 2, []HostVersion{v2, g3}, g3, true, "rebuild with -tags freerdp3"},
		// No global lookup (the host opened libfreerdp RTLD_LOCAL): the
		// mapped libraries decide.
		{"mapped only, match", 3, []HostVersion{v3}, v3, true, ""},
		{"mapped only, both", 3, []HostVersion{v2, v3}, v3, true, ""},
		{"mapped only, mismatch", 2, []HostVersion{v3name}, v3name, true, "loaded by FreeRDP 3 (/usr/lib/x86_64-linux-gnu/libfreerdp3.so.3); rebuild with -tags freerdp3"},
		{"unsupported major", 3, []HostVersion{v4}, v4, true, "loaded by FreeRDP 4.0.1, which rdpdvc does not support"},
		{"nothing found", 3, nil, HostVersion{}, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			host, ok, err := CheckHost(c.built, c.found)
			if host != c.host || ok != c.ok {
				t.Errorf("CheckHost = %+v, %v; want %+v, %v", host, ok, c.host, c.ok)
			}
			switch {
			case c.err == "" && err != nil:
				t.Errorf("error %v; want none", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("error %v; want one containing %q", err, c.err)
			}
		})
	}
}

func TestBuildTag(t *testing.T) {
	if BuildTag(2) != "freerdp" || BuildTag(3) != "freerdp3" || BuildTag(4) != "" {
		t.Errorf("BuildTag: 2=%q 3=%q 4=%q", BuildTag(2), BuildTag(3), BuildTag(4))
	}
}
