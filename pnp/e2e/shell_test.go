package e2e

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestShellTwoProcesses builds rdpdvc and runs testdata/rw-ro.sh: the
// pnp-client and pnp-server programs as two processes, driven from a
// shell.
func TestShellTwoProcesses(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs a POSIX shell")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	dir := t.TempDir()
	bin := filepath.Join(dir, "rdpdvc")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/rdpdvc/rdpdvc/cmd/rdpdvc").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	script, err := filepath.Abs("testdata/rw-ro.sh")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sh, script, bin, dir).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
}
