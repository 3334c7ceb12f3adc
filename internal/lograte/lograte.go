// Package lograte keeps a peer from turning rdpdvc's logs into an
// amplifier: a record a peer can cause at will (a refused channel, an
// ignored PDU) is let through a few times per window, and the rest are
// counted and reported as one number.
package lograte

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Defaults for New(0, 0).
const (
	DefaultBurst  = 10
	DefaultWindow = 10 * time.Second
)

// Limiter lets the first Burst records of each key through in every
// Window and counts the others. The next record of that key let through
// carries the count as "suppressed"; Flush reports counts not yet
// reported. Keys should be fixed strings (the record's message), so the
// table stays as small as the code's list of messages. The zero value is
// not usable; call New. A Limiter is safe for concurrent use.
type Limiter struct {
	burst  int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	start      time.Time
	n          int // let through in this window
	suppressed int // counted since the last report
	level      slog.Level
	msg        string
}

// New returns a Limiter letting burst records per key through every
// window (DefaultBurst and DefaultWindow for values <= 0).
func New(burst int, window time.Duration) *Limiter {
	if burst <= 0 {
		burst = DefaultBurst
	}
	if window <= 0 {
		window = DefaultWindow
	}
	return &Limiter{burst: burst, window: window, now: time.Now, keys: map[string]*entry{}}
}

// Log logs msg with args at level to log, unless key has had Burst records
// let through in the current window; then it only counts it.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, key, msg string, args ...any) {
	if !log.Enabled(context.Background(), level) {
		return
	}
	now := l.now()
	l.mu.Lock()
	e := l.keys[key]
	if e == nil {
		e = &entry{start: now}
		l.keys[key] = e
	}
	if now.Sub(e.start) >= l.window {
		e.start, e.n = now, 0
	}
	if e.n >= l.burst {
		e.suppressed++
		e.level, e.msg = level, msg
		l.mu.Unlock()
		return
	}
	e.n++
	suppressed := e.suppressed
	e.suppressed = 0
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args[:len(args):len(args)], "suppressed", suppressed)
	}
	log.Log(context.Background(), level, msg, args...)
}

// Flush logs, for each key with records counted and not yet reported, one
// record saying how many.
func (l *Limiter) Flush(log *slog.Logger) {
	type report struct {
		level slog.Level
		msg   string
		n     int
	}
	l.mu.Lock()
	var rs []report
	for _, e := range l.keys {
		if e.suppressed > 0 {
			rs = append(rs, report{e.level, e.msg, e.suppressed})
			e.suppressed = 0
		}
	}
	l.mu.Unlock()
	for _, r := range rs {
		log.Log(context.Background(), r.level, r.msg+" (repeats suppressed)", "suppressed", r.n)
	}
}
