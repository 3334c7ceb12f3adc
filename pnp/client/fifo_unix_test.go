//go:build unix

package client

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// TestCreateFileOnFIFOWithoutWriter: a CreateFile on a FIFO nobody
// writes to is answered, instead of holding the open goroutine (and so
// Client.Close) in open(2).
func TestCreateFileOnFIFOWithoutWriter(t *testing.T) {
	p := filepath.Join(tempDir(t), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	d, err := device.NewFile(p, true, device.Description{Text: "fifo"}) // read-only: O_RDONLY
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, Config{}, d)
	// Runs before the client's Close: if the open is stuck, a writer
	// frees it, so a failure here does not also hang the test binary.
	t.Cleanup(func() {
		if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	})
	s.pnpdrReady()
	conn := s.fileChannel(wire.IOVersionCustomEvents)
	createFile(t, conn, 1, 1) // any result, as long as it comes
}
