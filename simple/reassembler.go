package simple

// Reassembler recovers whole frames from chunks that may split or merge
// them, as a stream-only backend delivers them (xrdp's chansrv forwards
// whatever it has read, up to 32 KiB at a time). On backends that keep
// message boundaries each chunk is exactly one frame and passes straight
// through.
//
// The zero value is ready to use. It is not safe for concurrent use.
type Reassembler struct {
	buf []byte // unconsumed bytes; buf[off:] is pending
	off int
	err error
}

// Add appends a received chunk. The Reassembler copies what it must keep,
// so p may be reused after Add returns. Once a frame's frameLen is found
// invalid the stream cannot be resynchronised: Add and Next keep
// returning that error.
func (r *Reassembler) Add(p []byte) error {
	if r.err != nil {
		return r.err
	}
	if r.off == len(r.buf) {
		r.buf, r.off = r.buf[:0], 0
	} else if r.off > 0 && r.off >= len(r.buf)/2 {
		// Slide the tail down so the buffer does not grow with the stream.
		n := copy(r.buf, r.buf[r.off:])
		r.buf, r.off = r.buf[:n], 0
	}
	r.buf = append(r.buf, p...)
	return r.check()
}

// check validates the pending frame's frameLen as soon as it is complete,
// so a hostile length is refused before anything waits for its payload.
func (r *Reassembler) check() error {
	if _, err := FrameLen(r.buf[r.off:]); err != nil {
		r.err = err
	}
	return r.err
}

// Next returns the next whole frame, frameLen included, or ok == false if
// more bytes are needed. The frame is valid until the next Add.
func (r *Reassembler) Next() (frame []byte, ok bool, err error) {
	if r.err != nil {
		return nil, false, r.err
	}
	n, err := FrameLen(r.buf[r.off:])
	if err != nil {
		r.err = err
		return nil, false, err
	}
	if n == 0 || len(r.buf)-r.off < n {
		return nil, false, nil
	}
	frame = r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return frame, true, nil
}

// Buffered is the number of bytes held that are not yet part of a
// returned frame.
func (r *Reassembler) Buffered() int { return len(r.buf) - r.off }
