package bridge

import (
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// Framing is how a bridge cuts the local socket's bytes into channel
// messages.
type Framing int

const (
	// Stream carries bytes: each socket read (at most MaxChunk bytes) is
	// one channel message, and each channel message is written to the
	// socket as is. Boundaries mean nothing.
	Stream Framing = iota
	// Message carries messages: on the socket and on the channel alike,
	// each message is a u32 little-endian length, then that many bytes
	// (at most MaxMessage).
	Message
)

func (f Framing) String() string {
	if f == Message {
		return "message"
	}
	return "stream"
}

// ParseFraming reads "stream" or "message".
func ParseFraming(s string) (Framing, error) {
	switch s {
	case "stream":
		return Stream, nil
	case "message":
		return Message, nil
	}
	return Stream, fmt.Errorf("bridge: framing %q: want stream or message", s)
}

// Addr is a local socket: Network "unix" with a path, or "tcp" with
// host:port.
type Addr struct {
	Network string
	Address string
}

func (a Addr) String() string { return a.Network + ":" + a.Address }

// ParseAddr reads "unix:PATH" or "tcp:HOST:PORT". A unix PATH is taken
// whole, colons and all.
func ParseAddr(s string) (Addr, error) {
	network, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return Addr{}, fmt.Errorf("bridge: socket %q: want unix:PATH or tcp:HOST:PORT", s)
	}
	switch network {
	case "unix":
		if strings.IndexByte(rest, 0) >= 0 {
			return Addr{}, fmt.Errorf("bridge: socket %q: a path cannot hold a NUL", s)
		}
	case "tcp":
		if _, port, err := net.SplitHostPort(rest); err != nil || port == "" {
			return Addr{}, fmt.Errorf("bridge: socket %q: want tcp:HOST:PORT", s)
		}
	default:
		return Addr{}, fmt.Errorf("bridge: socket %q: network %q: want unix or tcp", s, network)
	}
	return Addr{Network: network, Address: rest}, nil
}

// Spec is one bridge as the client-side plugins name it:
//
//	NAME=[FRAMING:]unix:PATH    NAME=[FRAMING:]tcp:HOST:PORT
//
// FRAMING is stream (the default) or message. FreeRDP splits its /dvc
// option at commas, so nothing here uses one; NAME ends at the first "=".
type Spec struct {
	Channel string
	Addr    Addr
	Framing Framing
}

func (s Spec) String() string {
	return s.Channel + "=" + s.Framing.String() + ":" + s.Addr.String()
}

// ParseSpec reads a Spec.
func ParseSpec(s string) (Spec, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return Spec{}, fmt.Errorf("bridge: %q: want NAME=[stream:|message:]unix:PATH or NAME=[stream:|message:]tcp:HOST:PORT", s)
	}
	sp := Spec{Channel: name}
	if f, after, ok := strings.Cut(rest, ":"); ok {
		if fr, err := ParseFraming(f); err == nil {
			sp.Framing, rest = fr, after
		}
	}
	a, err := ParseAddr(rest)
	if err != nil {
		return Spec{}, fmt.Errorf("%w (in %q)", err, s)
	}
	sp.Addr = a
	return sp, nil
}

// Register parses each of specs (see Spec) and registers a Client for
// it on r: what the client-side plugins do with their bridge settings.
// Nothing is registered unless every spec parses; a channel named twice
// is an error.
func Register(r dvc.Registrar, specs []string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	parsed := make([]Spec, 0, len(specs))
	seen := map[string]bool{}
	for _, s := range specs {
		sp, err := ParseSpec(s)
		if err != nil {
			return err
		}
		if seen[sp.Channel] {
			return fmt.Errorf("bridge: channel %q is bridged twice", sp.Channel)
		}
		seen[sp.Channel] = true
		parsed = append(parsed, sp)
	}
	for _, sp := range parsed {
		c := NewClient(ClientConfig{Addr: sp.Addr, Framing: sp.Framing, Logger: log.With("bridge", sp.Channel)})
		if err := r.Listen(sp.Channel, c.Listener()); err != nil {
			return fmt.Errorf("bridge: %s: %w", sp, err)
		}
		log.Info("bridge", "channel", sp.Channel, "socket", sp.Addr.String(), "framing", sp.Framing.String())
	}
	return nil
}
