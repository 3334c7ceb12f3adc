//go:build unix

package device

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// listTree names every entry under dir (recursively, not following
// links), so that a test sees a file created anywhere in it.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return strings.Join(names, "\n")
}

var dispositionNames = map[uint32]string{
	wire.CreateNew: "CREATE_NEW", wire.CreateAlways: "CREATE_ALWAYS", wire.OpenExisting: "OPEN_EXISTING",
	wire.OpenAlways: "OPEN_ALWAYS", wire.TruncateExisting: "TRUNCATE_EXISTING",
}

// TestFileSwappedAfterStart is issue 10 item 4: once NewFile has recorded
// the device's file, replacing the path — by a hard link to another file,
// by another file renamed over it, its directory by a symbolic link to
// another directory, or by deleting it — must never change or create any
// file but the device's own, whatever the disposition. Before the fix a
// TRUNCATE_EXISTING or CREATE_ALWAYS cut the other file to 0 bytes before
// the identity check refused it, and OPEN_ALWAYS created a file.
func TestFileSwappedAfterStart(t *testing.T) {
	const (
		deviceContent = "the device's own bytes"
		otherContent  = "another file's bytes, which must survive"
	)
	swaps := []struct {
		name string
		// swap replaces the device path; it returns the path of the
		// other file, "" when there is none.
		swap func(t *testing.T, dir, devPath, elsewhere string) string
		// deviceMayOpen: the device's own file is still reachable (the
		// directory moved with it), so opening it is right.
		deviceMayOpen bool
	}{
		{name: "hard link", swap: func(t *testing.T, dir, devPath, elsewhere string) string {
			other := filepath.Join(elsewhere, "other")
			write(t, other, otherContent)
			os.Remove(devPath)
			if err := os.Link(other, devPath); err != nil {
				t.Skip("hard link:", err)
			}
			return other
		}},
		{name: "file renamed over it", swap: func(t *testing.T, dir, devPath, elsewhere string) string {
			other := filepath.Join(dir, "replacement")
			write(t, other, otherContent)
			if err := os.Rename(other, devPath); err != nil {
				t.Fatal(err)
			}
			return devPath
		}},
		{name: "directory symlink", deviceMayOpen: true, swap: func(t *testing.T, dir, devPath, elsewhere string) string {
			other := filepath.Join(elsewhere, filepath.Base(devPath))
			write(t, other, otherContent)
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(elsewhere, dir); err != nil {
				t.Fatal(err)
			}
			return other
		}},
		{name: "deleted", swap: func(t *testing.T, dir, devPath, elsewhere string) string {
			if err := os.Remove(devPath); err != nil {
				t.Fatal(err)
			}
			return ""
		}},
	}
	ctx := context.Background()
	for _, sw := range swaps {
		for _, disp := range []uint32{wire.CreateNew, wire.CreateAlways, wire.OpenExisting, wire.OpenAlways, wire.TruncateExisting} {
			t.Run(sw.name+"/"+dispositionNames[disp], func(t *testing.T) {
				root := tempDir(t)
				dir, elsewhere := filepath.Join(root, "dir"), filepath.Join(root, "elsewhere")
				for _, d := range []string{dir, elsewhere} {
					if err := os.Mkdir(d, 0o700); err != nil {
						t.Fatal(err)
					}
				}
				devPath := filepath.Join(dir, "dev.img")
				write(t, devPath, deviceContent)
				d, err := NewFile(devPath, false, Description{})
				if err != nil {
					t.Fatal(err)
				}
				other := sw.swap(t, dir, devPath, elsewhere)
				tree := listTree(t, root)

				h, err := d.Open(ctx, with(rw, func(r *OpenRequest) { r.CreationDisposition = disp }))
				if err == nil {
					if !sw.deviceMayOpen {
						h.Close()
						t.Fatalf("opened %s after it was swapped (%s)", devPath, sw.name)
					}
					// It can only be the device's own file, in the old directory.
					buf := make([]byte, 64)
					n, _ := h.ReadAt(ctx, buf, 0)
					h.Close()
					if got := string(buf[:n]); got == otherContent {
						t.Fatal("the handle reads the other file")
					}
				}
				if other != "" {
					if got, err := os.ReadFile(other); err != nil || string(got) != otherContent {
						t.Fatalf("the other file now holds %q (%v); want it unchanged", got, err)
					}
				}
				if after := listTree(t, root); after != tree {
					t.Fatalf("files changed:\nbefore:\n%s\nafter:\n%s", tree, after)
				}
			})
		}
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFilePlantedBeforeFirstCreate: a writable File whose path did not
// exist at NewFile is the file its first creating CreateFile makes; a
// hard link to another file planted at the path before that is not
// adopted, whatever the disposition, and the other file is unchanged.
// Before the fix the first CreateFile recorded whatever it opened, and
// CREATE_ALWAYS or TRUNCATE_EXISTING emptied the other file.
func TestFilePlantedBeforeFirstCreate(t *testing.T) {
	const otherContent = "another file's bytes"
	ctx := context.Background()
	for _, disp := range []uint32{wire.CreateNew, wire.CreateAlways, wire.OpenExisting, wire.OpenAlways, wire.TruncateExisting} {
		t.Run(dispositionNames[disp], func(t *testing.T) {
			root := tempDir(t)
			devPath, other := filepath.Join(root, "dev.img"), filepath.Join(root, "other")
			d, err := NewFile(devPath, false, Description{})
			if err != nil {
				t.Fatal(err)
			}
			write(t, other, otherContent)
			if err := os.Link(other, devPath); err != nil {
				t.Skip("hard link:", err)
			}
			h, err := d.Open(ctx, with(rw, func(r *OpenRequest) { r.CreationDisposition = disp }))
			if err == nil {
				h.Close()
				t.Fatal("opened a file planted at the path")
			}
			if got, err := os.ReadFile(other); err != nil || string(got) != otherContent {
				t.Fatalf("the other file now holds %q (%v)", got, err)
			}
		})
	}
}
