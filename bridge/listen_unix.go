//go:build unix

package bridge

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// listenUnix binds in a fresh folder of mode 0700 next to path, sets the
// socket's mode to 0600 and only then links it at path: no other user
// can connect during the moment between bind and chmod, and the
// process's umask (shared by every goroutine) is left alone. The folder
// and the name in it are removed before listenUnix returns.
func listenUnix(path string) (net.Listener, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".rdpdvc-")
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("bridge: %w", err)
	}
	// A hard link, not a rename: it fails if a file appeared at path
	// since removeStale looked, where a rename would replace it.
	if err := os.Link(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("bridge: %w", err)
	}
	return &unlinking{UnixListener: ln, path: path}, nil
}

// unlinking removes the socket file at its final path on Close (the
// listener only knows the path it was bound at).
type unlinking struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (u *unlinking) Addr() net.Addr { return &net.UnixAddr{Name: u.path, Net: "unix"} }

func (u *unlinking) Close() error {
	err := u.UnixListener.Close()
	u.once.Do(func() { os.Remove(u.path) })
	return err
}

// connRefused reports whether a dial failed because nothing listens.
func connRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
