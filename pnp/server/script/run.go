package script

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// DefaultWait bounds the wait-* commands without a timeout.
const DefaultWait = 30 * time.Second

// DefaultIO bounds read, write and ioctl lines without a timeout, so that
// a client that never answers cannot hold a script for ever: the call is
// cancelled as an explicit timeout= would cancel it.
const DefaultIO = 30 * time.Second

// Bounds of what the client's custom events can make the runner hold.
const (
	// MaxQueuedEvents is how many received custom events wait for a
	// wait-event at most; past it the oldest is dropped (and reported).
	MaxQueuedEvents = 1024
	// MaxQueuedEventBytes bounds the data of those events.
	MaxQueuedEventBytes = 4 << 20
)

// Runner runs scripts against one Server. Create it with New before the
// server starts, so that DeviceEvent can be its Config.OnDevice.
type Runner struct {
	// IOTimeout bounds read, write and ioctl lines that give no
	// timeout=; 0 means DefaultIO. Set it before Run.
	IOTimeout time.Duration

	out io.Writer
	mu  sync.Mutex // output lines

	srv     *server.Server
	hmu     sync.Mutex // handles, names, opening, held
	handles map[string]*server.Handle
	names   map[*server.Handle]string // kept after close, for late events
	opening int                       // opens under way
	held    []queued                  // events of handles being opened

	emu        sync.Mutex
	queue      []queued // received since subscribe, oldest first
	queueBytes int
	subbed     map[wire.GUID]func() // GUID -> its unsubscribe
	all        bool
	wake       chan struct{}
}

type queued struct {
	server.CustomEvent
	handle string
}

// New returns a runner printing to out.
func New(out io.Writer) *Runner {
	return &Runner{
		out:     out,
		handles: map[string]*server.Handle{},
		names:   map[*server.Handle]string{},
		subbed:  map[wire.GUID]func(){},
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

// customEvent queues a custom event for wait-event and prints it. An
// event on a handle still being opened (the client may raise one as soon
// as it has the CreateFile Request) is printed once the open has named
// the handle.
func (r *Runner) customEvent(e server.CustomEvent) {
	q := queued{CustomEvent: server.CustomEvent{GUID: e.GUID, DeviceID: e.DeviceID, Handle: e.Handle, Data: append([]byte(nil), e.Data...)}}
	r.hmu.Lock()
	name, named := r.names[e.Handle]
	if !named && r.opening > 0 && len(r.held) < MaxQueuedEvents {
		r.held = append(r.held, q)
		r.hmu.Unlock()
		r.enqueue(q)
		return
	}
	r.hmu.Unlock()
	q.handle = name
	r.printEvent(q)
	r.enqueue(q)
}

func (r *Runner) printEvent(q queued) {
	m := map[string]any{"event": "custom-event", "guid": q.GUID, "device": q.DeviceID, "data": wire.Bytes(q.Data)}
	if q.handle != "" {
		m["handle"] = q.handle
	}
	r.Print(m)
}

func (r *Runner) enqueue(q queued) {
	r.emu.Lock()
	defer r.emu.Unlock()
	r.queue = append(r.queue, q)
	r.queueBytes += len(q.Data)
	for len(r.queue) > MaxQueuedEvents || r.queueBytes > MaxQueuedEventBytes {
		old := r.queue[0]
		r.queue = r.queue[1:]
		r.queueBytes -= len(old.Data)
		r.Print(map[string]any{"event": "custom-event-dropped", "guid": old.GUID, "device": old.DeviceID,
			"why": fmt.Sprintf("more than %d events or %d bytes wait for a wait-event", MaxQueuedEvents, MaxQueuedEventBytes)})
	}
	close(r.wake)
	r.wake = make(chan struct{})
}

// named records the handle an open gave a name to and prints the events
// held while it opened: with its name, or, once no open is under way,
// without one (their open failed).
func (r *Runner) named(name string, h *server.Handle) {
	r.hmu.Lock()
	r.opening--
	if h != nil {
		r.handles[name] = h
		r.names[h] = name
	}
	var out, keep []queued
	for _, q := range r.held {
		if n, ok := r.names[q.Handle]; ok {
			q.handle = n
			out = append(out, q)
		} else if r.opening == 0 {
			out = append(out, q)
		} else {
			keep = append(keep, q)
		}
	}
	r.held = keep
	r.hmu.Unlock()
	for _, q := range out {
		r.printEvent(q)
	}
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

// job is a line running in the background.
type job struct {
	name   string
	line   int
	cancel context.CancelFunc
	done   chan struct{}
}

// run is the state of one Run.
type run struct {
	r      *Runner
	mu     sync.Mutex
	failed []int
	jobs   map[string]*job
	order  []*job
}

func (x *run) fail(n int) {
	x.mu.Lock()
	x.failed = append(x.failed, n)
	x.mu.Unlock()
}

// Run executes s and returns the numbers of the lines whose expectation
// did not hold, in order. A background job still running at the end is
// waited for, as by "wait all". Run stops early only when ctx is done,
// with its error. Handles the script opened stay open; Close closes them.
func (r *Runner) Run(ctx context.Context, s *Script) (failed []int, err error) {
	x := &run{r: r, jobs: map[string]*job{}}
	defer func() {
		for _, j := range x.order {
			<-j.done
		}
		sort.Ints(x.failed)
		failed = x.failed
	}()
	for _, l := range s.lines {
		if err := ctx.Err(); err != nil {
			for _, j := range x.order {
				j.cancel()
			}
			return nil, err
		}
		if l.job == "" {
			x.line(ctx, l)
			continue
		}
		jctx, cancel := context.WithCancel(ctx)
		j := &job{name: l.job, line: l.n, cancel: cancel, done: make(chan struct{})}
		x.jobs[j.name] = j
		x.order = append(x.order, j)
		r.Print(map[string]any{"event": "job-started", "job": j.name, "line": l.n, "op": l.op})
		running := make(chan struct{})
		go func() {
			defer close(j.done)
			defer cancel()
			close(running)
			x.line(jctx, l)
		}()
		// The next line starts once the job runs, not merely once it
		// could: what a cancel on that line finds gone out is then only
		// a matter of the handle's own queue.
		<-running
	}
	return nil, ctx.Err()
}

// line runs one line and prints its result.
func (x *run) line(ctx context.Context, l *line) {
	start := time.Now()
	o := x.exec(ctx, l)
	elapsed := time.Since(start)
	res := o.fields
	if res == nil {
		res = map[string]any{}
	}
	res["line"], res["op"] = l.n, l.op
	res["elapsed_ms"] = math.Round(float64(elapsed.Microseconds())) / 1e3
	if l.expectFail {
		res["expectFail"] = true
	}
	if l.job != "" {
		res["job"] = l.job
	}
	switch {
	case o.script != nil:
		res["returned"] = "script-error"
		res["error"] = o.script.Error()
	case o.err != nil:
		res["returned"] = "error"
		describeErr(res, o.err)
	default:
		res["returned"] = "ok"
	}
	why := l.check(o)
	res["ok"] = why == ""
	if why != "" {
		res["unmet"] = why
		x.fail(l.n)
	}
	x.r.Print(res)
}

func describeErr(m map[string]any, err error) {
	m["error"] = err.Error()
	if h, ok := hresultOf(err); ok {
		m["hresult"] = fmt.Sprintf("0x%08X", uint32(h))
		m["hresultName"] = h.String()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		m["cancelled"] = true
	}
}

func hresultOf(err error) (hresult.HRESULT, bool) {
	if err == nil {
		return hresult.S_OK, true
	}
	var h interface{ HRESULT() hresult.HRESULT }
	if errors.As(err, &h) {
		return h.HRESULT(), true
	}
	return 0, false
}

// outcome is what a command did.
type outcome struct {
	fields map[string]any
	err    error  // the command failed: the client, the server or a timeout
	script error  // the command could not run: no such handle now, ...
	data   []byte // what expect data= compares: read, ioctl, wait-event
	n      int    // what expect count= compares: read, write, ioctl
}

// check returns why l's expectation did not hold, "" when it did.
func (l *line) check(o outcome) string {
	if o.script != nil {
		return "the command did not run: " + o.script.Error()
	}
	w := l.want
	switch {
	case l.expectFail && o.err == nil:
		return "the command succeeded; ! wants it to fail"
	case !l.expectFail && !w.hasHR && o.err != nil:
		return "the command failed"
	}
	if w.hasHR {
		got, ok := hresultOf(o.err)
		if !ok {
			return fmt.Sprintf("no HRESULT (%v); want %v", o.err, w.hr)
		}
		if got != w.hr {
			return fmt.Sprintf("HRESULT %v; want %v", got, w.hr)
		}
	}
	if w.hasCount && o.n != w.count {
		return fmt.Sprintf("count %d; want %d", o.n, w.count)
	}
	if w.hasData && string(o.data) != string(w.data) {
		return fmt.Sprintf("data %s; want %s", short(o.data), short(w.data))
	}
	return ""
}

// short is b in hex, cut for a message.
func short(b []byte) string {
	const max = 32
	if len(b) > max {
		return fmt.Sprintf("%s... (%d bytes)", hex.EncodeToString(b[:max]), len(b))
	}
	if len(b) == 0 {
		return "(none)"
	}
	return hex.EncodeToString(b)
}

func (x *run) exec(ctx context.Context, l *line) outcome {
	r := x.r
	if r.srv == nil {
		return outcome{script: errors.New("no server")}
	}
	bound := func(def time.Duration) (context.Context, context.CancelFunc, time.Duration) {
		d := def
		if l.hasTimeout {
			d = l.timeout
		}
		if d <= 0 {
			c, cancel := context.WithCancel(ctx)
			return c, cancel, 0
		}
		c, cancel := context.WithTimeout(ctx, d)
		return c, cancel, d
	}
	// timedOut turns the end of a wait's own deadline into a message
	// that says what did not happen.
	timedOut := func(c context.Context, err error, d time.Duration, what string) outcome {
		if d > 0 && ctx.Err() == nil && errors.Is(c.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
			return outcome{fields: map[string]any{"timedOut": true}, err: errors.New(what)}
		}
		return outcome{err: err}
	}
	switch l.op {
	case "wait-device":
		c, cancel, d := bound(DefaultWait)
		defer cancel()
		dev, err := r.srv.WaitDevice(c, l.match)
		if err != nil {
			return timedOut(c, err, d, fmt.Sprintf("no %s after %v", describe(l.sel), d))
		}
		return outcome{fields: map[string]any{"device": dev}}
	case "wait-removed":
		c, cancel, d := bound(DefaultWait)
		defer cancel()
		for {
			var id *uint32
			for _, dev := range r.srv.Devices() {
				if l.match(dev) {
					id = &dev.ClientDeviceID
					break
				}
			}
			if id == nil {
				return outcome{fields: map[string]any{}}
			}
			if err := r.srv.WaitRemoved(c, *id); err != nil {
				return timedOut(c, err, d, fmt.Sprintf("%s still there after %v", describe(l.sel), d))
			}
		}
	case "devices":
		ds := r.srv.Devices()
		if ds == nil {
			ds = []server.Device{}
		}
		return outcome{fields: map[string]any{"devices": ds}}
	case "open":
		return x.open(ctx, l, bound)
	case "read", "write", "ioctl":
		h, err := r.handle(l.handle)
		if err != nil {
			return outcome{script: err}
		}
		limit := r.IOTimeout
		if limit <= 0 {
			limit = DefaultIO
		}
		c, cancel, _ := bound(limit)
		defer cancel()
		f := map[string]any{"handle": l.handle}
		var o outcome
		switch l.op {
		case "read":
			b, err := h.Read(c, l.offset, int(l.count))
			f["offset"], f["data"] = l.offset, wire.Bytes(b)
			o = outcome{err: err, data: b, n: len(b)}
		case "write":
			n, err := h.Write(c, l.offset, l.data)
			f["offset"] = l.offset
			o = outcome{err: err, n: n}
		case "ioctl":
			b, err := h.IoControl(c, l.code, l.data, int(l.count))
			f["code"], f["data"] = fmt.Sprintf("0x%08X", l.code), wire.Bytes(b)
			o = outcome{err: err, data: b, n: len(b)}
		}
		f["n"] = o.n
		o.fields = f
		return o
	case "close":
		r.hmu.Lock()
		h, ok := r.handles[l.handle]
		delete(r.handles, l.handle)
		r.hmu.Unlock()
		if !ok {
			return outcome{script: fmt.Errorf("no open handle %q", l.handle)}
		}
		h.Close()
		return outcome{fields: map[string]any{"handle": l.handle}}
	case "subscribe":
		if l.all {
			r.subscribeAll()
			return outcome{fields: map[string]any{"guid": "all"}}
		}
		r.subscribe(l.guid)
		return outcome{fields: map[string]any{"guid": l.guid}}
	case "wait-event":
		return x.waitEvent(ctx, l, bound)
	case "sleep":
		t := time.NewTimer(l.dur)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return outcome{err: ctx.Err()}
		}
		return outcome{fields: map[string]any{}}
	case "wait", "cancel":
		return x.join(ctx, l)
	}
	return outcome{script: fmt.Errorf("unknown command %q", l.op)}
}

func (x *run) open(ctx context.Context, l *line, bound func(time.Duration) (context.Context, context.CancelFunc, time.Duration)) outcome {
	r := x.r
	r.hmu.Lock()
	_, dup := r.handles[l.handle]
	if !dup {
		r.opening++
	}
	r.hmu.Unlock()
	if dup {
		return outcome{script: fmt.Errorf("handle %q is open already: close it first", l.handle)}
	}
	var h *server.Handle
	defer func() { r.named(l.handle, h) }()
	var dev *server.Device
	for _, d := range r.srv.Devices() {
		if l.match(d) {
			dev = &d
			break
		}
	}
	if dev == nil {
		return outcome{err: fmt.Errorf("no %s", describe(l.sel))}
	}
	c, cancel, _ := bound(DefaultWait)
	defer cancel()
	var err error
	h, err = r.srv.Open(c, dev.ClientDeviceID, l.openOpts...)
	if err != nil {
		return outcome{fields: map[string]any{"device": dev.ClientDeviceID}, err: err}
	}
	return outcome{fields: map[string]any{"handle": l.handle, "device": dev.ClientDeviceID, "channelId": h.ChannelID(), "clientVersion": h.ClientVersion()}}
}

func (x *run) waitEvent(ctx context.Context, l *line, bound func(time.Duration) (context.Context, context.CancelFunc, time.Duration)) outcome {
	r := x.r
	what := "custom event " + l.guid.String()
	if l.all {
		r.subscribeAll()
		what = "custom event"
	} else {
		r.subscribe(l.guid)
	}
	c, cancel, d := bound(DefaultWait)
	defer cancel()
	for {
		r.emu.Lock()
		for i, q := range r.queue {
			if l.all || q.GUID == l.guid {
				r.queue = append(r.queue[:i:i], r.queue[i+1:]...)
				r.queueBytes -= len(q.Data)
				r.emu.Unlock()
				f := map[string]any{"guid": q.GUID, "device": q.DeviceID, "data": wire.Bytes(q.Data)}
				if name := r.nameOf(q.Handle); name != "" {
					f["handle"] = name
				}
				return outcome{fields: f, data: q.Data}
			}
		}
		wake := r.wake
		r.emu.Unlock()
		select {
		case <-wake:
		case <-c.Done():
			if d > 0 && ctx.Err() == nil {
				return outcome{fields: map[string]any{"timedOut": true}, err: fmt.Errorf("no %s after %v", what, d)}
			}
			return outcome{err: c.Err()}
		}
	}
}

// join is wait and cancel: cancel ends the jobs' calls (a Specific
// IoCancel Request for one the client has), and both wait for the jobs
// to end.
func (x *run) join(ctx context.Context, l *line) outcome {
	var js []*job
	if l.all {
		js = x.order
	} else {
		for _, name := range l.jobs {
			js = append(js, x.jobs[name]) // Parse saw each started earlier
		}
	}
	names := []string{}
	var ended []string // cancel: the jobs that had ended already
	for _, j := range js {
		names = append(names, j.name)
		if l.op == "cancel" {
			select {
			case <-j.done:
				ended = append(ended, j.name)
			default:
				j.cancel()
			}
		}
	}
	for _, j := range js {
		select {
		case <-j.done:
		case <-ctx.Done():
			return outcome{err: ctx.Err()}
		}
	}
	f := map[string]any{"jobs": names}
	x.mu.Lock()
	var bad []string
	for _, j := range js {
		for _, n := range x.failed {
			if n == j.line {
				bad = append(bad, j.name)
			}
		}
	}
	x.mu.Unlock()
	if bad != nil {
		f["unmetJobs"] = bad
	}
	if ended != nil {
		f["endedBefore"] = ended
	}
	return outcome{fields: f}
}

// subscribeAll queues every custom event from now on; the events of
// single GUIDs are then no longer subscribed to apart (each would come
// twice).
func (r *Runner) subscribeAll() {
	r.emu.Lock()
	defer r.emu.Unlock()
	if r.all {
		return
	}
	r.all = true
	r.srv.SubscribeAll(r.customEvent)
	for g, unsubscribe := range r.subbed {
		unsubscribe()
		delete(r.subbed, g)
	}
}

// subscribe starts queueing events with GUID g, once. With "subscribe
// all" in force, those events are queued already.
func (r *Runner) subscribe(g wire.GUID) {
	r.emu.Lock()
	defer r.emu.Unlock()
	if r.subbed[g] != nil || r.all {
		return
	}
	r.subbed[g] = r.srv.Subscribe(g, r.customEvent)
}

func (r *Runner) nameOf(h *server.Handle) string {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	return r.names[h]
}

func (r *Runner) handle(name string) (*server.Handle, error) {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	h, ok := r.handles[name]
	if !ok {
		return nil, fmt.Errorf("no open handle %q (closed, or its open failed)", name)
	}
	return h, nil
}
