package device

import (
	"os"
	"testing"
)

// tempDir is t.TempDir, except that a failure to remove the directory
// afterwards is ignored: Wine 8 fails the unlinkat that Go's RemoveAll
// uses on Windows, which would fail every test that made a file.
func tempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pnp-device-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
