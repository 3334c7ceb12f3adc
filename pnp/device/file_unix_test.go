//go:build unix

package device

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// readAll opens d and reads up to 16 bytes at offset 0.
func readAll(t *testing.T, d *File, req OpenRequest) (string, error) {
	t.Helper()
	h, err := d.Open(context.Background(), req)
	if err != nil {
		return "", err
	}
	defer h.Close()
	buf := make([]byte, 16)
	n, err := h.ReadAt(context.Background(), buf, 0)
	return string(buf[:n]), err
}

// TestFileSymlinkSwap: once NewFile has resolved the path, swapping a
// link, or the file itself, for something else does not redirect that
// something else.
func TestFileSymlinkSwap(t *testing.T) {
	dir := tempDir(t)
	a, b, link := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "link")
	for p, s := range map[string]string{a: "A", b: "secret"} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	d, err := NewFile(link, false, Description{})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := readAll(t, d, rw); s != "A" || err != nil {
		t.Fatalf("read %q, %v", s, err)
	}
	// The link now points elsewhere: the device still means a.
	os.Remove(link)
	if err := os.Symlink(b, link); err != nil {
		t.Fatal(err)
	}
	if s, err := readAll(t, d, rw); s != "A" || err != nil {
		t.Fatalf("after the link moved: read %q, %v; want a's content", s, err)
	}
	// a itself becomes a link to b: refused, not followed.
	os.Rename(a, filepath.Join(dir, "a.old"))
	if err := os.Symlink(b, a); err != nil {
		t.Fatal(err)
	}
	s, err := readAll(t, d, rw)
	if s == "secret" {
		t.Fatal("the device followed a link planted after NewFile")
	}
	wantCode(t, err, ErrorAccessDenied)
	// a becomes a hard link to b, another file: refused too.
	os.Remove(a)
	if err := os.Link(b, a); err != nil {
		t.Skip("hard link:", err)
	}
	s, err = readAll(t, d, rw)
	if s == "secret" {
		t.Fatal("the device opened a file other than the one NewFile found")
	}
	wantCode(t, err, ErrorAccessDenied)
}

// TestFileSymlinkPlantedBeforeCreate: a writable File whose path does
// not exist yet does not follow a link planted there before the first
// CreateFile.
func TestFileSymlinkPlantedBeforeCreate(t *testing.T) {
	dir := tempDir(t)
	b, c := filepath.Join(dir, "b"), filepath.Join(dir, "c")
	if err := os.WriteFile(b, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := NewFile(c, false, Description{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(b, c); err != nil {
		t.Fatal(err)
	}
	openAlways := with(rw, func(r *OpenRequest) { r.CreationDisposition = wire.OpenAlways })
	s, err := readAll(t, d, openAlways)
	if s == "secret" {
		t.Fatal("the device followed a link planted before the first CreateFile")
	}
	wantCode(t, err, ErrorAccessDenied)
	// Once the path is a file of its own, it is created and recorded.
	os.Remove(c)
	if _, err := readAll(t, d, openAlways); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, d, rw); err != nil {
		t.Fatal(err)
	}
}

// TestFIFOOpenDoesNotBlock: opening a FIFO with no writer (read-only
// File, so O_RDONLY) returns instead of waiting in open(2), which no
// context can interrupt. (The context is live: one already cancelled
// fails before the open is tried.)
func TestFIFOOpenDoesNotBlock(t *testing.T) {
	p := filepath.Join(tempDir(t), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	d, err := NewFile(p, true, Description{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		h, err := d.Open(context.Background(), rw)
		if err == nil {
			h.Close()
		}
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // a hang detector, not a timing assertion
		// Unblock the open so the goroutine ends, then fail.
		if w, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("opening a FIFO with no writer blocked in open(2)")
	}
}
