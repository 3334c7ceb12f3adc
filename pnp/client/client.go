package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/internal/lograte"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// Limits and defaults of the client role.
const (
	// DefaultMaxOutstanding bounds the requests one FileRedirectorChannel
	// instance has in progress at once, each from its arrival until its
	// reply has been written; more are answered ERROR_NO_SYSTEM_RESOURCES
	// without touching the device.
	DefaultMaxOutstanding = 256
	// DefaultMaxBufferedBytes bounds the bytes the client holds for
	// requests in progress, across all instances: read buffers, write
	// data, IOCTL input and output. A request's bytes are reserved before
	// anything is allocated for it and stay reserved until its reply has
	// been written (or dropped with its instance), so a server that stops
	// reading cannot pile up replies beyond the budget. Requests that
	// would go over are answered ERROR_NO_SYSTEM_RESOURCES (0x800705AA)
	// with no data, touching no device, so a server cannot make the
	// client allocate 16 MiB per request without limit.
	DefaultMaxBufferedBytes = 256 << 20
	// DefaultMaxHandles bounds the FileRedirectorChannel instances open at
	// once; more are refused (the server's open fails).
	DefaultMaxHandles = 4096
	// DefaultWriteTimeout bounds one message write (Config.WriteTimeout):
	// its context expires then, and a server that has not taken the
	// message by then has the instance (FileRedirectorChannel or PNPDR)
	// closed — even when the backend's Write does not return — so the
	// replies queued behind it are dropped and give their bytes back.
	DefaultWriteTimeout = 10 * time.Second
	// MaxPendingEvents bounds the custom events one instance has queued
	// for sending; a device that raises more is not heard until they drain.
	MaxPendingEvents = 64
	// DefaultMaxDevices bounds the devices one client redirects.
	DefaultMaxDevices = 1024
	// MaxAdditionBytes is the size a Client Device Addition message grows
	// to before the client starts another one (a single larger device
	// description still goes alone).
	MaxAdditionBytes = 64 << 10
)

// Config tunes a Client. The zero value is usable.
type Config struct {
	Logger *slog.Logger // nil: slog.Default()

	// MajorVersion and MinorVersion go in the Client Version message
	// (2.2.1.2.2); both 0 means 1 and 5, what Windows sends (Appendix A
	// <4>, <5>).
	MajorVersion, MinorVersion uint32
	// IOVersion is the Client Capabilities Reply version (2.2.2.2.2):
	// wire.IOVersionCustomEvents (6, the default) or
	// wire.IOVersionNoCustomEvents (4), which turns custom events off.
	IOVersion uint16
	// DevicesPerAddition caps the devices in one Client Device Addition
	// message (0: wire.MaxDevicesPerAddition).
	DevicesPerAddition int

	MaxDevices     int // devices at once (DefaultMaxDevices)
	MaxOutstanding int // per instance (DefaultMaxOutstanding)
	MaxHandles     int // instances at once (DefaultMaxHandles)
	// MaxBufferedBytes bounds the data of requests in progress, across
	// all instances (DefaultMaxBufferedBytes).
	MaxBufferedBytes int64
	WriteTimeout     time.Duration // per message write, then the instance is closed (DefaultWriteTimeout)
}

// ErrClosed is returned by a Client's methods after Close.
var ErrClosed = errors.New("pnp/client: closed")

// Client is the MS-RDPEPNP client role for one RDP connection: the devices
// it redirects and the listeners for PNPDR and FileRedirectorChannel. Its
// methods are safe from any goroutine.
type Client struct {
	cfg Config
	log *slog.Logger
	// refusals keeps a server's refused requests from each making a log
	// line (lograte): they are counted past a few per window.
	refusals *lograte.Limiter

	mu      sync.Mutex
	nextID  uint32
	devices map[uint32]*devEntry
	removed map[uint32]bool
	pnpdrs  map[*pnpdr]struct{}
	files   map[*fileChan]struct{}
	closed  bool

	wg       sync.WaitGroup // every goroutine the client starts
	buffered atomic.Int64   // bytes reserved by requests in progress
}

type devEntry struct {
	id        uint32
	dev       device.Device
	desc      device.Description
	pnp       wire.PNPDeviceDescription
	announced bool                   // sent in a Client Device Addition on some PNPDR instance
	handles   map[*fileChan]struct{} // instances that opened (or are opening) it
}

// DeviceInfo describes one device of a Client.
type DeviceInfo struct {
	ID          uint32 // ClientDeviceID
	Device      device.Device
	Description device.Description
	Announced   bool // the server has been told about it
	Handles     int  // FileRedirectorChannel instances that opened it
}

// New returns a client redirecting devices, which get ClientDeviceIDs 1,
// 2, ... in order. It fails if a description would not encode.
func New(cfg Config, devices ...device.Device) (*Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MajorVersion == 0 && cfg.MinorVersion == 0 {
		cfg.MajorVersion, cfg.MinorVersion = wire.WindowsMajorVersion, wire.WindowsMinorVersion
	}
	if cfg.IOVersion == 0 {
		cfg.IOVersion = wire.IOVersionCustomEvents
	}
	if cfg.DevicesPerAddition <= 0 || cfg.DevicesPerAddition > wire.MaxDevicesPerAddition {
		cfg.DevicesPerAddition = wire.MaxDevicesPerAddition
	}
	if cfg.MaxOutstanding <= 0 {
		cfg.MaxOutstanding = DefaultMaxOutstanding
	}
	if cfg.MaxDevices <= 0 {
		cfg.MaxDevices = DefaultMaxDevices
	}
	if cfg.MaxHandles <= 0 {
		cfg.MaxHandles = DefaultMaxHandles
	}
	if cfg.MaxBufferedBytes <= 0 {
		cfg.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	c := &Client{
		cfg: cfg, log: cfg.Logger, refusals: lograte.New(0, 0),
		devices: map[uint32]*devEntry{}, removed: map[uint32]bool{},
		pnpdrs: map[*pnpdr]struct{}{}, files: map[*fileChan]struct{}{},
	}
	for _, d := range devices {
		if _, err := c.AddDevice(d); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Register registers the client's listeners for PNPDR and
// FileRedirectorChannel with r. A Client serves one connection: register
// it with one Registrar.
func (c *Client) Register(r dvc.Registrar) error {
	if err := r.Listen(wire.ChannelPNPDR, c.PNPDRListener()); err != nil {
		return err
	}
	return r.Listen(wire.ChannelFileRedirector, c.FileRedirectorListener())
}

// PNPDRListener returns the listener for the PNPDR channel.
func (c *Client) PNPDRListener() dvc.Listener { return dvc.ListenerFunc(c.acceptPNPDR) }

// FileRedirectorListener returns the listener for FileRedirectorChannel.
func (c *Client) FileRedirectorListener() dvc.Listener { return dvc.ListenerFunc(c.acceptFile) }

// AddDevice adds d to the devices the client redirects and returns its
// ClientDeviceID. IDs are never reused. Servers already told about devices
// hear of it at once; others when they send Authenticated Client.
func (c *Client) AddDevice(d device.Device) (uint32, error) {
	desc := d.Describe()
	if err := desc.Validate(); err != nil {
		return 0, fmt.Errorf("pnp/client: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, ErrClosed
	}
	if len(c.devices) >= c.cfg.MaxDevices {
		return 0, fmt.Errorf("pnp/client: already redirecting %d devices", len(c.devices))
	}
	c.nextID++
	e := &devEntry{id: c.nextID, dev: d, desc: desc, pnp: desc.PNP(c.nextID), handles: map[*fileChan]struct{}{}}
	c.devices[e.id] = e
	for p := range c.pnpdrs {
		p.announceLocked()
	}
	return e.id, nil
}

// RemoveDevice stops redirecting device id, as doc.go describes: the
// server is told, operations in progress are cancelled, later requests
// fail with ERROR_DEV_NOT_EXIST. It returns once every backend handle of
// the device is closed, or when ctx is done.
func (c *Client) RemoveDevice(ctx context.Context, id uint32) error {
	c.mu.Lock()
	e := c.devices[id]
	if e == nil {
		c.mu.Unlock()
		return fmt.Errorf("pnp/client: no device %d", id)
	}
	delete(c.devices, id)
	c.removed[id] = true
	for p := range c.pnpdrs {
		p.removeLocked(id)
	}
	var chans []*fileChan
	for fc := range e.handles {
		chans = append(chans, fc)
	}
	c.mu.Unlock()
	for _, fc := range chans {
		fc.revoke()
	}
	for _, fc := range chans {
		select {
		case <-fc.handleDone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Devices lists the devices the client redirects, by ID.
func (c *Client) Devices() []DeviceInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]DeviceInfo, 0, len(c.devices))
	for _, e := range c.devices {
		out = append(out, DeviceInfo{ID: e.id, Device: e.dev, Description: e.desc, Announced: e.announced, Handles: len(e.handles)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Close closes every channel instance the client has, cancels every
// operation, waits for them and for every backend handle to close, and
// refuses new instances. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	var ps []*pnpdr
	for p := range c.pnpdrs {
		ps = append(ps, p)
	}
	var fs []*fileChan
	for fc := range c.files {
		fs = append(fs, fc)
	}
	c.mu.Unlock()
	for _, p := range ps {
		p.shutdown()
		p.ch.Close()
	}
	for _, fc := range fs {
		fc.shutdown()
		fc.ch.Close()
	}
	c.wg.Wait()
	c.refusals.Flush(c.log)
	return nil
}

// errorAlreadyExists is HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS), the
// refusal of a second PNPDR instance.
const errorAlreadyExists hresult.HRESULT = 0x800700B7

// acceptPNPDR accepts a PNPDR instance unless one is already open:
// MS-RDPEPNP 2.1 has "one active instance of the PNPDR channel" as the
// control channel of a connection, so a server opening more is refused
// (ERROR_ALREADY_EXISTS) and the open one carries on. Once it has closed,
// the server may open a new one, which hears of every device again.
func (c *Client) acceptPNPDR(ch dvc.Channel) (dvc.Handler, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if len(c.pnpdrs) > 0 {
		c.log.Warn("refusing a second PNPDR instance: one is open (MS-RDPEPNP 2.1)", "id", ch.ID())
		return nil, hresult.New("pnp/client: PNPDR", errorAlreadyExists)
	}
	p := &pnpdr{
		c: c, ch: ch, log: c.log.With("channel", ch.Name(), "id", ch.ID()),
		announced: map[uint32]bool{}, wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	c.pnpdrs[p] = struct{}{}
	c.wg.Add(1)
	go p.writer()
	p.log.Debug("PNPDR opened")
	return p, nil
}

func (c *Client) acceptFile(ch dvc.Channel) (dvc.Handler, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if len(c.files) >= c.cfg.MaxHandles {
		c.refusals.Log(c.log, slog.LevelWarn, "handles", "refusing FileRedirectorChannel: too many open", "max", c.cfg.MaxHandles)
		return nil, hresult.New("pnp/client: FileRedirectorChannel", device.ErrorNoSystemResources)
	}
	fc := &fileChan{
		c: c, ch: ch, log: c.log.With("channel", ch.Name(), "id", ch.ID()),
		pending: map[uint32]*op{}, handleDone: make(chan struct{}),
	}
	c.files[fc] = struct{}{}
	return fc, nil
}
