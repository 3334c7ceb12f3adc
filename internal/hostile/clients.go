package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/pnp/client"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/session"
)

// pnpPeer is a PNP server role (pnp/server) over one portable connection
// from a real pnp-client, whose reading can be stopped.
type pnpPeer struct {
	ln   net.Listener
	g    *gated
	conn *portable.Server
	srv  *server.Server
}

func (p *pnpPeer) close() {
	if p.srv != nil {
		p.srv.Close()
	}
	if p.conn != nil {
		p.conn.Close()
	}
	p.ln.Close()
}

// acceptPNP accepts the pnp-client's connection on ln and waits for n
// devices.
func acceptPNP(ctx context.Context, e *env, ln net.Listener, n int) (*pnpPeer, error) {
	p := &pnpPeer{ln: ln}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		return p, err
	}
	p.g = newGated(c)
	p.conn = portable.NewServer(p.g, portable.Config{Logger: e.log})
	go p.conn.Run(context.Background())
	if p.srv, err = server.Start(ctx, p.conn, server.Config{Logger: e.log}); err != nil {
		return p, err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// pnp-client numbers its devices 1, 2, ... in the order given, and
	// announces them in one Client Device Addition.
	if _, err := p.srv.WaitDevice(wctx, func(d server.Device) bool { return d.ClientDeviceID == uint32(n) }); err != nil {
		return p, fmt.Errorf("%d of %d devices: %w", len(p.srv.Devices()), n, err)
	}
	return p, nil
}

// pnpClientMemory: the server opens a handle on a 16 MiB memory device,
// stops reading, and asks for 40 reads of 16 MiB. The client must refuse
// what its budget (client.DefaultMaxBufferedBytes) cannot hold and end the
// instance when its writes time out, not buffer 640 MiB.
func pnpClientMemory(ctx context.Context, e *env) ([]figure, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cl, err := start(e.bin, "rdpdvc", "pnp-client", "-q", "-connect", ln.Addr().String(), "-device", "mem:16MiB")
	if err != nil {
		ln.Close()
		return nil, err
	}
	defer cl.stop()
	p, err := acceptPNP(ctx, e, ln, 1)
	defer p.close()
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, cl.Output())
	}
	h, err := p.srv.Open(ctx, p.srv.Devices()[0].ClientDeviceID)
	if err != nil {
		return nil, err
	}
	before := cl.PeakMiB()
	p.g.stop()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range 40 {
		go h.Read(rctx, 0, wire.MaxReadBytes)
	}
	// The client's writes time out after client.DefaultWriteTimeout; watch
	// past that.
	watch := client.DefaultWriteTimeout + 10*time.Second
	if e.short {
		watch = client.DefaultWriteTimeout + 3*time.Second
	}
	until(ctx, watch)
	ceiling := float64(client.DefaultMaxBufferedBytes>>20) + 64
	peak := cl.PeakMiB()
	figs := []figure{
		info("pnp-client RSS before the reads", mib(before)),
		{what: "pnp-client peak RSS", value: mib(peak), target: fmt.Sprintf("< %.0f MiB (DefaultMaxBufferedBytes + 64 MiB)", ceiling), ok: peak > 0 && peak < ceiling},
	}
	figs = append(figs, info("pnp-client goroutines, 40 reads asked, nothing read", goroutines(cl)))
	return figs, nil
}

// refusalFlood: a DVC server that sends DYNVC_CREATE_REQ for a name
// nobody listens on, 13 bytes each on the wire, and reads nothing.
func refusalFlood(ctx context.Context, e *env) ([]figure, error) {
	total := 3_000_000
	if e.short {
		total = 300_000
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	cl, err := start(e.bin, "rdp-simple-plugin-client", "-connect", ln.Addr().String(), "-retry", "5s")
	if err != nil {
		return nil, err
	}
	defer cl.stop()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	caps := drdynvc.CapsRequest{Version: 2, PriorityCharges: session.DefaultPriorityCharges}.Append(nil)
	if _, err := c.Write(chunk(caps)); err != nil {
		return nil, err
	}
	// Ids cycle through 1..255 (one byte, cbChId 0): a refused id is free
	// again at once, so every request is a new, valid one.
	var batch bytes.Buffer
	const perBatch = 10000
	for i := range perBatch {
		batch.Write(chunk(drdynvc.CreateRequest{ChannelID: uint32(i%255 + 1), ChannelName: "xy"}.Append(nil)))
	}
	reqLen := batch.Len() / perBatch
	sent := 0
	t0 := time.Now()
	var werr error
	c.SetWriteDeadline(time.Now().Add(60 * time.Second))
	for sent < total {
		if _, werr = c.Write(batch.Bytes()); werr != nil {
			break
		}
		sent += perBatch
	}
	took := time.Since(t0)
	until(ctx, 2*time.Second) // the client works through what it has read
	peak := cl.PeakMiB()
	outcome := "the client read all of them"
	if werr != nil {
		outcome = fmt.Sprintf("the client dropped the connection after about %d (%v)", sent, werr)
	}
	figs := []figure{
		info("requests written", fmt.Sprintf("%d of %d, %d bytes each, in %s", sent, total, reqLen, secs(took))),
		info("outcome", outcome),
		{what: "rdp-simple-plugin-client peak RSS", value: mib(peak), target: "< 128 MiB", ok: peak > 0 && peak < 128},
		info("rdp-simple-plugin-client log output", fmt.Sprintf("%d bytes", cl.Printed())),
	}
	c.Close()
	figs = append(figs, info("rdp-simple-plugin-client goroutines at the end", goroutines(cl)))
	return figs, nil
}

// fileDevice: three file devices. Once pnp-client has started, the first
// one's file is replaced by a hard link to another file, and the second
// one's folder by a symbolic link to another folder holding a file of the
// same name; the server then opens both with every disposition and writes.
// The third has maxsize=1MiB and gets a 1-byte write at offset 2^40. No
// file other than the devices' own may change.
func fileDevice(ctx context.Context, e *env) ([]figure, error) {
	dir, err := os.MkdirTemp("", "rdpdvc-hostile-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	mk := func(path, content string) {
		os.MkdirAll(filepath.Dir(path), 0o755)
		os.WriteFile(path, []byte(content), 0o644)
	}
	p1, p2, p3 := filepath.Join(dir, "a", "own1"), filepath.Join(dir, "b", "own2"), filepath.Join(dir, "c", "own3")
	victim1, victim2 := filepath.Join(dir, "v", "victim1"), filepath.Join(dir, "w", "own2")
	mk(p1, "own one")
	mk(p2, "own two")
	mk(p3, "own three")
	mk(victim1, "victim one: must not change")
	mk(victim2, "victim two: must not change")
	own := map[string]bool{p1: true, p2: true, p3: true}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cl, err := start(e.bin, "rdpdvc", "pnp-client", "-q", "-connect", ln.Addr().String(),
		"-device", "file:"+p1, "-device", "file:"+p2, "-device", "file:"+p3+",maxsize=1MiB")
	if err != nil {
		ln.Close()
		return nil, err
	}
	defer cl.stop()
	p, err := acceptPNP(ctx, e, ln, 3)
	defer p.close()
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, cl.Output())
	}
	// The swaps, after start: what the client recorded is no longer there.
	os.Remove(p1)
	if err := os.Link(victim1, p1); err != nil {
		return nil, err
	}
	if err := os.Rename(filepath.Dir(p2), filepath.Join(dir, "b.moved")); err != nil {
		return nil, err
	}
	if err := os.Symlink(filepath.Dir(victim2), filepath.Dir(p2)); err != nil {
		return nil, err
	}
	delete(own, p1) // p1 is now the victim's name too
	delete(own, p2)
	own[filepath.Join(dir, "b.moved", "own2")] = true
	before, err := snapshot(dir, own)
	if err != nil {
		return nil, err
	}

	var opened []string
	for _, id := range []uint32{1, 2} {
		for _, disp := range []uint32{wire.CreateAlways, wire.TruncateExisting, wire.OpenAlways, wire.OpenExisting, wire.CreateNew} {
			h, err := p.srv.Open(ctx, id, server.WithDesiredAccess(wire.GenericRead|wire.GenericWrite), server.WithCreationDisposition(disp))
			if err != nil {
				continue
			}
			opened = append(opened, fmt.Sprintf("%d:%d", id, disp))
			h.Write(ctx, 0, []byte("HOSTILE"))
			h.Close()
		}
	}
	var farErr error
	if h, err := p.srv.Open(ctx, 3, server.WithDesiredAccess(wire.GenericRead|wire.GenericWrite), server.WithCreationDisposition(wire.OpenExisting)); err != nil {
		farErr = fmt.Errorf("open: %w", err)
	} else {
		_, farErr = h.Write(ctx, 1<<40, []byte{1})
		h.Close()
	}
	after, err := snapshot(dir, own)
	if err != nil {
		return nil, err
	}
	changed := diff(before, after)
	st, _ := os.Stat(p3)
	figs := []figure{
		// Device 2's folder was moved, not replaced: the client holds it
		// open, so its opens reach its own file under the new name.
		info("opens that succeeded (device:disposition; 2 = moved folder, its own file)", fmt.Sprintf("%d of 10 %v", len(opened), opened)),
		{what: "files other than the devices' own changed", value: fmt.Sprintf("%d %v", len(changed), changed), target: "0", ok: len(changed) == 0},
		{what: "1-byte write at offset 2^40 with maxsize=1MiB", value: fmt.Sprintf("%v; file is %d bytes", farErr, st.Size()), target: "refused, size unchanged", ok: farErr != nil && st.Size() == int64(len("own three"))},
	}
	return figs, nil
}

type fileState struct {
	size  int64
	mtime time.Time
	sum   [32]byte
}

// snapshot records every regular file under dir, by path, except own.
func snapshot(dir string, own map[string]bool) (map[string]fileState, error) {
	out := map[string]fileState{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || own[path] {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[path] = fileState{fi.Size(), fi.ModTime(), sha256.Sum256(b)}
		return nil
	})
	return out, err
}

func diff(a, b map[string]fileState) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k+" (new)")
		}
	}
	sort.Strings(out)
	return out
}
