//go:build (freerdp && !freerdp3) || (freerdp3 && !freerdp)

package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/freerdp"
)

// TestSharedObject builds the plugin as xfreerdp loads it and checks what
// the wrong-major refusal depends on: the library must not need
// libfreerdp or libwinpr (else FreeRDP of the other major fails to load
// it, or loads a second FreeRDP into the process, before DVCPluginEntry
// can say why), and must export DVCPluginEntry.
func TestSharedObject(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	so := filepath.Join(t.TempDir(), "librdpdvc-client.so")
	cmd := exec.Command(gobin, "build", "-tags", freerdp.BuildTag(builtMajor), "-buildmode=c-shared", "-o", so, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	f, err := elf.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range libs {
		if strings.HasPrefix(l, "libfreerdp") || strings.HasPrefix(l, "libwinpr") {
			t.Errorf("the plugin needs %s (all it needs: %v)", l, libs)
		}
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	exported := false
	for _, s := range syms {
		if s.Name == "DVCPluginEntry" && s.Section != elf.SHN_UNDEF && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			exported = true
		}
	}
	if !exported {
		t.Error("DVCPluginEntry is not exported")
	}
}
