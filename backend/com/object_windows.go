package com

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/rdpdvc/rdpdvc/hresult"
)

// How a COM object made here looks in memory: COM holds a pointer to a
// block that starts with the vtable pointer. The block is LocalAlloc'd, so
// the Go collector never moves or frees it; its second word is a key into
// the objects table, which holds the Go side. Interface pointers handed to
// COM are therefore never Go pointers.
type objectMem struct {
	vtbl uintptr
	key  uintptr
}

// object is the Go side of one COM object: its reference count, the
// interfaces it answers QueryInterface for, and what it does.
type object struct {
	mem  uintptr // *objectMem, what COM sees as the interface pointer
	key  uintptr
	refs atomic.Int32
	iids []GUID
	impl any
	// free runs once when the count reaches zero, before the memory goes.
	free func()
}

var (
	objMu   sync.Mutex
	objects = map[uintptr]*object{}
	objKey  uintptr
)

// liveObjects is the number of objects not yet freed, for leak checks.
func liveObjects() int {
	objMu.Lock()
	defer objMu.Unlock()
	return len(objects)
}

// newObject makes a COM object with one reference (the caller's) that
// answers for IUnknown and iids, with vtbl as its vtable.
func newObject(vtbl *vtable, impl any, free func(), iids ...GUID) *object {
	mem, err := windows.LocalAlloc(windows.LPTR, uint32(unsafe.Sizeof(objectMem{})))
	if err != nil {
		panic("com: LocalAlloc: " + err.Error()) // out of memory
	}
	o := &object{mem: mem, iids: iids, impl: impl, free: free}
	o.refs.Store(1)
	objMu.Lock()
	objKey++
	o.key = objKey
	objects[o.key] = o
	objMu.Unlock()
	m := (*objectMem)(ptr(mem))
	m.vtbl = vtbl.addr
	m.key = o.key
	return o
}

// lookup finds the Go side of a COM object made here; nil if this is not
// one (or was freed).
func lookup(this uintptr) *object {
	if this == 0 {
		return nil
	}
	key := (*objectMem)(ptr(this)).key
	objMu.Lock()
	defer objMu.Unlock()
	return objects[key]
}

func (o *object) addRef() uint32 { return uint32(o.refs.Add(1)) }

func (o *object) release() uint32 {
	n := o.refs.Add(-1)
	if n == 0 {
		objMu.Lock()
		delete(objects, o.key)
		objMu.Unlock()
		if o.free != nil {
			o.free()
		}
		(*objectMem)(ptr(o.mem)).key = 0
		windows.LocalFree(windows.Handle(o.mem))
	}
	if n < 0 {
		// A caller released more than it held: a bug on their side that
		// would otherwise become a use after free on ours.
		panic("com: object released more times than referenced")
	}
	return uint32(n)
}

// ptr turns an address COM gave us into a pointer. The double indirection
// keeps go vet's unsafeptr check quiet: these addresses are never Go
// memory, so the collector has nothing to track.
func ptr(u uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&u)) }

// vtable is a LocalAlloc'd array of method addresses: IUnknown's three
// first, then the interface's own, in declaration order.
type vtable struct{ addr uintptr }

// IUnknown's methods, shared by every vtable here: they work on the
// object table, whatever the interface.
var (
	cbQueryInterface = syscall.NewCallback(queryInterface)
	cbAddRef         = syscall.NewCallback(func(this uintptr) uintptr {
		if o := lookup(this); o != nil {
			return uintptr(o.addRef())
		}
		return 0
	})
	cbRelease = syscall.NewCallback(func(this uintptr) uintptr {
		if o := lookup(this); o != nil {
			return uintptr(o.release())
		}
		return 0
	})
)

// queryInterface is IUnknown::QueryInterface(REFIID riid, void **ppv) for
// every object made here.
func queryInterface(this, riid, ppv uintptr) uintptr {
	if ppv == 0 {
		return uintptr(hresult.E_POINTER)
	}
	*(*uintptr)(ptr(ppv)) = 0
	o := lookup(this)
	if o == nil || riid == 0 {
		return uintptr(hresult.E_POINTER)
	}
	iid := *(*GUID)(ptr(riid))
	if iid != IID_IUnknown {
		found := false
		for _, i := range o.iids {
			if i == iid {
				found = true
				break
			}
		}
		if !found {
			return uintptr(hresult.E_NOINTERFACE)
		}
	}
	o.addRef()
	*(*uintptr)(ptr(ppv)) = this
	return uintptr(hresult.S_OK)
}

// newVtable allocates a vtable: IUnknown's methods, then methods. Each
// method is a syscall.NewCallback address; there is one vtable per
// interface for the life of the process (callbacks cannot be freed).
func newVtable(methods ...uintptr) *vtable {
	all := append([]uintptr{cbQueryInterface, cbAddRef, cbRelease}, methods...)
	mem, err := windows.LocalAlloc(windows.LPTR, uint32(len(all))*uint32(unsafe.Sizeof(uintptr(0))))
	if err != nil {
		panic("com: LocalAlloc: " + err.Error())
	}
	copy(unsafe.Slice((*uintptr)(ptr(mem)), len(all)), all)
	return &vtable{addr: mem}
}

// Method indexes in every vtable.
const (
	methodQueryInterface = 0
	methodAddRef         = 1
	methodRelease        = 2
)

// comCall calls method number idx of the COM interface pointer this (an
// object made elsewhere: mstsc's, COM's, or a test's) with args. The
// uintptrescapes directive makes Go pointers converted to uintptr in the
// arguments live on the heap and stay alive for the call, as for
// syscall.SyscallN: the callee may call back into Go, and a goroutine
// stack that grows meanwhile must not move what it points to.
//
//go:uintptrescapes
func comCall(this uintptr, idx int, args ...uintptr) uintptr {
	vtbl := *(*uintptr)(ptr(this))
	fn := *(*uintptr)(ptr(vtbl + uintptr(idx)*unsafe.Sizeof(uintptr(0))))
	a := make([]uintptr, 0, 1+len(args))
	a = append(a, this)
	a = append(a, args...)
	r, _, _ := syscall.SyscallN(fn, a...)
	return r
}

// comAddRef and comRelease hold and drop a reference on a foreign
// interface pointer.
func comAddRef(this uintptr)  { comCall(this, methodAddRef) }
func comRelease(this uintptr) { comCall(this, methodRelease) }

// hr turns a method's return value into an HRESULT: only the low 32 bits
// are defined.
func hr(r uintptr) hresult.HRESULT { return hresult.HRESULT(uint32(r)) }

// inMTA runs f on a thread that is in the process's multithreaded
// apartment, where every interface pointer this package holds belongs
// (see Server). The goroutine is pinned to its thread for the call, and
// the thread joins the MTA explicitly (CoInitializeEx is cheap when it
// already has), so a Go thread some other code left in a single-threaded
// apartment is refused rather than used from the wrong apartment.
func inMTA(f func() hresult.HRESULT) hresult.HRESULT {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if h := coInitializeEx(windows.COINIT_MULTITHREADED); h.Failed() {
		return h // RPC_E_CHANGED_MODE: this thread is in an STA
	}
	defer coUninitialize()
	return f()
}
