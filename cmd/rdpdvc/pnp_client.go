package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/pnp/client"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
	"github.com/rdpdvc/rdpdvc/portable"
	"github.com/rdpdvc/rdpdvc/trace"
)

func init() {
	register(&command{
		name:    "pnp-client",
		summary: "redirect devices to an RDP server (MS-RDPEPNP client role): files, memory, emulated",
		run:     runPNPClient,
	})
}

const pnpClientUsage = `usage: rdpdvc pnp-client [-connect host:port] -device SPEC [-device SPEC ...] [flags]

Redirects the devices named by -device to the RDP server at -connect over
the portable transport, as an RDP client does with MS-RDPEPNP: it answers
PNPDR, announces the devices once the server has authenticated it, and
services CreateFile, Read, Write, IOControl and IoCancel on every
FileRedirectorChannel the server opens. Only the devices named here are
exposed. ClientDeviceIDs are 1, 2, ... in the order given, and are
printed at start.

SPEC is KIND:ARG followed by comma-separated options:

  file:PATH[,ro][,maxsize=SIZE]
                        a file, or a block or character device node. Each
                        CreateFile opens the file found at start with the
                        disposition asked for (a writable file may be
                        truncated if the server asks, or created if PATH did
                        not exist at start; a file put at PATH later is
                        refused, never changed). ro: write-protected; writes
                        and dispositions that would create or truncate fail
                        with HRESULT_FROM_WIN32(ERROR_WRITE_PROTECT)
                        0x80070013. maxsize: a write ending beyond SIZE bytes
                        (K, M, G, T and KiB ... TiB) fails with
                        HRESULT_FROM_WIN32(ERROR_DISK_FULL) 0x80070070 and
                        writes nothing; default: no limit, the file grows as
                        a local file would.
  mem:SIZE              a zeroed memory device of SIZE bytes (4096, 64KiB,
                        64MiB, 1GiB; K, M, G mean KiB, MiB, GiB).
  emu:NAME[,size=SIZE]  an emulated device with the demo I/O controls:
                        0x00222000 echo, 0x00222004 wait (uint32 ms input;
                        none: until cancelled), 0x00222008 raise a custom
                        event {7D3E4C1A-5B2F-4E8D-9A61-0C2B3D4E5F60} with
                        the input as data. size: storage for Read/Write
                        (default 64KiB; 0: none).

Description options, for any kind (repeat an option to list several):

  hwid=ID               HardwareId (default RDPDVC\FILE, RDPDVC\MEM, RDPDVC\EMU)
  compat=ID             CompatibilityID (default RDPDVC\DEVICE)
  desc=TEXT             DeviceDescription text
  iface=GUID            InterfaceGUIDArray entry, {xxxxxxxx-xxxx-...}
  container=GUID        ContainerId
  caps=N                DeviceCaps bits: 1 lock, 2 eject, 4 removable,
                        8 surprise-removal-ok (decimal or 0x hex)
  optional              CustomFlag 1: the server may decline the device

Write a comma inside a value as \, (desc=Disk\, 64 MiB). The FreeRDP
plugin takes the same SPEC with colons instead of commas, since FreeRDP
splits /dvc options at commas: /dvc:rdpdvc,pnp=file:/tmp/disk.img:ro
(\: for a colon in a value; see docs/linux.md). Package pnp/device
(ParseSpec) parses both.

With -stdin, lines on standard input change the devices while connected
(hot-plug), for scripts and demos:

  add SPEC              redirect one more device; prints "added ID"
  remove ID             stop redirecting device ID (the server is told,
                        its open handles fail from then on); prints "removed ID"
  list                  prints "ID<TAB>handles<TAB>description" per device
  event ID [HEX]        have emulated device ID raise a custom event
                        {7D3E4C1A-...} with data HEX on every handle open on
                        it with custom events; prints "event ID N", N the
                        handles told

IDs are those of the current connection (with -reconnect, a new connection
numbers the devices left 1, 2, ... again). The client stops when standard
input ends: keep it open for as long as the devices should stay.

Exit status: 0 when the server hung up, at the end of -stdin, or on
Ctrl+C; 1 when the connection failed; 2 for bad usage.

Example:

  rdpdvc pnp-client -connect 127.0.0.1:3390 \
    -device 'file:/tmp/disk.img,ro,desc=Test disk' \
    -device 'mem:64MiB,hwid=USB\VID_1234&PID_5678,caps=0x4' -device emu:demo

flags:
`

type deviceSpecs []string

func (d *deviceSpecs) String() string     { return strings.Join(*d, " ") }
func (d *deviceSpecs) Set(s string) error { *d = append(*d, s); return nil }

// runPNPClient is `rdpdvc pnp-client`.
func runPNPClient(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		specs     deviceSpecs
		addr      string
		retry     time.Duration
		reconnect bool
		ioVersion uint
		stdin     bool
		lf        cli.LogFlags
		tf        cli.TraceFlag
	)
	fs := flag.NewFlagSet("rdpdvc pnp-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), pnpClientUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&addr, "connect", cli.DefaultAddr, "portable transport: connect to the RDP server at `host:port`")
	fs.Var(&specs, "device", "a device to redirect: `SPEC` as above (repeatable)")
	fs.DurationVar(&retry, "retry", 10*time.Second, "keep trying to connect for this long")
	fs.BoolVar(&reconnect, "reconnect", false, "when the server goes away, connect again (until Ctrl+C)")
	fs.UintVar(&ioVersion, "io-version", uint(wire.IOVersionCustomEvents), "FileRedirectorChannel version to announce: 6 (custom events) or 4 (none)")
	fs.BoolVar(&stdin, "stdin", false, "read add/remove/list commands from standard input (hot-plug)")
	lf.Register(fs)
	tf.Register(fs)
	if code, ok := cli.ParseArgs(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 || (len(specs) == 0 && !stdin) || (ioVersion != 4 && ioVersion != 6) {
		fmt.Fprintln(stderr, "rdpdvc pnp-client: want at least one -device (or -stdin), -io-version 4 or 6, and no arguments (-h for help)")
		return 2
	}
	devs := make([]device.Device, 0, len(specs))
	for _, s := range specs {
		d, err := device.ParseSpec(s)
		if err != nil {
			fmt.Fprintf(stderr, "rdpdvc pnp-client: -device %q: %v\n", s, err)
			return 2
		}
		devs = append(devs, d)
	}
	log, err := lf.Logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc pnp-client:", err)
		return 2
	}
	cli.WarnExposed(stderr, addr)
	for i, d := range devs {
		desc := d.Describe()
		log.Info("device", "ClientDeviceID", i+1, "spec", specs[i], "description", desc.Text, "hardwareIds", strings.Join(desc.HardwareIDs, ";"))
	}
	cfg := client.Config{Logger: log, IOVersion: uint16(ioVersion)}
	hp := &hotplug{devs: devs, out: stdout}
	rec, err := tf.Recorder(trace.Client)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc pnp-client:", err)
		return 1
	}
	defer rec.Close()
	if stdin {
		// The end of standard input is the end of the session: a script
		// that pipes commands in ends the client with its last line.
		sctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			hp.readCommands(sctx, pnpClientStdin, log)
			log.Info("standard input ended; stopping")
			stop()
		}()
		ctx = sctx
	}
	if reconnect {
		retry = -1 // until Ctrl+C, as -reconnect says
	}
	return cli.Reconnect(ctx, reconnect, log, func(ctx context.Context) error {
		return pnpServe(ctx, addr, retry, cfg, hp, rec, log)
	})
}

// pnpServe serves one connection: a fresh client.Client over the same
// device backends.
func pnpServe(ctx context.Context, addr string, retry time.Duration, cfg client.Config, hp *hotplug, rec *trace.Recorder, log *slog.Logger) error {
	conn, err := cli.Redial(ctx, addr, retry, "is rdpdvc pnp-server -listen running?", log, func(ctx context.Context) (*portable.Client, error) {
		return portable.Dial(ctx, addr, portable.Config{Logger: log})
	})
	if err != nil {
		return err
	}
	c, err := hp.start(cfg)
	if err == nil {
		err = c.Register(rec.Registrar(conn))
	}
	if err != nil {
		conn.Close()
		return err
	}
	log.Info("connected; redirecting devices", "addr", addr, "devices", len(c.Devices()))
	err = conn.Run(ctx)
	hp.stop(c)
	c.Close()
	return err
}

// pnpClientStdin is where -stdin reads commands; tests replace it.
var pnpClientStdin io.Reader = os.Stdin

// hotplug is the program's device list, which -stdin commands change,
// and the client of the current connection, if any.
type hotplug struct {
	mu   sync.Mutex
	devs []device.Device
	c    *client.Client
	out  io.Writer
}

func (h *hotplug) start(cfg client.Config) (*client.Client, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, err := client.New(cfg, h.devs...)
	if err == nil {
		h.c = c
	}
	return c, err
}

func (h *hotplug) stop(c *client.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.c == c {
		h.c = nil
	}
}

// readCommands serves -stdin until r ends.
func (h *hotplug) readCommands(ctx context.Context, r io.Reader, log *slog.Logger) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := h.command(ctx, line); err != nil {
			log.Error("command failed", "command", line, "err", err)
		}
	}
}

func (h *hotplug) command(ctx context.Context, line string) error {
	verb, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	h.mu.Lock()
	defer h.mu.Unlock()
	switch verb {
	case "add":
		d, err := device.ParseSpec(arg)
		if err != nil {
			return err
		}
		id := uint32(len(h.devs) + 1)
		if h.c != nil {
			if id, err = h.c.AddDevice(d); err != nil {
				return err
			}
		}
		h.devs = append(h.devs, d)
		fmt.Fprintf(h.out, "added %d\n", id)
	case "remove":
		n, err := strconv.ParseUint(arg, 10, 32)
		if err != nil {
			return fmt.Errorf("remove: want a device ID: %w", err)
		}
		id := uint32(n)
		var d device.Device
		if h.c != nil {
			for _, di := range h.c.Devices() {
				if di.ID == id {
					d = di.Device
				}
			}
		} else if id >= 1 && int(id) <= len(h.devs) {
			d = h.devs[id-1]
		}
		if d == nil {
			return fmt.Errorf("remove: no device %d", id)
		}
		for i, x := range h.devs {
			if x == d {
				h.devs = append(h.devs[:i:i], h.devs[i+1:]...)
				break
			}
		}
		if h.c != nil {
			if err := h.c.RemoveDevice(ctx, id); err != nil {
				return err
			}
		}
		fmt.Fprintf(h.out, "removed %d\n", id)
	case "event":
		idText, data, _ := strings.Cut(arg, " ")
		n, err := strconv.ParseUint(idText, 10, 32)
		if err != nil {
			return fmt.Errorf("event: want a device ID: %w", err)
		}
		payload, err := hex.DecodeString(strings.TrimSpace(data))
		if err != nil {
			return fmt.Errorf("event: data: %w", err)
		}
		var emu *device.Emulated
		if h.c != nil {
			for _, di := range h.c.Devices() {
				if di.ID == uint32(n) {
					emu, _ = di.Device.(*device.Emulated)
				}
			}
		}
		if emu == nil {
			return fmt.Errorf("event: no emulated device %d on this connection", n)
		}
		told := emu.RaiseEvent(device.Event{GUID: device.DemoEventGUID, Data: payload})
		fmt.Fprintf(h.out, "event %d %d\n", n, told)
	case "list":
		if h.c == nil {
			for i, d := range h.devs {
				fmt.Fprintf(h.out, "%d\t0\t%s\n", i+1, d.Describe().Text)
			}
			break
		}
		for _, di := range h.c.Devices() {
			fmt.Fprintf(h.out, "%d\t%d\t%s\n", di.ID, di.Handles, di.Description.Text)
		}
	default:
		return fmt.Errorf("unknown command %q (want add, remove, list or event)", verb)
	}
	return nil
}
