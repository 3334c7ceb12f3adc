package main

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/rdpdvc/rdpdvc/pnp/wire"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/simple"
)

// served is the figure: with a hostile first client, a legitimate
// one is served within 15 s.
const served = 15 * time.Second

var (
	simpleListening = regexp.MustCompile(`listening \(portable transport\).* addr=(\S+)`)
	pnpListening    = regexp.MustCompile(`"addr":"([^"]+)".*"event":"listening"|"event":"listening".*"addr":"([^"]+)"`)
	echoLine        = regexp.MustCompile(`INFO echo `)
	deviceArrived   = regexp.MustCompile(`"event":"device-arrived"`)
)

// hostiles are the first clients of a server: silent connections (as
// many as held), one that answers the capabilities and never the
// DYNVC_CREATE_REQ, and a protocol-specific one from more.
type hostiles struct {
	conns []net.Conn
	stuck net.Conn
}

func (h *hostiles) close() {
	for _, c := range h.conns {
		c.Close()
	}
}

func openHostiles(addr string, silentN int) (*hostiles, error) {
	h := &hostiles{}
	for range silentN {
		c, err := silent(addr)
		if err != nil {
			h.close()
			return nil, err
		}
		h.conns = append(h.conns, c)
	}
	c, err := stuckAtCreate(addr)
	if err != nil {
		h.close()
		return nil, err
	}
	h.conns = append(h.conns, c)
	h.stuck = c
	return h, nil
}

// simpleServer: three silent connections, one stuck at the channel's
// create, one that opens the channel and never echoes, one that stops
// reading once the channel is open; then the real client.
func simpleServer(ctx context.Context, e *env) ([]figure, error) {
	srv, addr, err := startSimpleServer(e)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	h, err := openHostiles(addr, 3)
	if err != nil {
		return nil, err
	}
	defer h.close()

	// Never echoes: a real DVC client whose listener ignores every ping.
	mute, err := portable.Dial(ctx, addr, portable.Config{Logger: e.log})
	if err != nil {
		return nil, err
	}
	defer mute.Close()
	muteL := newIgnore(nil)
	mute.Listen(simple.ChannelName, muteL)
	muteEnded := make(chan time.Time, 1)
	go func() { mute.Run(ctx); muteEnded <- time.Now() }()

	// Never reads once the channel is open.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	g := newGated(raw)
	defer g.Close()
	deaf := portable.NewClient(g, portable.Config{Logger: e.log})
	deaf.Listen(simple.ChannelName, newIgnore(g.stop))
	go deaf.Run(ctx)
	deafPort := raw.LocalAddr().String()

	cl, took, ok, err := legitSimpleClient(e, addr)
	if err != nil {
		return nil, err
	}
	defer cl.stop()
	t0 := time.Now().Add(-took)
	figs := []figure{{
		what: "legitimate client served (first echo) after", value: secs(took),
		target: "< 15 s", ok: ok && took < served,
	}}
	if !ok {
		figs[0].value = "never (" + secs(took) + ")"
	}

	// The stuck ones are dropped by their own timeouts.
	wait := 20 * time.Second
	if e.short {
		wait = 12 * time.Second
	}
	d, closed := waitClosed(h.stuck, wait)
	figs = append(figs, dropped("client stuck at DYNVC_CREATE_REQ dropped by the server", d+took, closed, "-open-timeout 10 s"))
	select {
	case at := <-muteEnded:
		figs = append(figs, info("client that never echoes dropped after", secs(at.Sub(t0))+" (-drop-after 3 lost pings)"))
	case <-time.After(wait):
		figs = append(figs, figure{what: "client that never echoes dropped", value: "not within " + secs(wait), target: "dropped", ok: false})
	}
	deafRe := regexp.MustCompile(`client gone client=#\d+\(` + regexp.QuoteMeta(deafPort) + `\)`)
	if _, ok := srv.waitFor(deafRe, wait); ok {
		figs = append(figs, info("client that never reads dropped", "yes"))
	} else {
		figs = append(figs, figure{what: "client that never reads dropped", value: "not within " + secs(wait), target: "dropped", ok: false})
	}
	figs = append(figs,
		info("rdp-simple-plugin-server peak RSS", mib(srv.PeakMiB())),
		info("rdp-simple-plugin-server OS threads", fmt.Sprint(srv.Threads())))
	cl.stop()
	h.close()
	figs = append(figs, info("rdp-simple-plugin-server goroutines at the end", goroutines(srv)))
	return figs, nil
}

func dropped(what string, d time.Duration, ok bool, why string) figure {
	if !ok {
		return figure{what: what, value: "no", target: "dropped", ok: false}
	}
	return info(what, "after "+secs(d)+" ("+why+")")
}

// pnpServer: three silent connections, one stuck at PNPDR's create, one
// that accepts PNPDR and never sends its Client Version; then the real
// pnp-client.
func pnpServer(ctx context.Context, e *env) ([]figure, error) {
	srv, err := start(e.bin, "rdpdvc", "pnp-server", "-listen", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	l, ok := srv.waitFor(pnpListening, 10*time.Second)
	if !ok {
		return nil, fmt.Errorf("pnp-server did not listen:\n%s", srv.Output())
	}
	m := pnpListening.FindStringSubmatch(l)
	addr := m[1] + m[2]
	h, err := openHostiles(addr, 3)
	if err != nil {
		return nil, err
	}
	defer h.close()
	mute, err := portable.Dial(ctx, addr, portable.Config{Logger: e.log})
	if err != nil {
		return nil, err
	}
	defer mute.Close()
	muteL := newIgnore(nil)
	mute.Listen(wire.ChannelPNPDR, muteL)
	go mute.Run(ctx)
	select {
	case <-muteL.accepted:
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("pnp-server never opened PNPDR to the mute client")
	}

	t0 := time.Now()
	cl, err := start(e.bin, "rdpdvc", "pnp-client", "-connect", addr, "-device", "mem:4KiB")
	if err != nil {
		return nil, err
	}
	defer cl.stop()
	_, ok = srv.waitFor(deviceArrived, served+5*time.Second)
	took := time.Since(t0)
	f := figure{what: "legitimate pnp-client served (device arrived) after", value: secs(took), target: "< 15 s", ok: ok && took < served}
	if !ok {
		f.value = "never (" + secs(took) + ")\n" + srv.Output()
	}
	figs := []figure{f,
		info("pnp-server peak RSS", mib(srv.PeakMiB())),
		info("pnp-client peak RSS", mib(cl.PeakMiB())),
		// Taken while the hostile clients are still connected: pnp-server
		// exits when its client leaves.
		info("pnp-server goroutines, serving with the hostiles connected", goroutines(srv))}
	return figs, nil
}

// heldConnections: many silent connections held open, more than
// -max-clients; then the real client.
func heldConnections(ctx context.Context, e *env) ([]figure, error) {
	n := 2000
	if e.short {
		n = 300
	}
	srv, addr, err := startSimpleServer(e)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	h := &hostiles{}
	defer h.close()
	for range n {
		c, err := silent(addr)
		if err != nil {
			return nil, fmt.Errorf("after %d connections: %w", len(h.conns), err)
		}
		h.conns = append(h.conns, c)
	}
	cl, took, ok, err := legitSimpleClient(e, addr)
	if err != nil {
		return nil, err
	}
	defer cl.stop()
	f := figure{what: fmt.Sprintf("legitimate client served after %d silent connections", n), value: secs(took), target: "< 15 s", ok: ok && took < served}
	if !ok {
		f.value = "never (" + secs(took) + ")"
	}
	return []figure{f,
		info("rdp-simple-plugin-server peak RSS", mib(srv.PeakMiB())),
		info("rdp-simple-plugin-server goroutines, connections still held", goroutines(srv))}, nil
}

// startSimpleServer starts rdp-simple-plugin-server on a free port, with
// pings every 200 ms, and returns its address.
func startSimpleServer(e *env) (*proc, string, error) {
	srv, err := start(e.bin, "rdp-simple-plugin-server", "-listen", "127.0.0.1:0", "-interval", "200ms")
	if err != nil {
		return nil, "", err
	}
	l, ok := srv.waitFor(simpleListening, 10*time.Second)
	if !ok {
		srv.stop()
		return nil, "", fmt.Errorf("rdp-simple-plugin-server did not listen:\n%s", srv.Output())
	}
	return srv, simpleListening.FindStringSubmatch(l)[1], nil
}

// legitSimpleClient starts the real client against addr and waits for its
// first echo; took is how long from its start, ok whether it came.
func legitSimpleClient(e *env, addr string) (cl *proc, took time.Duration, ok bool, err error) {
	t0 := time.Now()
	cl, err = start(e.bin, "rdp-simple-plugin-client", "-connect", addr, "-retry", "5s")
	if err != nil {
		return nil, 0, false, err
	}
	_, ok = cl.waitFor(echoLine, served+5*time.Second)
	return cl, time.Since(t0), ok, nil
}
