package device

import (
	"sync"

	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// Sharing enforces dwShareMode across the open handles of one device, as
// Windows does for CreateFile: an open fails with ERROR_SHARING_VIOLATION
// when it asks for an access that an open handle does not share, or when it
// does not share an access that an open handle has. Handles that ask for
// neither read nor write access (an IOCTL-only handle) never conflict.
//
// Every backend of this package uses one; other backends may too. The zero
// value is ready to use.
type Sharing struct {
	mu    sync.Mutex
	next  uint64
	opens map[uint64]shareEntry
}

type shareEntry struct{ read, write, shareRead, shareWrite bool }

// Acquire checks req against the open handles and records it. release,
// which is idempotent, forgets it again when the handle closes.
func (s *Sharing) Acquire(req OpenRequest) (release func(), err error) {
	e := shareEntry{
		read: req.WantsRead(), write: req.WantsWrite(),
		shareRead:  req.ShareMode&wire.FileShareRead != 0,
		shareWrite: req.ShareMode&wire.FileShareWrite != 0,
	}
	if !e.read && !e.write {
		// As IoCheckShareAccess: an open without data access is not
		// checked, and constrains no later open.
		e.shareRead, e.shareWrite = true, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.opens {
		if !e.read && !e.write {
			break
		}
		if (e.read && !o.shareRead) || (e.write && !o.shareWrite) ||
			(o.read && !e.shareRead) || (o.write && !e.shareWrite) {
			return nil, errorf("CreateFile", ErrorSharingViolation, "an open handle does not share the access asked for, or has one this open does not share")
		}
	}
	if s.opens == nil {
		s.opens = map[uint64]shareEntry{}
	}
	s.next++
	id := s.next
	s.opens[id] = e
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.opens, id)
			s.mu.Unlock()
		})
	}, nil
}

// Open reports how many handles are recorded.
func (s *Sharing) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.opens)
}
