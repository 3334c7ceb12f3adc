package allow

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ListenRules are the addresses the user lets the session make the client
// listen on, for reverse forwards. Each is exact, HOST:PORT with a port
// 1-65535: no wildcards and no port 0, because a reverse forward opens a
// port on the client's machine, which the user should name whole.
type ListenRules struct {
	addrs map[string]bool // canonical HOST:PORT
}

// ParseListen parses one HOST:PORT per spec (IPv6 in brackets:
// [::1]:8080). An empty list allows no listener.
func ParseListen(specs []string) (*ListenRules, error) {
	l := &ListenRules{addrs: make(map[string]bool, len(specs))}
	for _, s := range specs {
		c, err := canonListen(s)
		if err != nil {
			return nil, fmt.Errorf("allow: listen rule %q: %w", s, err)
		}
		l.addrs[c] = true
	}
	return l, nil
}

// Allowed reports whether addr, a HOST:PORT, is one of the rules. Addresses
// compare as addresses ([::1]:80 is [0::1]:80) and names case-insensitively.
func (l *ListenRules) Allowed(addr string) bool {
	if l == nil {
		return false
	}
	c, err := canonListen(addr)
	return err == nil && l.addrs[c]
}

// String lists the rules, sorted, separated by spaces; "(no rule)" for none.
func (l *ListenRules) String() string {
	if l == nil || len(l.addrs) == 0 {
		return "(no rule)"
	}
	s := make([]string, 0, len(l.addrs))
	for a := range l.addrs {
		s = append(s, a)
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func canonListen(s string) (string, error) {
	if len(s) > maxRule {
		return "", fmt.Errorf("longer than %d bytes", maxRule)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", err
	}
	p, err := parsePort(port)
	if err != nil {
		return "", err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return "", fmt.Errorf("an address with a zone is not supported")
		}
		return netip.AddrPortFrom(a.Unmap(), p).String(), nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if !validName(name) {
		return "", fmt.Errorf("bad host %q", host)
	}
	return net.JoinHostPort(name, strconv.Itoa(int(p))), nil
}
