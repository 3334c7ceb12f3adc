//go:build !unix

package device

import (
	"errors"
	"io/fs"
	"os"
)

// Elsewhere (Windows) the file is opened by its path and checked after
// the open, by its identity (see File); nothing is truncated or created
// before that check, and creating is exclusive (CREATE_NEW), so a file
// put at the path by someone else is never changed.

// dirHandle only checks, at NewFile, that the directory exists.
type dirHandle struct{}

func openDir(dir string) (dirHandle, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return dirHandle{}, err
	}
	if !st.IsDir() {
		return dirHandle{}, &os.PathError{Op: "open", Path: dir, Err: errors.New("not a directory")}
	}
	return dirHandle{}, nil
}

// openAt opens the device's file by its path with flags; it never
// truncates.
func (f *File) openAt(flags int, perm uint32) (*os.File, error) {
	return os.OpenFile(f.path, flags, os.FileMode(perm))
}

// exists reports whether the device's path names anything.
func (f *File) exists() (bool, error) {
	_, err := os.Lstat(f.path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

func isSymlinkRefused(error) bool { return false }

func streamOpened(*os.File) error { return nil }
