package kit

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// Mode is where a Serial runs Handler calls.
type Mode int

const (
	// Queued runs every call on the instance's own goroutine, fed from
	// its inbox: a slow Handler delays only its channel, until the inbox
	// fills. The loopback backend uses it: there the receiving goroutine
	// is the peer's Write, which must stay bounded by its context.
	Queued Mode = iota
	// Adaptive starts as Queued; once the Handler has returned within
	// InlineBudget PromoteAfter times in a row and nothing is queued, the
	// goroutine exits and calls run on the goroutine that calls Put
	// (saving one cross-thread wake-up per message, most of a round
	// trip's cost on loopback). A message that arrives while anything is
	// queued or a call runs is queued; an inline call slower than
	// InlineBudget sends the instance back to its goroutine. The MS-RDPEDYC
	// client (session) uses it. The limit: a Handler that was quick and
	// then blocks holds up the receiving goroutine, so every channel of
	// its connection, for that one call.
	Adaptive
	// Direct runs calls on the goroutine or native thread that reports
	// the event (Put, End), when no call is running; an event that comes
	// during a call (a Close inside Received, or from another thread) is
	// queued, and the caller running the call delivers it after, so calls
	// never overlap and never nest. It starts no goroutine. The FreeRDP
	// and COM backends use it: the platform hands each message on its
	// channel thread, valid during the callback only, and blocking that
	// thread is the platform's own flow control, as for a native plugin.
	Direct
)

// The Adaptive thresholds.
const (
	InlineBudget = 200 * time.Microsecond
	PromoteAfter = 8
)

// SerialConfig sets up a Serial.
type SerialConfig struct {
	Mode Mode
	// Inbox holds the queued messages; if nil, NewSerial makes one of
	// InboxBytes (dvc.DefaultInboxBytes if <= 0). A full inbox blocks
	// Put: DRDYNVC has no other flow control (MS-RDPEDYC 1.3.3.2).
	Inbox      *dvc.Inbox
	InboxBytes int
	// Borrowed: the slices given to Put are valid only during the call
	// (a native callback's buffer), so a message that must be queued is
	// copied. Otherwise Put's msg is the Serial's.
	Borrowed bool
	// Group, if set, counts the goroutines the Serial starts, so that a
	// backend's shutdown can wait for every Closed.
	Group *sync.WaitGroup
}

// Serial delivers one channel instance's events to its dvc.Handler one
// call at a time and in order, every Received before Closed and Closed
// exactly once (the dvc.Handler contract), whichever goroutines report
// them. Closed gets nil for an orderly end (End with nil, io.EOF or
// dvc.ErrClosed).
type Serial struct {
	in       *dvc.Inbox
	mode     Mode
	borrowed bool
	group    *sync.WaitGroup
	done     chan struct{}

	mu      sync.Mutex
	h       dvc.Handler
	worker  bool // Queued, Adaptive: a delivery goroutine is running
	inline  bool // a call runs on a caller's goroutine (Direct: a caller is delivering)
	calling bool // a Handler call is in progress
	queued  int  // messages put in the inbox and not yet taken
	quick   int  // Adaptive: consecutive quick calls
	ended   bool // End or Discard: Closed is due
	fin     bool // Closed has been called (or is being)
	idle    []func()
}

// NewSerial returns a Serial with no Handler yet: events are queued
// until Attach or Run.
func NewSerial(cfg SerialConfig) *Serial {
	in := cfg.Inbox
	if in == nil {
		in = dvc.NewInbox(cfg.InboxBytes)
	}
	return &Serial{in: in, mode: cfg.Mode, borrowed: cfg.Borrowed, group: cfg.Group, done: make(chan struct{})}
}

// Attach sets the Handler and starts delivering: in Queued and Adaptive
// mode on a new goroutine (counted in Group), in Direct mode what is
// already queued is delivered on the caller.
func (s *Serial) Attach(h dvc.Handler) {
	s.mu.Lock()
	s.h = h
	if s.mode == Direct {
		if (s.queued > 0 || s.ended) && !s.inline {
			s.inline = true
			s.mu.Unlock()
			s.drain()
			return
		}
		s.mu.Unlock()
		return
	}
	s.startWorker()
	s.mu.Unlock()
}

// Run sets the Handler and makes the calling goroutine the instance's
// first delivery goroutine (Queued, Adaptive): it returns once the
// instance is fed inline or Closed has been delivered. The caller counts
// its own goroutine. In Direct mode Run is Attach.
func (s *Serial) Run(h dvc.Handler) {
	if s.mode == Direct {
		s.Attach(h)
		return
	}
	s.mu.Lock()
	s.h = h
	s.worker = true
	s.mu.Unlock()
	s.work()
}

// startWorker starts the delivery goroutine. Called with mu held.
func (s *Serial) startWorker() {
	if s.worker || s.fin {
		return
	}
	s.worker = true
	if s.group != nil {
		s.group.Add(1)
	}
	go func() {
		if s.group != nil {
			defer s.group.Done()
		}
		s.work()
	}()
}

// Put delivers msg: inline or queued as the Mode says. It blocks while
// the inbox is full, until ctx is done. It returns dvc.ErrClosed (the
// message dropped) once the instance has ended.
func (s *Serial) Put(ctx context.Context, msg []byte) error {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return dvc.ErrClosed
	}
	if s.h != nil && !s.inline && s.queued == 0 &&
		(s.mode == Direct || (s.mode == Adaptive && !s.worker && s.quick >= PromoteAfter)) {
		s.inline = true
		s.calling = true
		s.mu.Unlock()
		t := time.Now()
		s.h.Received(msg)
		slow := time.Since(t) > InlineBudget
		if s.mode == Direct {
			s.mu.Lock()
			s.calling = false
			s.mu.Unlock()
			s.drain()
			return nil
		}
		s.mu.Lock()
		s.inline, s.calling = false, false
		if slow {
			s.quick = 0 // the next message goes through the goroutine
		}
		if s.ended {
			s.startWorker() // it reads the closed inbox and calls Closed
		}
		idle := s.takeIdle()
		s.mu.Unlock()
		runAll(idle)
		return nil
	}
	s.queued++
	if s.h != nil && s.mode != Direct && !s.inline {
		s.startWorker()
	}
	s.mu.Unlock()
	if s.borrowed {
		msg = append([]byte(nil), msg...)
	}
	err := s.in.Put(ctx, msg)
	if err != nil {
		s.mu.Lock()
		s.queued--
		s.mu.Unlock()
	}
	return err
}

// End ends the instance: what is queued is delivered, then Closed(err).
// Later Ends and Discards change nothing.
func (s *Serial) End(err error) {
	s.in.CloseWithError(err)
	s.ended1()
}

// Discard ends the instance and drops what is queued: Closed(err) comes
// after the call in progress, if any.
func (s *Serial) Discard(err error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.in.Discard(err)
	s.ended1()
}

func (s *Serial) ended1() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	if s.h == nil {
		s.mu.Unlock()
		return
	}
	if s.mode == Direct {
		if s.inline {
			s.mu.Unlock() // the caller delivering will deliver Closed
			return
		}
		s.inline = true
		s.mu.Unlock()
		s.drain()
		return
	}
	if !s.inline {
		s.startWorker()
	}
	s.mu.Unlock()
}

// Inline reports whether the next message would be delivered on Put's
// caller: always in Direct mode, in Adaptive mode once promoted and the
// delivery goroutine has gone, never in Queued mode.
func (s *Serial) Inline() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.mode {
	case Direct:
		return true
	case Adaptive:
		return !s.worker && s.quick >= PromoteAfter
	}
	return false
}

// Done is closed once Closed has returned.
func (s *Serial) Done() <-chan struct{} { return s.done }

// Busy reports whether a Handler call is in progress (in Direct mode:
// whether a caller is delivering).
func (s *Serial) Busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy()
}

func (s *Serial) busy() bool {
	if s.mode == Direct {
		return s.inline
	}
	return s.calling
}

// WhenIdle runs f once no Handler call is in progress: at once on the
// caller if none is, else on the goroutine finishing the call, after it.
// FreeRDP's backend defers its native close there.
func (s *Serial) WhenIdle(f func()) {
	s.mu.Lock()
	if s.busy() {
		s.idle = append(s.idle, f)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	f()
}

func (s *Serial) takeIdle() []func() {
	if s.busy() {
		return nil
	}
	f := s.idle
	s.idle = nil
	return f
}

func runAll(fs []func()) {
	for _, f := range fs {
		f()
	}
}

// closed delivers Closed once.
func (s *Serial) closed(err error) {
	if err == io.EOF || errors.Is(err, dvc.ErrClosed) {
		err = nil
	}
	s.h.Closed(err)
	close(s.done)
}

// work is the delivery goroutine (Queued, Adaptive): queued messages,
// then Closed, or it exits once the instance may be fed inline.
func (s *Serial) work() {
	for {
		s.mu.Lock()
		if s.mode == Adaptive && s.queued == 0 && !s.ended && s.quick >= PromoteAfter {
			s.worker = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		m, err := s.in.Read(context.Background())
		s.mu.Lock()
		s.calling = true
		if err != nil {
			s.fin = true
			s.mu.Unlock()
			s.closed(err)
			s.mu.Lock()
			s.calling = false
			idle := s.takeIdle()
			s.mu.Unlock()
			runAll(idle)
			return
		}
		s.queued--
		s.mu.Unlock()
		t := time.Now()
		s.h.Received(m)
		quick := time.Since(t) <= InlineBudget
		s.mu.Lock()
		s.calling = false
		if quick {
			s.quick++
		} else {
			s.quick = 0
		}
		idle := s.takeIdle()
		s.mu.Unlock()
		runAll(idle)
	}
}

// drain is Direct mode's delivery loop, run by the caller that set
// inline: what was queued meanwhile, then Closed if due.
func (s *Serial) drain() {
	for {
		s.mu.Lock()
		if s.fin || (s.queued == 0 && !s.ended) {
			s.inline = false
			idle := s.takeIdle()
			s.mu.Unlock()
			runAll(idle)
			return
		}
		s.calling = true
		if s.queued > 0 {
			s.queued--
		}
		s.mu.Unlock()
		// Something is queued (or on its way: Put counts before it
		// puts), or the inbox is closed: Read does not block for long.
		m, err := s.in.Read(context.Background())
		if err != nil {
			s.mu.Lock()
			s.fin, s.queued = true, 0
			s.mu.Unlock()
			s.closed(err)
		} else {
			s.h.Received(m)
		}
		s.mu.Lock()
		s.calling = false
		s.mu.Unlock()
	}
}
