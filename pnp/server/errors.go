package server

import (
	"errors"
	"fmt"
	"io"

	"github.com/rdpdvc/rdpdvc/dvc"
)

var (
	// ErrClosed: the Server or the Handle was closed by this end.
	ErrClosed = errors.New("pnp/server: closed")

	// ErrVersionTimeout: the client sent no Client Version within
	// Config.VersionTimeout; the server has ended.
	ErrVersionTimeout = errors.New("pnp/server: no Client Version within Config.VersionTimeout")
	// ErrNoDevice: Open named a device that is not in the client device
	// list (never announced, declined, or already removed).
	ErrNoDevice = errors.New("pnp/server: no such device")
	// ErrDeviceRemoved: the client removed the device (Client Device
	// Removal, 3.3.5.1.2.2) while the handle was open.
	ErrDeviceRemoved = errors.New("pnp/server: device removed")
	// ErrNotAuthenticated: Open before the Authenticated Client message
	// was sent.
	ErrNotAuthenticated = errors.New("pnp/server: Authenticated Client not sent yet")
	// ErrChannelLost: the handle's FileRedirectorChannel instance ended
	// under a call, because the client closed it or the connection died
	// (then the error also wraps dvc.ErrConnectionLost).
	ErrChannelLost = errors.New("pnp/server: channel lost")
	// ErrProtocol: the client broke a rule the server enforces by closing
	// the channel instance; the error also wraps the wire package's error,
	// which names the message and field.
	ErrProtocol = errors.New("pnp/server: protocol violation")
	// ErrCancelTimeout: a call whose context had ended could not finish
	// within Config.CancelTimeout (the client sent no reply after the
	// Specific IoCancel Request, or stopped reading so that a request
	// could not be written), and the channel was closed.
	ErrCancelTimeout = errors.New("pnp/server: no reply after IoCancel")
)

// lostError classifies why a channel's Read failed.
func lostError(what string, err error) error {
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: %s closed by the client", ErrChannelLost, what)
	case errors.Is(err, dvc.ErrClosed):
		return fmt.Errorf("%w: %s", ErrClosed, what)
	}
	return fmt.Errorf("%w: %s: %w", ErrChannelLost, what, err)
}

func protocolError(err error) error { return fmt.Errorf("%w: %w", ErrProtocol, err) }
