package device

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	file := filepath.Join(tempDir(t), "f.bin")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := "{2B4A9C46-658D-4AF2-A91D-1E691861706C}"
	check := func(t *testing.T, d Device, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		f := d.(*File)
		desc := f.Describe()
		if !f.ReadOnly() || desc.Text != "Disk, 1 byte" || strings.Join(desc.HardwareIDs, "|") != `A\B|C` ||
			strings.Join(desc.CompatibilityIDs, "|") != "D" || len(desc.InterfaceGUIDs) != 1 || desc.InterfaceGUIDs[0].String() != g ||
			desc.ContainerID == nil || desc.Capabilities == nil || *desc.Capabilities != 4 || !desc.Optional {
			t.Fatalf("parsed %+v (read-only %v)", desc, f.ReadOnly())
		}
	}
	t.Run("command line", func(t *testing.T) {
		d, err := ParseSpec("file:" + file + `,ro,desc=Disk\, 1 byte,hwid=A\B,hwid=C,compat=D,iface=` + g + ",container=" + g + ",caps=0x4,optional")
		check(t, d, err)
	})
	t.Run("plugin", func(t *testing.T) {
		// The same device with no comma anywhere, as FreeRDP's /dvc needs.
		spec := "file:" + file + `:ro:desc=Disk, 1 byte:hwid=A\B:hwid=C:compat=D:iface=` + g + ":container=" + g + ":caps=0x4:optional"
		d, err := ParseSpecSep(spec, PluginSpecSep)
		check(t, d, err)
	})

	m, err := ParseSpec("mem:64KiB")
	if err != nil || m.(*Memory).Size() != 64<<10 || m.Describe().HardwareIDs[0] != MemoryHardwareID ||
		m.Describe().CompatibilityIDs[0] != DefaultCompatibilityID {
		t.Fatalf("mem: %v %+v", err, m)
	}
	if m, err := ParseSpecSep(`mem:1MiB:desc=a\:b`, PluginSpecSep); err != nil || m.(*Memory).Size() != 1<<20 || m.Describe().Text != "a:b" {
		t.Fatalf("mem with an escaped colon: %v %+v", err, m)
	}
	if f, err := ParseSpec("file:" + file); err != nil || f.(*File).ReadOnly() || f.Describe().HardwareIDs[0] != FileHardwareID ||
		f.Describe().Text != "rdpdvc file f.bin" {
		t.Fatalf("file defaults: %v %+v", err, f)
	}
	if e, err := ParseSpec("emu:demo,size=0"); err != nil || e.Describe().Text != "demo" || e.Describe().HardwareIDs[0] != EmulatedHardwareID {
		t.Fatalf("emu: %v", err)
	}
	for _, bad := range []string{
		"mem", "mem:", "mem:12Q", "mem:-1", "mem:5GiB", "disk:/x", "mem:1,ro", "mem:1,bogus=1",
		"file:" + file + ",caps=x", "file:" + file + ",iface=nope", "emu:x,size=1T", "file:/no/such/dir/f,ro",
		"mem:1,hwid=", "file:" + file + ",ro=1", "file:" + file + ",optional=yes", "file:" + file + ",caps=0x100000000",
	} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// With the plugin's separator a comma is no separator: "mem:1,ro" is
	// a bad size, not an option ro.
	if _, err := ParseSpecSep("mem:1,ro", PluginSpecSep); err == nil {
		t.Error("mem:1,ro accepted with ':' options")
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{"4096": 4096, "1K": 1024, "2k": 2048, "3MiB": 3 << 20, "1G": 1 << 30, "4GiB": 4 << 30, "0": 0} {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "K", "1T", "-1", "4097M", "0x10", "1.5K"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) accepted", s)
		}
	}
}

func TestSplitEscaped(t *testing.T) {
	for _, c := range []struct {
		in   string
		sep  byte
		want string
	}{
		{`a,b\,c,,d`, ',', `a|b,c||d`},
		{`a\b:c\:d`, ':', `a\b|c:d`},
		{`trailing\`, ':', `trailing\`},
		{``, ',', ``},
	} {
		if got := strings.Join(splitEscaped(c.in, c.sep), "|"); got != c.want {
			t.Errorf("splitEscaped(%q, %q) = %q, want %q", c.in, c.sep, got, c.want)
		}
	}
}
