package xrdp

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// fakeChansrv is a test double of xrdp-chansrv's xrdpapi listener, written
// from the behaviour described in the package doc (not from xrdp's code).
// It speaks one open request, as each chansrv does:
//
//   - ProtocolV0 (xrdp 0.9 to 0.10.4): reads 8 bytes, drops the
//     connection unless the version is 0, then reads total-8 more;
//   - ProtocolV1 (0.10.5+): reads exactly 384 bytes and drops the
//     connection unless the version is 1; private channel 'xrdp' is the
//     session-information channel.
//
// A static channel (flags 0) is answered 1 at once: the fake has none. A
// dynamic one is answered with the status set for its name (0 if none),
// and the socket is handed to the test's handler.
type fakeChansrv struct {
	t       testing.TB
	dir     string
	path    string
	display int
	proto   Protocol
	ln      *net.UnixListener
	wg      sync.WaitGroup

	mu        sync.Mutex
	status    map[string]uint32 // CreationStatus per name; 0 if absent
	opens     []fakeOpen
	probes    int  // static-channel requests answered
	drop      bool // close the socket instead of answering a dynamic open
	silent    bool // read every request and never answer nor close
	connected uint32
	watchers  map[*net.UnixConn]bool // session-information channels
	conns     map[*net.UnixConn]bool
	stopped   bool
	quit      chan struct{} // closed by stop

	handle func(name string, c *net.UnixConn)
	// accept, if set, is the client deciding a dynamic open (before the
	// status is sent): the status to answer, and for 0 what to run on
	// the socket. It replaces status and handle.
	accept func(name string, c *net.UnixConn) (uint32, func())
}

type fakeOpen struct {
	name    string
	version uint32
	private uint32
	flags   uint32
	raw     []byte
}

// startFake starts a fake chansrv speaking the version-0 request.
func startFake(t testing.TB, display int, handle func(name string, c *net.UnixConn)) *fakeChansrv {
	return startFakeProto(t, ProtocolV0, display, handle)
}

func startFakeProto(t testing.TB, proto Protocol, display int, handle func(name string, c *net.UnixConn)) *fakeChansrv {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "xrdpapi_"+strconv.Itoa(display))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeChansrv{t: t, dir: dir, path: path, display: display, proto: proto, ln: ln,
		status: map[string]uint32{}, handle: handle, connected: 1,
		watchers: map[*net.UnixConn]bool{}, conns: map[*net.UnixConn]bool{}, quit: make(chan struct{})}
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

// stop closes the listener and every connection, as an exiting chansrv
// does, and waits for the fake's goroutines.
func (f *fakeChansrv) stop() {
	f.mu.Lock()
	if !f.stopped {
		close(f.quit)
	}
	f.stopped = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
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
		f.mu.Lock()
		if f.stopped {
			f.mu.Unlock()
			c.Close()
			return
		}
		f.conns[c] = true
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer func() {
				f.mu.Lock()
				delete(f.conns, c)
				delete(f.watchers, c)
				f.mu.Unlock()
				c.Close()
			}()
			f.conn(c)
		}()
	}
}

// readRequest reads one open request the way the fake's chansrv version
// does; ok is false when that chansrv would drop the connection.
func (f *fakeChansrv) readRequest(c *net.UnixConn) (o fakeOpen, ok bool) {
	if f.proto == ProtocolV1 {
		buf := make([]byte, connectV1Len)
		if _, err := io.ReadFull(c, buf); err != nil {
			return o, false
		}
		o = fakeOpen{
			version: binary.LittleEndian.Uint32(buf[0:]),
			private: binary.LittleEndian.Uint32(buf[4:]),
			flags:   binary.LittleEndian.Uint32(buf[8:]),
			raw:     buf,
		}
		name := buf[connectV1NameOff : connectV1NameOff+MaxNameLen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		o.name = string(name)
		return o, o.version == connectV1Version
	}
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return o, false
	}
	total := binary.LittleEndian.Uint32(hdr[0:])
	if binary.LittleEndian.Uint32(hdr[4:]) != 0 || total < 16 || total > 16+MaxNameLen {
		return o, false // chansrv drops such a connection
	}
	rest := make([]byte, total-8)
	if _, err := io.ReadFull(c, rest); err != nil {
		return o, false
	}
	nameLen := binary.LittleEndian.Uint32(rest)
	if int(nameLen) != len(rest)-8 {
		return o, false
	}
	return fakeOpen{
		name:    string(rest[4 : 4+nameLen]),
		version: binary.LittleEndian.Uint32(hdr[4:]),
		flags:   binary.LittleEndian.Uint32(rest[4+nameLen:]),
		raw:     append(hdr[:], rest...),
	}, true
}

func (f *fakeChansrv) conn(c *net.UnixConn) {
	f.mu.Lock()
	silent := f.silent
	f.mu.Unlock()
	if silent {
		io.Copy(io.Discard, c)
		// Like a chansrv that has hung: keep the socket open after the
		// client's end of stream too, until the fake stops.
		<-f.quit
		return
	}
	o, ok := f.readRequest(c)
	if !ok {
		return
	}
	answer := func(v uint32) bool {
		_, err := c.Write(binary.LittleEndian.AppendUint32(nil, v))
		return err == nil
	}
	switch {
	case o.private == chanIDSessionInfo:
		f.mu.Lock()
		st := f.connected
		f.watchers[c] = true
		f.mu.Unlock()
		// chansrv sends the status, then the session state, in one write.
		c.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 0), st))
		io.Copy(io.Discard, c)
		return
	case o.private != 0 || o.flags == 0:
		f.mu.Lock()
		f.probes++
		f.mu.Unlock()
		if answer(1) {
			io.Copy(io.Discard, c)
		}
		return
	}
	f.mu.Lock()
	f.opens = append(f.opens, o)
	st, drop := f.status[o.name], f.drop
	f.mu.Unlock()
	if f.accept != nil && !drop {
		st, run := f.accept(o.name, c)
		if answer(st) && st == 0 && run != nil {
			run()
		} else {
			io.Copy(io.Discard, c)
		}
		return
	}
	if drop || !answer(st) {
		return
	}
	if st != 0 || f.handle == nil {
		io.Copy(io.Discard, c) // chansrv keeps a refused socket open
		return
	}
	f.handle(o.name, c)
}

// setConnected reports a client connect (true) or disconnect on every
// session-information channel, as chansrv 0.10.5+ does.
func (f *fakeChansrv) setConnected(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connected = 0
	if on {
		f.connected = 1
	}
	for c := range f.watchers {
		c.Write(binary.LittleEndian.AppendUint32(nil, f.connected))
	}
}

// sendRaw writes b on every session-information channel (bad input).
func (f *fakeChansrv) sendRaw(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.watchers {
		c.Write(b)
	}
}

func (f *fakeChansrv) watcherCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.watchers)
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
