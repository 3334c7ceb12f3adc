package com

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/windows"

	"github.com/rdpdvc/rdpdvc/hresult"
)

// ActivationTimeout is how long a server started by COM (-Embedding)
// waits for its first object before giving up: COM starts the exe, and
// if the client died in between nobody will ever ask.
const ActivationTimeout = 2 * time.Minute

// ErrNotActivated is returned by Serve when no client created a plugin
// within ActivationTimeout.
var ErrNotActivated = errors.New("com: no client created the plugin in time (this exe is started by COM with -Embedding; run /register, then mstsc)")

// Server is the class object of a COM LocalServer serving one plugin
// class. It registers with CoRegisterClassObject(CLSCTX_LOCAL_SERVER,
// REGCLS_SINGLEUSE): one process per client, so a process never has to
// refuse a late activation while it exits.
//
// Threading model: the process joins the multithreaded apartment
// (COINIT_MULTITHREADED) on a thread kept for the server's life. In the
// MTA, COM delivers calls from mstsc on its own RPC threads, and any
// thread in the MTA may call the interface pointers mstsc passes us, so
// Go code can call them from whatever goroutine it runs on, provided the
// goroutine is pinned to its thread for the call and the thread is in the
// MTA (inMTA does both). A single-threaded apartment would need one
// thread with a message loop that every call is sent to, and a client
// that answers a call from that thread with a call back into it
// (IWTSVirtualChannel::Close answered by OnClose) would deadlock it.
type Server struct {
	plugin *Plugin
	clsid  GUID
	inProc bool // serving a host in this process (InProc), not COM clients

	mu    sync.Mutex
	live  int // our objects alive, plus LockServer locks
	used  bool
	usedc chan struct{} // closed at the first object
	idle  chan struct{} // closed when live drops to 0 after use

	stop    chan struct{}
	stopped chan error
}

// NewServer registers p's class object under clsid ("{...}"). Close
// revokes it.
func NewServer(clsid string, p *Plugin) (*Server, error) {
	g, err := ParseGUID(clsid)
	if err != nil {
		return nil, err
	}
	s := &Server{plugin: p, clsid: g, usedc: make(chan struct{}), idle: make(chan struct{}),
		stop: make(chan struct{}), stopped: make(chan error, 1)}
	ready := make(chan error, 1)
	go s.apartment(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return s, nil
}

// apartment is the thread that holds the process in the MTA and owns the
// class object's registration.
func (s *Server) apartment(ready chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if h := coInitializeEx(windows.COINIT_MULTITHREADED); h.Failed() {
		ready <- fmt.Errorf("com: CoInitializeEx(COINIT_MULTITHREADED): %w", hresult.New("", h))
		return
	}
	defer coUninitialize()
	f := newObject(classFactoryVtbl, &classFactory{s: s}, nil, IID_IClassFactory)
	cookie, h := coRegisterClassObject(&s.clsid, f.mem, clsctxLocalServer, regclsSingleUse)
	if h.Failed() {
		f.release()
		ready <- fmt.Errorf("com: CoRegisterClassObject(%v): %w", s.clsid, hresult.New("", h))
		return
	}
	ready <- nil
	<-s.stop
	h = coRevokeClassObject(cookie)
	f.release()
	if h.Failed() {
		s.stopped <- fmt.Errorf("com: CoRevokeClassObject: %w", hresult.New("", h))
		return
	}
	s.stopped <- nil
}

func (s *Server) hold() {
	s.mu.Lock()
	s.live++
	s.mu.Unlock()
}

func (s *Server) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live--
	if s.live == 0 && s.used {
		select {
		case <-s.idle:
		default:
			close(s.idle)
		}
	}
}

func (s *Server) markUsed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.used {
		s.used = true
		close(s.usedc)
	}
}

// Wait returns nil once a client has created a plugin and every object
// has been released (the client terminated and released the plugin, or
// COM ran its references down after the client died), ctx.Err() when
// ctx ends first, and ErrNotActivated when nothing was created within
// timeout (no limit if timeout is 0).
func (s *Server) Wait(ctx context.Context, timeout time.Duration) error {
	var expire <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expire = t.C
	}
	used := s.usedc
	for {
		select {
		case <-s.idle:
			return nil
		case <-used:
			expire = nil
			used = nil // no longer selected
		case <-expire:
			return ErrNotActivated
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close revokes the class object and leaves the apartment. Objects still
// held by a client keep working until released, but the process is
// expected to exit.
func (s *Server) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	return <-s.stopped
}

// Serve is what the exe does when COM starts it with -Embedding: register
// the class, serve plugin instances until the client is done with them,
// revoke, return.
func Serve(ctx context.Context, clsid string, p *Plugin) error {
	s, err := NewServer(clsid, p)
	if err != nil {
		return err
	}
	werr := s.Wait(ctx, ActivationTimeout)
	if cerr := s.Close(); werr == nil {
		werr = cerr
	}
	return werr
}
