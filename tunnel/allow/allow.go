// Package allow holds the client side's rules of where tunnelled
// connections may go. The client of an RDP connection decides: the server
// side (the session) only asks, so nothing is allowed until the user names
// it, and a name sent by the session is resolved here and checked after
// resolution.
//
// # Rules
//
// One rule per argument:
//
//	HOST[:PORTS]         a DNS name, matched case-insensitively against the name the session sent
//	*.SUFFIX[:PORTS]     every name strictly below SUFFIX (a.example.com, not example.com)
//	IP[:PORTS]           one address, IPv4 or IPv6
//	CIDR[:PORTS]         an address prefix: 10.0.0.0/8, fd00::/8
//	*                    every port of every host (the caller should warn)
//
// PORTS is N, N-M (inclusive) or *, or a list of them separated by commas
// (80,443), which is the same as one rule per item; a rule without PORTS
// allows every port. Commas cannot be used inside FreeRDP's plugin
// arguments, where they separate the arguments: there, give one rule per
// port range. An IPv6 address or prefix with PORTS is written in
// brackets: [::1]:22, [fd00::/8]:1-1024 or [fd00::]/8:1-1024; without
// brackets ("::1", "fd00::/8") it allows every port.
//
// # Matching
//
// A connection to HOST:PORT is allowed if a name rule matches HOST itself
// (then every address HOST resolves to is allowed: the user trusts that
// name), or if an address rule matches an address HOST resolves to. An IP
// literal is not resolved and matches only address rules. IPv4-mapped IPv6
// addresses are matched as the IPv4 address they are. Dial dials only the
// addresses it checked, never the name again, so an answer that changes
// between the check and the dial (DNS rebinding) cannot reach an address
// no rule allows. A name that no name rule matches, asked for a port no
// address rule covers, is refused without a DNS query.
//
// So an address rule means names are resolved: with 10.0.0.0/8:443, any
// name the session sends for port 443 is looked up in this side's DNS, to
// see whether it lands in 10.0.0.0/8. To give the session no way to map
// that DNS, a name that fails to resolve there is refused exactly as one
// that resolves outside the rules is (SOCKS reply 2, not 4); only a name
// a name rule allows gets the resolver's own error. Host names from the
// session must be plain ASCII DNS names (letters, digits, '-', '_', no
// empty label), lower-cased in ASCII only. The unspecified addresses
// (0.0.0.0, ::) are matched as the loopback addresses they reach.
package allow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ErrDenied is what every refusal Is: errors.Is(err, ErrDenied).
var ErrDenied = errors.New("allow: denied")

// DeniedError is a refusal by the rules. The caller logs it once.
type DeniedError struct {
	Host string     // the host asked for, as the session sent it
	Port uint16     // the port asked for
	Addr netip.Addr // the first address Host resolved to; zero if it was not resolved
	Rule string     // the rules that were checked, none of which matched
}

func (e *DeniedError) Error() string {
	where := net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port)))
	if e.Addr.IsValid() && e.Addr.String() != e.Host {
		where += " (" + e.Addr.String() + ")"
	}
	return "allow: " + where + " matches no rule: " + e.Rule
}

// Is reports target == ErrDenied.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Rules is a parsed rule list. The zero value and Parse(nil) allow nothing.
// Rules is safe for concurrent use once built; set Lookup and Dialer
// before the first Dial.
type Rules struct {
	rules []rule

	// Lookup resolves a name to its addresses. Nil means
	// net.DefaultResolver.LookupNetIP(ctx, "ip", host). Tests set it to
	// resolve without DNS.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)

	// Dialer dials the checked addresses; nil means a zero net.Dialer.
	Dialer *net.Dialer
}

type ruleKind byte

const (
	kindAll    ruleKind = iota // *
	kindName                   // HOST
	kindSuffix                 // *.SUFFIX; name holds ".SUFFIX"
	kindPrefix                 // IP or CIDR
)

type rule struct {
	kind   ruleKind
	name   string       // kindName, kindSuffix: lower case, no trailing dot
	prefix netip.Prefix // kindPrefix; an IP is a /32 or /128
	lo, hi uint16       // ports, inclusive
}

// Parse parses one rule per spec (the syntax is in the package doc). An
// empty list gives rules that allow nothing.
func Parse(specs []string) (*Rules, error) {
	r := &Rules{}
	for _, s := range specs {
		rs, err := parseRule(s)
		if err != nil {
			return nil, err
		}
		r.rules = append(r.rules, rs...)
	}
	return r, nil
}

// maxRule bounds one rule's length: a DNS name is at most 253 characters,
// and the rest is a port range.
const maxRule = 300

// parseRule parses one spec into one rule per port range.
func parseRule(s string) ([]rule, error) {
	bad := func(why string) ([]rule, error) {
		return nil, fmt.Errorf("allow: rule %q: %s", s, why)
	}
	if len(s) > maxRule {
		return nil, fmt.Errorf("allow: rule of %d bytes is longer than %d", len(s), maxRule)
	}
	if s == "*" {
		return []rule{{kind: kindAll, lo: 1, hi: 65535}}, nil
	}
	host, ports, hasPorts := s, "", false
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return bad("no closing ]")
		}
		host = s[1:end]
		rest := s[end+1:]
		if len(rest) > 0 && rest[0] == '/' {
			// [2001:db8::]/32: the prefix length outside the brackets.
			bits, _, _ := strings.Cut(rest, ":")
			host += bits
			rest = rest[len(bits):]
		}
		switch {
		case rest == "":
		case rest[0] == ':':
			ports, hasPorts = rest[1:], true
		default:
			return bad("text after ] is not :PORTS")
		}
		if !strings.Contains(host, ":") {
			return bad("brackets are for IPv6 only")
		}
	case strings.Count(s, ":") == 1:
		host, ports, _ = strings.Cut(s, ":")
		hasPorts = true
	}
	ru, err := parseHost(host)
	if err != nil {
		return bad(err.Error())
	}
	if !hasPorts {
		ru.lo, ru.hi = 1, 65535
		return []rule{ru}, nil
	}
	// A list of ports is several rules; it cannot be used inside FreeRDP's
	// plugin arguments, where commas separate the arguments.
	var rs []rule
	for p := range strings.SplitSeq(ports, ",") {
		lo, hi, err := parsePorts(p)
		if err != nil {
			return bad(err.Error())
		}
		ru.lo, ru.hi = lo, hi
		rs = append(rs, ru)
	}
	return rs, nil
}

// parseHost parses a rule's host part, without the brackets.
func parseHost(host string) (rule, error) {
	if host == "" {
		return rule{}, errors.New("no host")
	}
	if strings.Contains(host, "/") {
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return rule{}, errors.New("bad CIDR prefix")
		}
		if p.Addr().Is4In6() {
			return rule{}, errors.New("IPv4-mapped prefix: write the IPv4 prefix")
		}
		return rule{kind: kindPrefix, prefix: p.Masked()}, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return rule{}, errors.New("an address with a zone is not supported")
		}
		a = a.Unmap()
		return rule{kind: kindPrefix, prefix: netip.PrefixFrom(a, a.BitLen())}, nil
	}
	if strings.Contains(host, ":") {
		return rule{}, errors.New("bad IPv6 address")
	}
	ru := rule{kind: kindName}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		ru.kind, name = kindSuffix, rest
	}
	if !validName(name) {
		return rule{}, errors.New("bad host name")
	}
	if ru.kind == kindSuffix {
		name = "." + name
	}
	ru.name = name
	return ru, nil
}

// validName accepts what a DNS name or a hosts-file name may be: labels of
// letters, digits, '-' and '_', 1 to 63 bytes, not starting or ending
// with '-', 253 in all. A '*' anywhere but a leading "*." is refused, so
// that a typo does not read as a wildcard.
func validName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func parsePorts(s string) (lo, hi uint16, err error) {
	if s == "*" {
		return 1, 65535, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parsePort(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = parsePort(b); err != nil {
			return 0, 0, err
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("port range %d-%d is backwards", lo, hi)
		}
	}
	return lo, hi, nil
}

func parsePort(s string) (uint16, error) {
	// Plain digits only: Atoi would take a sign.
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("port %q is not a number 1-65535 (write N, N-M or *)", s)
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %s is not in 1-65535", s)
	}
	return uint16(n), nil
}

func (ru rule) String() string {
	var host string
	switch ru.kind {
	case kindAll:
		return "*"
	case kindName:
		host = ru.name
	case kindSuffix:
		host = "*" + ru.name
	case kindPrefix:
		if ru.prefix.IsSingleIP() {
			host = ru.prefix.Addr().String()
		} else {
			host = ru.prefix.String()
		}
		if ru.prefix.Addr().Is6() {
			host = "[" + host + "]"
		}
	}
	switch {
	case ru.lo == 1 && ru.hi == 65535:
		return host + ":*"
	case ru.lo == ru.hi:
		return host + ":" + strconv.Itoa(int(ru.lo))
	default:
		return host + ":" + strconv.Itoa(int(ru.lo)) + "-" + strconv.Itoa(int(ru.hi))
	}
}

func (ru rule) hasPort(p uint16) bool { return ru.lo <= p && p <= ru.hi }

// matchName reports whether a name rule allows name (already lower case,
// without trailing dot) at port.
func (ru rule) matchName(name string, port uint16) bool {
	if !ru.hasPort(port) {
		return false
	}
	switch ru.kind {
	case kindAll:
		return true
	case kindName:
		return name == ru.name
	case kindSuffix:
		return len(name) > len(ru.name) && strings.HasSuffix(name, ru.name)
	}
	return false
}

func (ru rule) matchAddr(a netip.Addr, port uint16) bool {
	if !ru.hasPort(port) {
		return false
	}
	switch ru.kind {
	case kindAll:
		return true
	case kindPrefix:
		return ru.prefix.Contains(a)
	}
	return false
}

// String lists the rules in their canonical form, separated by spaces;
// "(no rule)" for none.
func (r *Rules) String() string {
	if r == nil || len(r.rules) == 0 {
		return "(no rule)"
	}
	s := make([]string, len(r.rules))
	for i, ru := range r.rules {
		s[i] = ru.String()
	}
	return strings.Join(s, " ")
}

// AllowsAll reports whether the rules hold "*", which the caller should
// warn about. Rules that add up to everything in other ways (0.0.0.0/0 and
// ::/0) are not reported: they still refuse names that resolve nowhere.
func (r *Rules) AllowsAll() bool {
	if r == nil {
		return false
	}
	for _, ru := range r.rules {
		if ru.kind == kindAll {
			return true
		}
	}
	return false
}

// Check reports whether the rules allow host:port for a host that resolved
// to addrs (for an IP literal, addrs is that address): it returns the
// allowed addresses in their order, or a *DeniedError if there are none.
// Dial is Check between a lookup and a dial.
func (r *Rules) Check(host string, port uint16, addrs []netip.Addr) ([]netip.Addr, error) {
	if r.nameAllowed(host, port) {
		return addrs, nil
	}
	var ok []netip.Addr
	for _, a := range addrs {
		if r.addrAllowed(matchable(a), port) {
			ok = append(ok, a)
		}
	}
	if len(ok) == 0 {
		return nil, r.denied(host, port, addrs)
	}
	return ok, nil
}

func (r *Rules) denied(host string, port uint16, addrs []netip.Addr) error {
	e := &DeniedError{Host: host, Port: port, Rule: r.String()}
	if len(addrs) > 0 {
		e.Addr = addrs[0]
	}
	return e
}

// matchable is the address an address rule is matched against: an
// IPv4-mapped address as the IPv4 address it is, and the unspecified
// addresses as the loopback ones, since connecting to 0.0.0.0 or ::
// reaches this machine's own services (a rule without 127.0.0.0/8 or
// ::1 must not let them through).
func matchable(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.IsUnspecified() {
		if a.Is4() {
			return netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		return netip.IPv6Loopback()
	}
	return a
}

// sessionName is host, as the session sent it, in the form name rules
// match (lower case, no trailing dot), or false if it is not a DNS name:
// ASCII letters, digits, '-' and '_' in non-empty labels. Lower-casing
// only ASCII keeps a name such as "\u212Aorp" (KELVIN SIGN) from folding
// into a rule's "korp".
func sessionName(host string) (string, bool) {
	b := []byte(strings.TrimSuffix(host, "."))
	for i, c := range b {
		if c >= 0x80 {
			return "", false
		}
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	name := string(b)
	return name, validName(name)
}

func (r *Rules) nameAllowed(host string, port uint16) bool {
	if r == nil {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return false
	}
	name, ok := sessionName(host)
	if !ok {
		return false
	}
	for _, ru := range r.rules {
		if ru.matchName(name, port) {
			return true
		}
	}
	return false
}

func (r *Rules) addrAllowed(a netip.Addr, port uint16) bool {
	if r == nil {
		return false
	}
	for _, ru := range r.rules {
		if ru.matchAddr(a, port) {
			return true
		}
	}
	return false
}

// anyAddrRule reports whether some address rule covers port, i.e. whether
// resolving a name that no name rule allows can still lead anywhere.
func (r *Rules) anyAddrRule(port uint16) bool {
	if r == nil {
		return false
	}
	for _, ru := range r.rules {
		if ru.kind == kindPrefix && ru.hasPort(port) {
			return true
		}
	}
	return false
}

// Dial connects to host:port if the rules allow it. host is an IP literal
// (not resolved) or a name, resolved here with Lookup; the addresses the
// rules allow are dialled in the resolver's order until one answers (one
// after another, each with its share of ctx's time; no Happy Eyeballs),
// and the connection has TCP_NODELAY set. A refusal is a *DeniedError (which
// Is ErrDenied); a failed lookup or dial returns the resolver's or the
// dialer's error, for the caller to map (socks.ReplyFor).
func (r *Rules) Dial(ctx context.Context, host string, port uint16) (net.Conn, error) {
	if host == "" || strings.IndexByte(host, 0) >= 0 {
		return nil, r.denied(host, port, nil)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if _, valid := sessionName(host); !valid {
			return nil, r.denied(host, port, nil)
		}
		byName := r.nameAllowed(host, port)
		if !byName && !r.anyAddrRule(port) {
			return nil, r.denied(host, port, nil)
		}
		if addrs, err = r.lookup(ctx, host); err != nil {
			if !byName {
				// Only an address rule could allow it: a failed lookup
				// is answered as a refusal, so that the session cannot
				// tell which names the client's DNS knows.
				return nil, r.denied(host, port, nil)
			}
			return nil, err
		}
	}
	ok, err := r.Check(host, port, addrs)
	if err != nil {
		return nil, err
	}
	d := r.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	var first error
	for i, a := range ok {
		c, err := dialShare(ctx, d, netip.AddrPortFrom(a, port), len(ok)-i)
		if err == nil {
			if tc, isTCP := c.(*net.TCPConn); isTCP {
				// Go sets TCP_NODELAY by default; say so here, where
				// a tunnel of small interactive writes depends on it.
				_ = tc.SetNoDelay(true)
			}
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// dialShare dials one of the left addresses, giving it its share of the
// time ctx has left (at least 2 s), as net.Dialer does for the addresses
// of a name, so that one address that never answers does not use up the
// time of those after it.
func dialShare(ctx context.Context, d *net.Dialer, ap netip.AddrPort, left int) (net.Conn, error) {
	if deadline, ok := ctx.Deadline(); ok && left > 1 {
		share := max(time.Until(deadline)/time.Duration(left), 2*time.Second)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, share)
		defer cancel()
	}
	return d.DialContext(ctx, "tcp", ap.String())
}

func (r *Rules) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	var (
		addrs []netip.Addr
		err   error
	)
	if r.Lookup != nil {
		addrs, err = r.Lookup(ctx, host)
	} else {
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	if err == nil && len(addrs) == 0 {
		err = &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	return addrs, err
}
