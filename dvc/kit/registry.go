package kit

import (
	"errors"
	"fmt"
	"sync"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
)

// CheckName applies the channel-name rule of MS-RDPEDYC 2.2.2.1 that
// every backend applies to Listen and Open: a name a DYNVC_CREATE_REQ can
// carry (1..256 bytes, no NUL; drdynvc.CreateRequest.Validate, the one
// place the rule lives). A name no DYNVC_CREATE_REQ can carry could never
// be opened, and one sent anyway makes a client end the connection
// (MS-RDPEDYC 3.1.5.2.4).
func CheckName(name string) error {
	return drdynvc.CreateRequest{ChannelName: name}.Validate()
}

// Registry is a client side's listeners by name: a dvc.Registrar's
// bookkeeping. The zero value is ready to use; it is safe for concurrent
// use.
type Registry struct {
	// Prefix starts every error message ("session", "freerdp"); "dvc"
	// if empty.
	Prefix string
	// Check, if set, is a platform's rule on top of CheckName (COM's
	// CreateListener takes an ANSI char*).
	Check func(name string) error

	mu     sync.Mutex
	m      map[string]dvc.Listener
	order  []string
	watch  func(name string) error
	closed bool
}

var errNilListener = errors.New("nil listener")

func (r *Registry) prefix() string {
	if r.Prefix == "" {
		return "dvc"
	}
	return r.Prefix
}

// Listen registers l for name: the name rule, then Check, then
// uniqueness. When a watcher is set (Watch), it is told of the name
// before Listen returns, and its error fails Listen.
func (r *Registry) Listen(name string, l dvc.Listener) error {
	err := CheckName(name)
	if err == nil && l == nil {
		err = errNilListener
	}
	if err == nil && r.Check != nil {
		err = r.Check(name)
	}
	if err != nil {
		return fmt.Errorf("%s: listen %q: %w", r.prefix(), name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return fmt.Errorf("%s: listen %q: the client side has ended", r.prefix(), name)
	case r.m[name] != nil:
		return fmt.Errorf("%s: listener %q already registered", r.prefix(), name)
	}
	if r.watch != nil {
		if err := r.watch(name); err != nil {
			return fmt.Errorf("%s: listen %q: %w", r.prefix(), name, err)
		}
	}
	if r.m == nil {
		r.m = map[string]dvc.Listener{}
	}
	r.m[name] = l
	r.order = append(r.order, name)
	return nil
}

// Lookup returns the listener for name, or nil (none, or the registry
// was closed).
func (r *Registry) Lookup(name string) dvc.Listener {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	return r.m[name]
}

// Names returns the registered names in registration order.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...)
}

// Watch calls f for every name registered so far, in order, and then for
// each later Listen, for platforms that create each listener natively
// (IWTSVirtualChannelManager::CreateListener). Only one watcher may be
// set; f's first error is returned and leaves no watcher.
func (r *Registry) Watch(f func(name string) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watch != nil {
		return fmt.Errorf("%s: listeners are already being created", r.prefix())
	}
	for _, name := range r.order {
		if err := f(name); err != nil {
			return fmt.Errorf("%s: listen %q: %w", r.prefix(), name, err)
		}
	}
	r.watch = f
	return nil
}

// Close ends the registry: Listen fails and Lookup finds nothing.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// Accept asks l to accept ch, as every backend must: a Listener that
// returns neither a Handler nor an error refuses (so the refusal is
// reported, not a nil Handler called later).
func Accept(l dvc.Listener, ch dvc.Channel) (dvc.Handler, error) {
	h, err := l.Accept(ch)
	if err == nil && h == nil {
		err = fmt.Errorf("listener for %q returned neither a Handler nor an error", ch.Name())
	}
	if err != nil {
		return nil, err
	}
	return h, nil
}
