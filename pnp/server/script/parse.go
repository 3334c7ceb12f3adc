package script

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// Script is a parsed script: every line checked, every @FILE read. Parse
// or ParseFile makes one; a Runner runs it.
type Script struct {
	lines []*line
}

// Lines is the number of commands in the script.
func (s *Script) Lines() int { return len(s.lines) }

// Error is a script that cannot run, with the line that says why.
type Error struct {
	File string // empty for Parse
	Line int    // 0: the file as a whole
	Err  error
}

func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	case e.File == "":
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// maxErrors bounds how many line errors Parse reports at once.
const maxErrors = 10

// ParseFile parses the script in the file at path.
func ParseFile(path string) (*Script, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() && fi.Mode()&os.ModeNamedPipe == 0 && fi.Mode()&os.ModeCharDevice == 0 {
		return nil, &Error{File: path, Err: fmt.Errorf("is a %s, want a script file", kind(fi.Mode()))}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parse(path, f)
}

func kind(m os.FileMode) string {
	if m.IsDir() {
		return "directory"
	}
	return "special file (" + m.Type().String() + ")"
}

// Parse reads a whole script from r and checks every line: the commands
// and their arguments, that each handle and job a line names is opened or
// started by an earlier line, and the data of every @FILE (read now). It
// reports the lines in error (up to ten, each an *Error, joined).
func Parse(r io.Reader) (*Script, error) { return ParseNamed("", r) }

// ParseNamed is Parse with the errors naming the script (a file name, or
// "stdin").
func ParseNamed(name string, r io.Reader) (*Script, error) { return parse(name, r) }

func parse(file string, r io.Reader) (*Script, error) {
	p := &parser{handles: map[string]bool{}, jobs: map[string]int{}}
	s := &Script{}
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		l, err := p.line(n, sc.Text())
		if err != nil {
			errs = append(errs, &Error{File: file, Line: n, Err: err})
			if len(errs) == maxErrors {
				break
			}
			continue
		}
		if l != nil {
			s.lines = append(s.lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, &Error{File: file, Err: err})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// line is one parsed command.
type line struct {
	n          int
	op         string
	expectFail bool
	job        string // set: run in the background under this name
	want       expectation

	timeout    time.Duration
	hasTimeout bool

	sel      string // wait-device, wait-removed, open
	match    func(server.Device) bool
	handle   string // open (the name it gives), read, write, ioctl, close
	openOpts []server.OpenOption
	offset   uint64
	count    uint32 // read's COUNT, ioctl's OUTMAX
	code     uint32
	data     []byte // write's and ioctl's input
	guid     wire.GUID
	all      bool          // subscribe all, wait-event all, wait all
	dur      time.Duration // sleep
	jobs     []string      // wait, cancel
}

// expectation is what a line's expect clauses ask of its result.
type expectation struct {
	data     []byte
	hasData  bool
	count    int
	hasCount bool
	hr       hresult.HRESULT
	hasHR    bool
}

// spec is what a command takes.
type spec struct {
	usage   string
	opts    []string // option keys (KEY=VALUE)
	expect  []string // expect clause keys
	canFail bool     // the client or the server can fail it: "!" applies
	bg      bool     // "&" applies
}

var specs = map[string]spec{
	"wait-device":  {usage: "wait-device [SEL] [timeout=DUR]", opts: []string{"timeout"}, canFail: true},
	"wait-removed": {usage: "wait-removed SEL [timeout=DUR]", opts: []string{"timeout"}, canFail: true},
	"devices":      {usage: "devices"},
	"open": {usage: "open [NAME] SEL [access=N] [share=N] [disposition=N] [flags=N] [timeout=DUR] [expect hresult=H]",
		opts: []string{"access", "share", "disposition", "flags", "timeout"}, expect: []string{"hresult"}, canFail: true},
	"read": {usage: "read NAME OFFSET COUNT [timeout=DUR] [expect data=DATA count=N hresult=H] [& [as=JOB]]",
		opts: []string{"timeout", "as"}, expect: []string{"data", "count", "hresult"}, canFail: true, bg: true},
	"write": {usage: "write NAME OFFSET DATA [timeout=DUR] [expect count=N hresult=H] [& [as=JOB]]",
		opts: []string{"timeout", "as"}, expect: []string{"count", "hresult"}, canFail: true, bg: true},
	"ioctl": {usage: "ioctl NAME CODE DATA OUTMAX [timeout=DUR] [expect data=DATA count=N hresult=H] [& [as=JOB]]",
		opts: []string{"timeout", "as"}, expect: []string{"data", "count", "hresult"}, canFail: true, bg: true},
	"close":      {usage: "close NAME"},
	"subscribe":  {usage: "subscribe GUID|all"},
	"wait-event": {usage: "wait-event GUID|all [timeout=DUR] [expect data=DATA]", opts: []string{"timeout"}, expect: []string{"data"}, canFail: true},
	"sleep":      {usage: "sleep DUR"},
	"wait":       {usage: "wait [JOB...|all]"},
	"cancel":     {usage: "cancel JOB..."},
}

// parser carries what earlier lines defined.
type parser struct {
	handles map[string]bool // names some earlier open gives
	autoH   int             // open SEL lines so far: h1, h2, ...
	jobs    map[string]int  // job name -> its line
	order   []string        // job names in order
}

// token is one word of a line, with where it is in the line.
type token struct {
	s          string
	start, end int
}

// tokenize splits a line into words at blanks, up to a comment: a word
// that starts with # (at the start of the line or after a blank). A value
// text:"..." (also as data=text:"...") is a Go string literal: it is one
// word whatever it holds (blanks, #, escapes such as \n and \x00).
func tokenize(s string) ([]token, error) {
	var toks []token
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i == len(s) || s[i] == '#' {
			return toks, nil
		}
		start := i
		for i < len(s) && s[i] != ' ' && s[i] != '\t' {
			if s[i] == '"' && strings.HasSuffix(s[start:i], "text:") && (i-start == 5 || s[i-6] == '=') {
				j, err := endQuote(s, i)
				if err != nil {
					return nil, err
				}
				i = j
				continue
			}
			i++
		}
		toks = append(toks, token{s: s[start:i], start: start, end: i})
	}
}

// endQuote returns the index just past the string literal opening at i.
func endQuote(s string, i int) (int, error) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated text:\"...\" at column %d", i+1)
}

func (p *parser) line(n int, text string) (*line, error) {
	s := strings.TrimSpace(text)
	l := &line{n: n}
	if rest, ok := strings.CutPrefix(s, "!"); ok {
		l.expectFail, s = true, rest
	}
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		if l.expectFail {
			return nil, errors.New("! needs a command")
		}
		return nil, nil // blank or comment
	}
	l.op = toks[0].s
	sp, ok := specs[l.op]
	if !ok {
		return nil, fmt.Errorf("unknown command %q", l.op)
	}
	if l.expectFail && !sp.canFail {
		return nil, fmt.Errorf("! %s: %s cannot fail, so ! does not apply", l.op, l.op)
	}
	pos, opts, exp, bg, err := split(toks[1:], sp)
	if err != nil {
		return nil, fmt.Errorf("%v (usage: %s)", err, sp.usage)
	}
	if err := p.args(l, s, pos, opts, sp); err != nil {
		return nil, fmt.Errorf("%v (usage: %s)", err, sp.usage)
	}
	if err := l.expectations(exp); err != nil {
		return nil, err
	}
	if name, ok := opts["as"]; ok && !bg {
		return nil, fmt.Errorf("as=%s names a job: end the line with & (usage: %s)", name, sp.usage)
	}
	if bg {
		name := opts["as"]
		if name == "" {
			name = fmt.Sprintf("j%d", n)
		}
		if name == "all" || !isName(name) {
			return nil, fmt.Errorf("job name %q: want letters, digits, - and _, not all", name)
		}
		if at, dup := p.jobs[name]; dup {
			return nil, fmt.Errorf("job %q is already the job of line %d", name, at)
		}
		p.jobs[name] = n
		p.order = append(p.order, name)
		l.job = name
	}
	return l, nil
}

// split sorts the words after the command: the trailing options, expect
// clauses and & (in any order at the end of the line) from the positional
// arguments before them.
func split(toks []token, sp spec) (pos []token, opts, exp map[string]string, bg bool, err error) {
	opts, exp = map[string]string{}, map[string]string{}
	var pendingExp []string // expect keys seen right of the current point
	end := len(toks)
	for end > 0 {
		t := toks[end-1].s
		if t == "&" {
			if !sp.bg {
				return nil, nil, nil, false, errors.New("& does not apply")
			}
			bg = true
			end--
			continue
		}
		if t == "expect" {
			if len(pendingExp) == 0 {
				return nil, nil, nil, false, errors.New("expect with no clause")
			}
			for _, k := range pendingExp {
				exp[k] = opts[k]
				delete(opts, k)
			}
			pendingExp = nil
			end--
			continue
		}
		k, v, isKV := strings.Cut(t, "=")
		if !isKV || !(contains(sp.opts, k) || contains(sp.expect, k) || isClauseKey(k)) {
			break
		}
		if isClauseKey(k) && !contains(sp.expect, k) {
			return nil, nil, nil, false, fmt.Errorf("expect %s= does not apply", k)
		}
		if _, dup := opts[k]; dup {
			return nil, nil, nil, false, fmt.Errorf("%s= twice", k)
		}
		if _, dup := exp[k]; dup {
			return nil, nil, nil, false, fmt.Errorf("%s= twice", k)
		}
		if contains(sp.expect, k) {
			pendingExp = append(pendingExp, k)
		}
		opts[k] = v
		end--
	}
	if len(pendingExp) > 0 {
		return nil, nil, nil, false, fmt.Errorf("%s= is an expectation: write expect before it", pendingExp[0])
	}
	for _, t := range toks[:end] {
		if t.s == "&" || t.s == "expect" {
			return nil, nil, nil, false, fmt.Errorf("%s must come after the arguments", t.s)
		}
		if k, _, ok := strings.Cut(t.s, "="); ok && (contains(sp.opts, k) || isClauseKey(k)) {
			return nil, nil, nil, false, fmt.Errorf("%s must come after the arguments", t.s)
		}
	}
	return toks[:end], opts, exp, bg, nil
}

func isClauseKey(k string) bool { return k == "data" || k == "count" || k == "hresult" }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// args checks the positional arguments and options of l; src is the
// line (less a leading !), for unquoted text.
func (p *parser) args(l *line, src string, pos []token, opts map[string]string, sp spec) error {
	if v, ok := opts["timeout"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("timeout=%s: want a duration such as 100ms or 2s", v)
		}
		l.timeout, l.hasTimeout = d, true
	}
	want := func(n int) error {
		if len(pos) != n {
			return fmt.Errorf("%d argument(s), want %d", len(pos), n)
		}
		return nil
	}
	var err error
	switch l.op {
	case "wait-device":
		if len(pos) > 1 {
			return fmt.Errorf("%d arguments, want at most 1", len(pos))
		}
		l.sel = "any"
		if len(pos) == 1 {
			l.sel = pos[0].s
		}
		l.match, err = selector(l.sel)
	case "wait-removed":
		if err := want(1); err != nil {
			return err
		}
		l.sel = pos[0].s
		l.match, err = selector(l.sel)
	case "devices":
		err = want(0)
	case "open":
		if len(pos) == 1 { // open SEL: the handle is named h1, h2, ...
			p.autoH++
			pos = append([]token{{s: fmt.Sprintf("h%d", p.autoH)}}, pos...)
		}
		if err := want(2); err != nil {
			return err
		}
		if !isName(pos[0].s) {
			return fmt.Errorf("handle name %q: want letters, digits, - and _", pos[0].s)
		}
		l.handle, l.sel = pos[0].s, pos[1].s
		if l.match, err = selector(l.sel); err != nil {
			return err
		}
		for _, o := range []struct {
			k   string
			set func(uint32) server.OpenOption
		}{
			{"access", server.WithDesiredAccess}, {"share", server.WithShareMode},
			{"disposition", server.WithCreationDisposition}, {"flags", server.WithFlagsAndAttributes},
		} {
			v, ok := opts[o.k]
			if !ok {
				continue
			}
			n, err := parseU32(v)
			if err != nil && o.k == "disposition" {
				n, err = disposition(v)
			}
			if err != nil {
				return fmt.Errorf("%s=%s: %w", o.k, v, err)
			}
			l.openOpts = append(l.openOpts, o.set(n))
		}
		p.handles[l.handle] = true
	case "read":
		if err := want(3); err != nil {
			return err
		}
		if err := p.io(l, pos); err != nil {
			return err
		}
		if l.count, err = parseU32(pos[2].s); err != nil || l.count > wire.MaxReadBytes {
			return fmt.Errorf("COUNT %q: want 0..%d", pos[2].s, wire.MaxReadBytes)
		}
	case "write":
		pos = joinText(src, pos, 2, 0)
		if err := want(3); err != nil {
			return err
		}
		if err := p.io(l, pos); err != nil {
			return err
		}
		if l.data, err = parseData(pos[2].s); err != nil {
			return err
		}
		if len(l.data) > wire.MaxWriteBytes {
			return fmt.Errorf("DATA of %d bytes: want at most %d", len(l.data), wire.MaxWriteBytes)
		}
	case "ioctl":
		pos = joinText(src, pos, 2, 1)
		if err := want(4); err != nil {
			return err
		}
		if err := p.io(l, pos); err != nil {
			return err
		}
		if l.data, err = parseData(pos[2].s); err != nil {
			return err
		}
		if l.count, err = parseU32(pos[3].s); err != nil || l.count > wire.MaxIOControlBytes {
			return fmt.Errorf("OUTMAX %q: want 0..%d", pos[3].s, wire.MaxIOControlBytes)
		}
		if len(l.data) > wire.MaxIOControlBytes {
			return fmt.Errorf("DATA of %d bytes: want at most %d", len(l.data), wire.MaxIOControlBytes)
		}
	case "close":
		if err := want(1); err != nil {
			return err
		}
		if err := p.handleName(pos[0].s); err != nil {
			return err
		}
		l.handle = pos[0].s
	case "subscribe", "wait-event":
		if err := want(1); err != nil {
			return err
		}
		if pos[0].s == "all" {
			l.all = true
		} else if l.guid, err = wire.ParseGUID(pos[0].s); err != nil {
			return err
		}
	case "sleep":
		if err := want(1); err != nil {
			return err
		}
		if l.dur, err = time.ParseDuration(pos[0].s); err != nil || l.dur < 0 {
			return fmt.Errorf("DUR %q: want a duration such as 100ms or 2s", pos[0].s)
		}
	case "wait", "cancel":
		if l.op == "cancel" && len(pos) == 0 {
			return errors.New("no job named")
		}
		for _, t := range pos {
			if t.s == "all" && l.op == "wait" {
				if len(pos) > 1 {
					return errors.New("all with other names")
				}
				l.all = true
				break
			}
			if _, ok := p.jobs[t.s]; !ok {
				return fmt.Errorf("no job %q started on an earlier line (jobs so far: %s)", t.s, list(p.order))
			}
			l.jobs = append(l.jobs, t.s)
		}
		if len(pos) == 0 {
			l.all = true
		}
	}
	return err
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// io checks NAME and OFFSET (or CODE) of read, write and ioctl.
func (p *parser) io(l *line, pos []token) error {
	if err := p.handleName(pos[0].s); err != nil {
		return err
	}
	l.handle = pos[0].s
	var err error
	if l.op == "ioctl" {
		if l.code, err = parseU32(pos[1].s); err != nil {
			return fmt.Errorf("CODE %q: want a 32-bit number", pos[1].s)
		}
		return nil
	}
	if l.offset, err = strconv.ParseUint(pos[1].s, 0, 64); err != nil {
		return fmt.Errorf("OFFSET %q: want a 64-bit number", pos[1].s)
	}
	return nil
}

func (p *parser) handleName(name string) error {
	if !p.handles[name] {
		return fmt.Errorf("no handle %q opened on an earlier line", name)
	}
	return nil
}

// joinText makes unquoted text: DATA at pos[i] one word: the rest of the
// line up to the last trailing positional words (OUTMAX) and the options.
func joinText(src string, pos []token, i, trailing int) []token {
	if len(pos) <= i+1+trailing || !strings.HasPrefix(pos[i].s, "text:") || strings.HasPrefix(pos[i].s, `text:"`) {
		return pos
	}
	last := len(pos) - 1 - trailing
	joined := token{s: src[pos[i].start:pos[last].end], start: pos[i].start, end: pos[last].end}
	return append(append(append([]token(nil), pos[:i]...), joined), pos[last+1:]...)
}

func (l *line) expectations(exp map[string]string) error {
	if v, ok := exp["data"]; ok {
		b, err := parseData(v)
		if err != nil {
			return fmt.Errorf("expect data=: %w", err)
		}
		l.want.data, l.want.hasData = b, true
	}
	if v, ok := exp["count"]; ok {
		n, err := strconv.ParseUint(v, 0, 31)
		if err != nil {
			return fmt.Errorf("expect count=%s: want a byte count", v)
		}
		l.want.count, l.want.hasCount = int(n), true
	}
	if v, ok := exp["hresult"]; ok {
		h, err := hresult.Parse(v)
		if err != nil {
			return fmt.Errorf("expect %w", err)
		}
		if l.expectFail && h.Succeeded() {
			return fmt.Errorf("! with expect hresult=%s: a success", v)
		}
		l.want.hr, l.want.hasHR = h, true
	}
	return nil
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
	return 0, fmt.Errorf("want a number or CREATE_NEW, CREATE_ALWAYS, OPEN_EXISTING, OPEN_ALWAYS, TRUNCATE_EXISTING")
}

// maxFile bounds what @FILE reads: the largest Write or IOCTL input.
const maxFile = max(wire.MaxWriteBytes, wire.MaxIOControlBytes)

// parseData reads a DATA word: hex, text:..., text:"...", @FILE or -.
func parseData(arg string) ([]byte, error) {
	switch {
	case arg == "-":
		return []byte{}, nil
	case strings.HasPrefix(arg, "@"):
		return readFile(arg[1:])
	case strings.HasPrefix(arg, `text:"`):
		s, err := strconv.Unquote(arg[len("text:"):])
		if err != nil {
			return nil, fmt.Errorf("DATA %s: not a Go string literal", arg)
		}
		return []byte(s), nil
	case strings.HasPrefix(arg, "text:"):
		return []byte(arg[len("text:"):]), nil
	}
	b, err := hex.DecodeString(arg)
	if err != nil {
		return nil, fmt.Errorf("DATA %q: want hex, text:..., text:\"...\", @FILE or -", arg)
	}
	return b, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("@%s: %w", path, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("@%s: over %d bytes", path, maxFile)
	}
	return b, nil
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

// describe says which device SEL means, for messages: "device 7",
// "device hwid:MEM", "device" (any).
func describe(sel string) string {
	if sel == "any" {
		return "device"
	}
	return "device " + sel
}
