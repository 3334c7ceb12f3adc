// Package script drives a pnp/server.Server from a small line-oriented
// script and reports every result as one JSON line, so that a shell script
// or a test can open a redirected device, do I/O on it and check what
// happened. It is what `rdpdvc pnp-server -script` runs.
//
// # Language
//
// One command per line; blank lines and lines starting with # are
// skipped. Numbers are decimal or 0x hexadecimal; durations are Go's
// (100ms, 2s).
//
//	wait-device [SEL] [timeout=DUR]   wait until a device matching SEL is listed
//	wait-removed SEL [timeout=DUR]    wait until no device matches SEL
//	devices                           list the devices
//	open [NAME] SEL [access=N] [share=N] [disposition=N] [flags=N] [timeout=DUR]
//	read NAME OFFSET COUNT [timeout=DUR]
//	write NAME OFFSET DATA [timeout=DUR]
//	ioctl NAME CODE DATA OUTMAX [timeout=DUR]
//	close NAME
//	subscribe GUID|all                print custom events as they come
//	wait-event GUID [timeout=DUR]     wait for a custom event with GUID
//	sleep DUR
//	! COMMAND                         COMMAND must fail
//
// SEL picks a device: its ClientDeviceID, "any", "hwid:ID" (one of its
// HardwareIds) or "desc:TEXT" (its DeviceDescription contains TEXT).
// NAME names a handle for later commands; open without one names it h1,
// h2, ... and prints the name. DATA is hex ("68656c6c6f"),
// "text:..." (the rest of the line), "@FILE" (a file's contents) or "-"
// (nothing). disposition also takes the Windows names (OPEN_EXISTING, ...).
//
// A timeout on read, write or ioctl cancels the call when it expires: the
// server sends a Specific IoCancel Request and the result says
// "cancelled". wait-* commands default to a timeout of 30s.
//
// # Output
//
// Each command prints {"line":N,"op":"...","ok":true|false,...}: data as
// hex, failures with "error" and, when the client answered with one,
// "hresult" (as "0x80070013") and "hresultName". Device arrivals and
// removals print {"event":"device-arrived"|"device-removed","device":{...}}
// (see Runner.DeviceEvent), custom events {"event":"custom-event",...}.
package script

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// DefaultWait bounds the wait-* commands without a timeout.
const DefaultWait = 30 * time.Second

// Runner runs scripts against one Server. Create it with New before the
// server starts, so that DeviceEvent can be its Config.OnDevice.
type Runner struct {
	out io.Writer
	mu  sync.Mutex // output lines

	srv     *server.Server
	handles map[string]*server.Handle
	names   map[*server.Handle]string
	auto    int        // handles named by open SEL so far
	hmu     sync.Mutex // handles, names, auto

	emu    sync.Mutex
	events map[wire.GUID][]server.CustomEvent // received since subscribe
	subbed map[wire.GUID]bool
	all    bool
	wake   chan struct{}
}

// New returns a runner printing to out.
func New(out io.Writer) *Runner {
	return &Runner{
		out:     out,
		handles: map[string]*server.Handle{},
		names:   map[*server.Handle]string{},
		events:  map[wire.GUID][]server.CustomEvent{},
		subbed:  map[wire.GUID]bool{},
		wake:    make(chan struct{}),
	}
}

// Attach sets the server the commands act on.
func (r *Runner) Attach(s *server.Server) { r.srv = s }

// Print writes v as one JSON line.
func (r *Runner) Print(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out.Write(append(b, '\n'))
}

// DeviceEvent prints an arrival or removal; use it as Config.OnDevice.
func (r *Runner) DeviceEvent(e server.DeviceEvent) {
	m := map[string]any{"event": e.Kind.String(), "device": e.Device}
	if e.Err != nil {
		m["error"] = e.Err.Error()
	}
	r.Print(m)
}

func (r *Runner) customEvent(e server.CustomEvent) {
	r.Print(map[string]any{
		"event": "custom-event", "guid": e.GUID, "device": e.DeviceID,
		"handle": r.nameOf(e.Handle), "data": wire.Bytes(e.Data),
	})
	r.emu.Lock()
	r.events[e.GUID] = append(r.events[e.GUID], server.CustomEvent{GUID: e.GUID, DeviceID: e.DeviceID, Data: append([]byte(nil), e.Data...)})
	close(r.wake)
	r.wake = make(chan struct{})
	r.emu.Unlock()
}

func (r *Runner) nameOf(h *server.Handle) string {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	return r.names[h]
}

// Run executes the script read from in and returns how many commands did
// not do what they were expected to (a failure, or a success after "!").
// It stops early only when ctx is done or in fails. Handles it opened stay
// open; Close closes them.
func (r *Runner) Run(ctx context.Context, in io.Reader) (failed int, err error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if err := ctx.Err(); err != nil {
			return failed, err
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		expectFail := false
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			expectFail, line = true, strings.TrimSpace(rest)
		}
		res := r.exec(ctx, line)
		res["line"] = n
		ok := res["ok"] == true
		if expectFail {
			res["expectFail"] = true
		}
		if ok == expectFail {
			failed++
		}
		r.Print(res)
	}
	return failed, sc.Err()
}

// Close closes every handle the scripts opened.
func (r *Runner) Close() {
	r.hmu.Lock()
	hs := r.handles
	r.handles = map[string]*server.Handle{}
	r.hmu.Unlock()
	for _, h := range hs {
		h.Close()
	}
}

type args struct {
	pos  []string
	opts map[string]string
	rest string // the raw text after the command's fixed arguments, for text:
}

func parseArgs(line string) (string, args) {
	fields := strings.Fields(line)
	a := args{opts: map[string]string{}}
	if len(fields) == 0 {
		return "", a
	}
	for _, f := range fields[1:] {
		if k, v, ok := strings.Cut(f, "="); ok && isOpt(k) {
			a.opts[k] = v
			continue
		}
		a.pos = append(a.pos, f)
	}
	return fields[0], a
}

func isOpt(k string) bool {
	switch k {
	case "timeout", "access", "share", "disposition", "flags":
		return true
	}
	return false
}

func fail(op string, err error) map[string]any {
	m := map[string]any{"op": op, "ok": false, "error": err.Error()}
	var h interface{ HRESULT() hresult.HRESULT }
	if errors.As(err, &h) {
		m["hresult"] = fmt.Sprintf("0x%08X", uint32(h.HRESULT()))
		m["hresultName"] = h.HRESULT().String()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		m["cancelled"] = true
	}
	return m
}

func (r *Runner) exec(ctx context.Context, line string) map[string]any {
	op, a := parseArgs(line)
	res, err := r.dispatch(ctx, op, a, line)
	if err != nil {
		return fail(op, err)
	}
	res["op"] = op
	res["ok"] = true
	return res
}

func (r *Runner) dispatch(ctx context.Context, op string, a args, line string) (map[string]any, error) {
	if r.srv == nil {
		return nil, errors.New("no server")
	}
	timeout := func(def time.Duration) (context.Context, context.CancelFunc, error) {
		d := def
		if v, ok := a.opts["timeout"]; ok {
			var err error
			if d, err = time.ParseDuration(v); err != nil {
				return nil, nil, fmt.Errorf("timeout: %w", err)
			}
		}
		if d <= 0 {
			c, cancel := context.WithCancel(ctx)
			return c, cancel, nil
		}
		c, cancel := context.WithTimeout(ctx, d)
		return c, cancel, nil
	}
	want := func(n int, usage string) error {
		if len(a.pos) != n {
			return fmt.Errorf("usage: %s %s", op, usage)
		}
		return nil
	}
	switch op {
	case "wait-device":
		if len(a.pos) > 1 {
			return nil, errors.New("usage: wait-device [SEL] [timeout=DUR]")
		}
		sel := "any"
		if len(a.pos) == 1 {
			sel = a.pos[0]
		}
		match, err := selector(sel)
		if err != nil {
			return nil, err
		}
		c, cancel, err := timeout(DefaultWait)
		if err != nil {
			return nil, err
		}
		defer cancel()
		d, err := r.srv.WaitDevice(c, match)
		if err != nil {
			return nil, err
		}
		return map[string]any{"device": d}, nil
	case "wait-removed":
		if err := want(1, "SEL [timeout=DUR]"); err != nil {
			return nil, err
		}
		match, err := selector(a.pos[0])
		if err != nil {
			return nil, err
		}
		c, cancel, err := timeout(DefaultWait)
		if err != nil {
			return nil, err
		}
		defer cancel()
		for {
			var id *uint32
			for _, d := range r.srv.Devices() {
				if match(d) {
					id = &d.ClientDeviceID
					break
				}
			}
			if id == nil {
				return map[string]any{}, nil
			}
			if err := r.srv.WaitRemoved(c, *id); err != nil {
				return nil, err
			}
		}
	case "devices":
		ds := r.srv.Devices()
		if ds == nil {
			ds = []server.Device{}
		}
		return map[string]any{"devices": ds}, nil
	case "open":
		if len(a.pos) == 1 { // open SEL: the handle is named h1, h2, ...
			r.hmu.Lock()
			r.auto++
			a.pos = []string{fmt.Sprintf("h%d", r.auto), a.pos[0]}
			r.hmu.Unlock()
		}
		if err := want(2, "[NAME] SEL [access=N] [share=N] [disposition=N] [flags=N] [timeout=DUR]"); err != nil {
			return nil, err
		}
		name := a.pos[0]
		r.hmu.Lock()
		_, dup := r.handles[name]
		r.hmu.Unlock()
		if dup {
			return nil, fmt.Errorf("handle %q is already open", name)
		}
		match, err := selector(a.pos[1])
		if err != nil {
			return nil, err
		}
		var dev *server.Device
		for _, d := range r.srv.Devices() {
			if match(d) {
				dev = &d
				break
			}
		}
		if dev == nil {
			return nil, fmt.Errorf("no device matches %q", a.pos[1])
		}
		var opts []server.OpenOption
		for k, set := range map[string]func(uint32) server.OpenOption{
			"access": server.WithDesiredAccess, "share": server.WithShareMode,
			"disposition": server.WithCreationDisposition, "flags": server.WithFlagsAndAttributes,
		} {
			if v, ok := a.opts[k]; ok {
				n, err := parseU32(v)
				if err != nil && k == "disposition" {
					n, err = disposition(v)
				}
				if err != nil {
					return nil, fmt.Errorf("%s: %w", k, err)
				}
				opts = append(opts, set(n))
			}
		}
		c, cancel, err := timeout(DefaultWait)
		if err != nil {
			return nil, err
		}
		defer cancel()
		h, err := r.srv.Open(c, dev.ClientDeviceID, opts...)
		if err != nil {
			return nil, err
		}
		r.hmu.Lock()
		r.handles[name] = h
		r.names[h] = name
		r.hmu.Unlock()
		return map[string]any{"handle": name, "device": dev.ClientDeviceID, "channelId": h.ChannelID(), "clientVersion": h.ClientVersion()}, nil
	case "read":
		if err := want(3, "NAME OFFSET COUNT [timeout=DUR]"); err != nil {
			return nil, err
		}
		h, err := r.handle(a.pos[0])
		if err != nil {
			return nil, err
		}
		off, err := strconv.ParseUint(a.pos[1], 0, 64)
		if err != nil {
			return nil, fmt.Errorf("offset: %w", err)
		}
		n, err := parseU32(a.pos[2])
		if err != nil {
			return nil, fmt.Errorf("count: %w", err)
		}
		c, cancel, err := timeout(0)
		if err != nil {
			return nil, err
		}
		defer cancel()
		b, err := h.Read(c, off, int(n))
		if err != nil {
			return nil, err
		}
		return map[string]any{"handle": a.pos[0], "offset": off, "n": len(b), "data": wire.Bytes(b)}, nil
	case "write":
		if len(a.pos) < 3 {
			return nil, errors.New("usage: write NAME OFFSET DATA [timeout=DUR]")
		}
		h, err := r.handle(a.pos[0])
		if err != nil {
			return nil, err
		}
		off, err := strconv.ParseUint(a.pos[1], 0, 64)
		if err != nil {
			return nil, fmt.Errorf("offset: %w", err)
		}
		data, err := parseData(a.pos[2], textArg(line, 0))
		if err != nil {
			return nil, err
		}
		c, cancel, err := timeout(0)
		if err != nil {
			return nil, err
		}
		defer cancel()
		n, err := h.Write(c, off, data)
		if err != nil {
			return nil, err
		}
		return map[string]any{"handle": a.pos[0], "offset": off, "n": n}, nil
	case "ioctl":
		if len(a.pos) != 4 && !(len(a.pos) > 4 && strings.HasPrefix(a.pos[2], "text:")) {
			return nil, errors.New("usage: ioctl NAME CODE DATA OUTMAX [timeout=DUR]")
		}
		h, err := r.handle(a.pos[0])
		if err != nil {
			return nil, err
		}
		code, err := parseU32(a.pos[1])
		if err != nil {
			return nil, fmt.Errorf("code: %w", err)
		}
		outMax, err := parseU32(a.pos[len(a.pos)-1])
		if err != nil {
			return nil, fmt.Errorf("outmax: %w", err)
		}
		in, err := parseData(a.pos[2], textArg(line, 1))
		if err != nil {
			return nil, err
		}
		c, cancel, err := timeout(0)
		if err != nil {
			return nil, err
		}
		defer cancel()
		b, err := h.IoControl(c, code, in, int(outMax))
		if err != nil {
			return nil, err
		}
		return map[string]any{"handle": a.pos[0], "code": fmt.Sprintf("0x%08X", code), "n": len(b), "data": wire.Bytes(b)}, nil
	case "close":
		if err := want(1, "NAME"); err != nil {
			return nil, err
		}
		h, err := r.handle(a.pos[0])
		if err != nil {
			return nil, err
		}
		r.hmu.Lock()
		delete(r.handles, a.pos[0])
		r.hmu.Unlock()
		h.Close()
		return map[string]any{"handle": a.pos[0]}, nil
	case "subscribe":
		if err := want(1, "GUID|all"); err != nil {
			return nil, err
		}
		if a.pos[0] == "all" {
			r.emu.Lock()
			already := r.all
			r.all = true
			r.emu.Unlock()
			if !already {
				r.srv.SubscribeAll(r.customEvent)
			}
			return map[string]any{"guid": "all"}, nil
		}
		g, err := wire.ParseGUID(a.pos[0])
		if err != nil {
			return nil, err
		}
		r.subscribe(g)
		return map[string]any{"guid": g}, nil
	case "wait-event":
		if err := want(1, "GUID [timeout=DUR]"); err != nil {
			return nil, err
		}
		g, err := wire.ParseGUID(a.pos[0])
		if err != nil {
			return nil, err
		}
		r.subscribe(g)
		c, cancel, err := timeout(DefaultWait)
		if err != nil {
			return nil, err
		}
		defer cancel()
		for {
			r.emu.Lock()
			if q := r.events[g]; len(q) > 0 {
				e := q[0]
				r.events[g] = q[1:]
				r.emu.Unlock()
				return map[string]any{"guid": g, "device": e.DeviceID, "data": wire.Bytes(e.Data)}, nil
			}
			wake := r.wake
			r.emu.Unlock()
			select {
			case <-wake:
			case <-c.Done():
				return nil, c.Err()
			}
		}
	case "sleep":
		if err := want(1, "DUR"); err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(a.pos[0])
		if err != nil {
			return nil, err
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return map[string]any{}, nil
	}
	return nil, fmt.Errorf("unknown command %q", op)
}

// subscribe starts queueing events with GUID g, once. With "subscribe
// all" in force, those events are queued already.
func (r *Runner) subscribe(g wire.GUID) {
	r.emu.Lock()
	defer r.emu.Unlock()
	if r.subbed[g] || r.all {
		return
	}
	r.subbed[g] = true
	r.srv.Subscribe(g, r.customEvent)
}

func (r *Runner) handle(name string) (*server.Handle, error) {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	h, ok := r.handles[name]
	if !ok {
		return nil, fmt.Errorf("no open handle %q", name)
	}
	return h, nil
}

func parseU32(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 0, 32)
	return uint32(n), err
}

func disposition(s string) (uint32, error) {
	switch strings.ToUpper(s) {
	case "CREATE_NEW":
		return wire.CreateNew, nil
	case "CREATE_ALWAYS":
		return wire.CreateAlways, nil
	case "OPEN_EXISTING":
		return wire.OpenExisting, nil
	case "OPEN_ALWAYS":
		return wire.OpenAlways, nil
	case "TRUNCATE_EXISTING":
		return wire.TruncateExisting, nil
	}
	return 0, fmt.Errorf("unknown disposition %q", s)
}

// parseData reads a DATA argument; text is what textArg found for text:.
func parseData(arg, text string) ([]byte, error) {
	switch {
	case arg == "-":
		return nil, nil
	case strings.HasPrefix(arg, "@"):
		return os.ReadFile(arg[1:])
	case strings.HasPrefix(arg, "text:"):
		return []byte(text), nil
	}
	b, err := hex.DecodeString(arg)
	if err != nil {
		return nil, fmt.Errorf("data: want hex, text:..., @FILE or -: %w", err)
	}
	return b, nil
}

// textArg returns what follows "text:" in line, less the option tokens at
// its end and then trailing more fields (OUTMAX), so that the text may hold
// spaces.
func textArg(line string, trailing int) string {
	_, text, ok := strings.Cut(line, "text:")
	if !ok {
		return ""
	}
	for {
		text = strings.TrimRight(text, " \t")
		i := strings.LastIndexAny(text, " \t")
		last := text[i+1:]
		if k, _, isKV := strings.Cut(last, "="); isKV && isOpt(k) && i >= 0 {
			text = text[:i]
			continue
		}
		if trailing > 0 && i >= 0 {
			text = text[:i]
			trailing--
			continue
		}
		return text
	}
}

// selector turns SEL into a device predicate.
func selector(sel string) (func(server.Device) bool, error) {
	switch {
	case sel == "any":
		return func(server.Device) bool { return true }, nil
	case strings.HasPrefix(sel, "hwid:"):
		id := sel[len("hwid:"):]
		return func(d server.Device) bool {
			for _, h := range d.HardwareIDs {
				if strings.EqualFold(h, id) {
					return true
				}
			}
			return false
		}, nil
	case strings.HasPrefix(sel, "desc:"):
		text := sel[len("desc:"):]
		return func(d server.Device) bool { return strings.Contains(d.DeviceDescription, text) }, nil
	}
	n, err := parseU32(sel)
	if err != nil {
		return nil, fmt.Errorf("device selector %q: want an ID, any, hwid:ID or desc:TEXT", sel)
	}
	return func(d server.Device) bool { return d.ClientDeviceID == n }, nil
}
