package wine

import (
	"crypto/rand"
	"os"
	"runtime"
	"testing"
)

// TestHarness proves the harness itself: a windows/amd64 test binary starts
// under Wine (so ProcessPrng was found), gets random bytes and sees the
// environment test-windows.sh sets.
func TestHarness(t *testing.T) {
	if runtime.GOOS != "windows" {
		t.Skip("runs only as a windows binary (under Wine via test-windows.sh)")
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("RDPDVC_WINE") != "1" {
		t.Log("not started by test-windows.sh")
	}
}
