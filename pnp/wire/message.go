package wire

// Message is implemented by every message type of this package.
type Message interface {
	// Len is the encoded length in bytes: exactly what Append adds.
	Len() int
	// Append appends the encoded message to b and returns the extended
	// slice. It grows b at most once, so appending into a reused buffer
	// with enough capacity does not allocate.
	Append(b []byte) []byte
}

// Request is a FileRedirectorChannel message from the server
// (SERVER_IO_HEADER, 2.2.2.1.1).
type Request interface {
	Message
	// Header returns the SERVER_IO_HEADER the message carries; FunctionID
	// is implied by the type.
	Header() ServerIOHeader
}

// Reply is a FileRedirectorChannel response from the client: a
// CLIENT_IO_HEADER with PacketType RESPONSE_PACKET (2.2.2.1.2).
type Reply interface {
	Message
	// Header returns the CLIENT_IO_HEADER the message carries.
	Header() ClientIOHeader
	// Function is the FunctionId of the request this reply answers. The
	// wire does not carry it: a reply is matched to its request by
	// RequestId alone.
	Function() FunctionID
}

// grow makes room for n more bytes in one step.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b
}

// asMessage boxes a concrete decoder's result, keeping a failed decode's
// Message nil rather than a zero value.
func asMessage[T Message](v T, err error) (Message, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}
