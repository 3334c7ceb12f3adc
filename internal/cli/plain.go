package cli

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// PlainHandler writes one line per record for people and grep:
//
//	15:04:05.000 INFO Ping#3 payload=5120 rttMs=0.42
//	15:04:07.001 WARN Ping#4 lost payload=5120 err="no echo within 5s"
//
// The message is written as is (slog's TextHandler would quote it), then
// the attributes as key=value, values quoted only when they need it.
type PlainHandler struct {
	mu     *sync.Mutex
	w      io.Writer
	level  slog.Leveler
	prefix string // preformatted attributes from WithAttrs
	group  string // key prefix from WithGroup, with a trailing dot
	now    func() time.Time
}

// FiguresGroup is the attribute group in which package simple's round
// trips (Ping#, Echo#) give their figures (seq, payload, rtt_ms,
// outcome) to machine readers such as -log-format json. PlainHandler
// leaves that group out: the message already says the same for people.
const FiguresGroup = "ping"

// NewPlainHandler returns a handler writing records at level or above to w.
func NewPlainHandler(w io.Writer, level slog.Leveler) *PlainHandler {
	return &PlainHandler{mu: new(sync.Mutex), w: w, level: level, now: time.Now}
}

// Enabled implements slog.Handler.
func (h *PlainHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// Handle implements slog.Handler.
func (h *PlainHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	t := r.Time
	if t.IsZero() {
		t = h.now()
	}
	b.WriteString(t.Format("15:04:05.000"))
	b.WriteByte(' ')
	b.WriteString(r.Level.String())
	b.WriteByte(' ')
	b.WriteString(r.Message)
	b.WriteString(h.prefix)
	r.Attrs(func(a slog.Attr) bool {
		if h.group == "" && a.Key == FiguresGroup && a.Value.Kind() == slog.KindGroup {
			return true
		}
		appendAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

// WithAttrs implements slog.Handler.
func (h *PlainHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	for _, a := range as {
		appendAttr(&b, h.group, a)
	}
	h2 := *h
	h2.prefix += b.String()
	return &h2
}

// WithGroup implements slog.Handler.
func (h *PlainHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group += name + "."
	return &h2
}

func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			appendAttr(b, g, ga)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(group)
	b.WriteString(a.Key)
	b.WriteByte('=')
	var s string
	if a.Value.Kind() == slog.KindDuration {
		s = a.Value.Duration().String()
	} else {
		s = a.Value.String()
	}
	if needsQuote(s) {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if unicode.IsSpace(r) || r == '"' || r == '=' || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}
