package device

import (
	"context"
	"os"
	"testing"
)

// TestFileMaxSize is issue 10 item 5: maxsize= bounds a writable file
// device. A write ending exactly at the limit succeeds; one byte beyond,
// or far beyond (offset 2^40), fails with ERROR_DISK_FULL and changes
// nothing, the file's size included.
func TestFileMaxSize(t *testing.T) {
	ctx := context.Background()
	for _, spec := range []string{"file:%s,maxsize=16", "file:%s:maxsize=16"} {
		p := tempFile(t, "0123456789")
		sep := byte(SpecSep)
		if spec[len("file:%s")] == ':' {
			sep = PluginSpecSep
		}
		d, err := ParseSpecSep("file:"+p+spec[len("file:%s"):], sep)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		h, err := d.Open(ctx, rw)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := h.WriteAt(ctx, []byte("abcdef"), 10); n != 6 || err != nil {
			t.Fatalf("a write ending at the limit: %d, %v", n, err)
		}
		for _, c := range []struct {
			off  uint64
			data string
		}{{16, "x"}, {15, "yz"}, {0, "0123456789abcdefg"}, {1 << 40, "far"}} {
			n, err := h.WriteAt(ctx, []byte(c.data), c.off)
			if n != 0 {
				t.Fatalf("%d bytes at %d: wrote %d", len(c.data), c.off, n)
			}
			wantCode(t, err, ErrorDiskFull)
		}
		h.Close()
		if got, _ := os.ReadFile(p); string(got) != "0123456789abcdef" {
			t.Fatalf("%s: file holds %q", spec, got)
		}
	}
	for _, bad := range []string{"maxsize=0", "maxsize=-1", "maxsize=1Q", "maxsize", "maxsize=5000000TiB"} {
		if _, err := ParseSpec("file:" + tempFile(t, "") + "," + bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := ParseSpec("mem:1K,maxsize=1K"); err == nil {
		t.Error("maxsize accepted for a memory device")
	}
}

// TestFileGrowsWithoutMaxSize: without maxsize= the file grows as a
// local file would (the default).
func TestFileGrowsWithoutMaxSize(t *testing.T) {
	p := tempFile(t, "0123")
	d, err := ParseSpec("file:" + p + ",maxsize=2TiB")
	if err != nil || d.(*File).MaxSize() != 2<<40 {
		t.Fatalf("maxsize=2TiB: %v", err)
	}
	d, err = ParseSpec("file:" + p)
	if err != nil || d.(*File).MaxSize() != 0 {
		t.Fatalf("no maxsize: %v", err)
	}
	ctx := context.Background()
	h, err := d.Open(ctx, rw)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if n, err := h.WriteAt(ctx, []byte("xy"), 8); n != 2 || err != nil {
		t.Fatalf("a write past the end: %d, %v", n, err)
	}
	if st, _ := os.Stat(p); st.Size() != 10 {
		t.Fatalf("size %d, want 10", st.Size())
	}
}
