package xrdp

import (
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// fakeChansrv is a test double of xrdp-chansrv's xrdpapi listener, written
// from the behaviour described in the package doc (not from xrdp's code):
// it reads the handshake the way chansrv does (8 bytes, then total-8),
// answers with a u32 status, and hands the socket to a test's handler.
type fakeChansrv struct {
	t       testing.TB
	dir     string
	display int
	ln      *net.UnixListener
	wg      sync.WaitGroup

	mu     sync.Mutex
	status map[string]uint32 // CreationStatus per name; 0 if absent
	opens  []fakeOpen
	drop   bool // close the socket instead of answering

	handle func(name string, c *net.UnixConn)
}

type fakeOpen struct {
	name    string
	version uint32
	flags   uint32
	raw     []byte
}

func startFake(t testing.TB, display int, handle func(name string, c *net.UnixConn)) *fakeChansrv {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "xrdpapi_"+strconv.Itoa(display)), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeChansrv{t: t, dir: dir, display: display, ln: ln, status: map[string]uint32{}, handle: handle}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.stop)
	return f
}

func (f *fakeChansrv) opener(t *testing.T, o Options) *Opener {
	t.Helper()
	o.Display = ":" + strconv.Itoa(f.display)
	o.SocketDir = f.dir
	op, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func (f *fakeChansrv) stop() {
	f.ln.Close()
	f.wg.Wait()
}

func (f *fakeChansrv) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.AcceptUnix()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			f.conn(c)
		}()
	}
}

func (f *fakeChansrv) conn(c *net.UnixConn) {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	total := binary.LittleEndian.Uint32(hdr[0:])
	if total < 16 || total > 16+MaxNameLen {
		return // chansrv drops such a connection
	}
	rest := make([]byte, total-8)
	if _, err := io.ReadFull(c, rest); err != nil {
		return
	}
	nameLen := binary.LittleEndian.Uint32(rest)
	if int(nameLen) != len(rest)-8 {
		return
	}
	o := fakeOpen{
		name:    string(rest[4 : 4+nameLen]),
		version: binary.LittleEndian.Uint32(hdr[4:]),
		flags:   binary.LittleEndian.Uint32(rest[4+nameLen:]),
		raw:     append(hdr[:], rest...),
	}
	f.mu.Lock()
	f.opens = append(f.opens, o)
	st, drop := f.status[o.name], f.drop
	f.mu.Unlock()
	if drop {
		return
	}
	if _, err := c.Write(binary.LittleEndian.AppendUint32(nil, st)); err != nil {
		return
	}
	if st != 0 || f.handle == nil {
		io.Copy(io.Discard, c) // chansrv keeps a refused socket open
		return
	}
	f.handle(o.name, c)
}

func (f *fakeChansrv) lastOpen() fakeOpen {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.opens) == 0 {
		f.t.Fatal("no open request reached the fake chansrv")
	}
	return f.opens[len(f.opens)-1]
}

// echo copies everything back, as FreeRDP's ECHO listener does through
// chansrv.
func echo(_ string, c *net.UnixConn) {
	buf := make([]byte, 32768)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
