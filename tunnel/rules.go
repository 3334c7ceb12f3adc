package tunnel

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/tunnel/allow"
	"github.com/rdpdvc/rdpdvc/tunnel/socks"
	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// NewRuledClient is the client side with its user's rules, the way every
// client program and plugin builds it: connections through rs.Dial
// (names resolved on this side and checked after resolution, the checked
// address the one connected), reverse listeners only at the addresses of
// ls, and dial errors answered with socks.ReplyFor's reply codes. Set
// further fields before registering it.
func NewRuledClient(rs *allow.Rules, ls *allow.ListenRules, log *slog.Logger) *Client {
	return &Client{
		Dial:   rs.Dial,
		Code:   func(err error) byte { return byte(socks.ReplyFor(err)) },
		Logger: log,
		Listen: func(host string, port uint16) (net.Listener, error) {
			a := net.JoinHostPort(host, strconv.Itoa(int(port)))
			if !ls.Allowed(a) {
				return nil, &allow.DeniedError{Host: host, Port: port, Rule: "allowed listen addresses: " + ls.String()}
			}
			return net.Listen("tcp", a)
		},
	}
}

// Plugin options. The FreeRDP plugin's tunnel feature and the Windows
// plugin's Tunnel value take one option per argument, each allow:RULE
// (tunnel/allow's syntax, as tunnel-client -allow) or listen:HOST:PORT
// (as tunnel-client -allow-listen); no commas, which FreeRDP splits at.
const (
	OptionAllow  = "allow:"
	OptionListen = "listen:"
)

// ParseOptions parses plugin options into the two rule sets. Naming
// nothing is an error: a tunnel that may reach nothing is a mistake.
func ParseOptions(opts []string) (*allow.Rules, *allow.ListenRules, error) {
	var rules, listens []string
	for _, o := range opts {
		switch {
		case strings.HasPrefix(o, OptionAllow):
			rules = append(rules, strings.TrimPrefix(o, OptionAllow))
		case strings.HasPrefix(o, OptionListen):
			listens = append(listens, strings.TrimPrefix(o, OptionListen))
		default:
			return nil, nil, fmt.Errorf("tunnel: option %q: want %sRULE or %sHOST:PORT", o, OptionAllow, OptionListen)
		}
	}
	if len(rules) == 0 && len(listens) == 0 {
		return nil, nil, fmt.Errorf("tunnel: nothing allowed; give %sRULE (where connections may go) or %sHOST:PORT", OptionAllow, OptionListen)
	}
	rs, err := allow.Parse(rules)
	if err != nil {
		return nil, nil, fmt.Errorf("tunnel: %s: %w", OptionAllow, err)
	}
	ls, err := allow.ParseListen(listens)
	if err != nil {
		return nil, nil, fmt.Errorf("tunnel: %s: %w", OptionListen, err)
	}
	return rs, ls, nil
}

// RegisterOptions is a plugin's tunnel: it parses opts (ParseOptions),
// warns on log when they allow everything, and registers the client on
// r behind kit.Reframe, since behind xrdp chansrv may merge or split
// the server's messages. Close the client when the plugin ends.
func RegisterOptions(r dvc.Registrar, opts []string, log *slog.Logger) (*Client, error) {
	rs, ls, err := ParseOptions(opts)
	if err != nil {
		return nil, err
	}
	if rs.AllowsAll() {
		log.Warn("tunnel: allow:* lets the RDP session connect anywhere this machine can reach, its local network and loopback services included")
	}
	log.Info("tunnel rules", "allow", rs.String(), "listen", ls.String())
	c := NewRuledClient(rs, ls, log)
	c.init()
	if err := r.Listen(wire.ChannelName, kit.Reframe(c, wire.Framer, wire.MaxMessage)); err != nil {
		return nil, err
	}
	return c, nil
}
