package wire

// ParseRequest decodes one FileRedirectorChannel message from the server,
// choosing the type by FunctionId. An unknown FunctionId is an error
// wrapping ErrUnknownFunction: the client MUST then close the channel
// instance (2.2.2.1.1).
func ParseRequest(b []byte) (Request, error) {
	h, err := ParseServerIOHeader(b)
	if err != nil {
		return nil, err
	}
	switch h.FunctionID {
	case FunctionRead:
		return asRequest(ParseReadRequest(b))
	case FunctionWrite:
		return asRequest(ParseWriteRequest(b))
	case FunctionIOControl:
		return asRequest(ParseIOControlRequest(b))
	case FunctionCreateFile:
		return asRequest(ParseCreateFileRequest(b))
	case FunctionCapabilities:
		return asRequest(ParseServerCapabilitiesRequest(b))
	case FunctionSpecificIoCancel:
		return asRequest(ParseSpecificIoCancelRequest(b))
	}
	return nil, newError("ServerIOHeader", "FunctionId", ErrUnknownFunction, "0x%08X", uint32(h.FunctionID))
}

func asRequest[T Request](v T, err error) (Request, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ParseReply decodes a reply from the client to a request with FunctionId
// fn.
//
// A reply does not say what it answers: CLIENT_IO_HEADER has only the
// RequestId, and the Read and IOControl replies even share a layout. The
// caller finds fn by looking the RequestId (ParseClientIOHeader) up among
// its outstanding requests. There is no reply to a Specific IoCancel
// Request, so that fn, like an unknown one, is an error.
func ParseReply(b []byte, fn FunctionID) (Reply, error) {
	switch fn {
	case FunctionRead:
		return asReply(ParseReadReply(b))
	case FunctionWrite:
		return asReply(ParseWriteReply(b))
	case FunctionIOControl:
		return asReply(ParseIOControlReply(b))
	case FunctionCreateFile:
		return asReply(ParseCreateFileReply(b))
	case FunctionCapabilities:
		return asReply(ParseClientCapabilitiesReply(b))
	case FunctionSpecificIoCancel:
		return nil, newError("ClientIOHeader", "", ErrInvalid, "SPECIFIC_IOCANCEL_REQUEST has no reply")
	}
	return nil, newError("ClientIOHeader", "", ErrUnknownFunction, "no reply is defined for 0x%08X", uint32(fn))
}

func asReply[T Reply](v T, err error) (Reply, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ParseFileRedirector decodes one FileRedirectorChannel message sent in
// direction dir: from the server a Request, whatever fn is; from the
// client a ClientDeviceCustomEvent when PacketType says so, and otherwise
// the Reply to a request with FunctionId fn (see ParseReply for why fn is
// needed).
func ParseFileRedirector(dir Direction, b []byte, fn FunctionID) (Message, error) {
	switch dir {
	case ServerToClient:
		return ParseRequest(b)
	case ClientToServer:
		h, err := ParseClientIOHeader(b)
		if err != nil {
			return nil, err
		}
		if h.PacketType == PacketTypeCustomEvent {
			return asMessage(ParseClientDeviceCustomEvent(b))
		}
		return ParseReply(b, fn)
	}
	return nil, newError("FileRedirectorChannel", "", ErrInvalid, "direction %v", dir)
}

// CheckReply checks rep against the request req it answers, as a server
// must before completing the request: same RequestId and function, and no
// more data than asked for. req and rep are values, as the Parse functions
// return them, not pointers. cbBytesReadReturned above the request's cbOut
// MUST close the channel (3.3.5.2.2.8); cbBytesRead above cbBytesToRead is
// held to the same rule, as nothing could receive the excess. The error
// wraps ErrInvalid and names the offending field.
func CheckReply(req Request, rep Reply) error {
	h := req.Header()
	if rep.Function() != h.FunctionID {
		return newError(typeName(rep), "", ErrInvalid, "answers %v, request is %v", rep.Function(), h.FunctionID)
	}
	if id := rep.Header().RequestID; id != h.RequestID {
		return newError(typeName(rep), "RequestId", ErrInvalid, "0x%06X, request has 0x%06X", id, h.RequestID)
	}
	switch q := req.(type) {
	case ReadRequest:
		if p, ok := rep.(ReadReply); ok && uint64(len(p.Data)) > uint64(q.BytesToRead) {
			return newError("ReadReply", "cbBytesRead", ErrInvalid, "%d > cbBytesToRead %d", len(p.Data), q.BytesToRead)
		}
	case IOControlRequest:
		if p, ok := rep.(IOControlReply); ok && uint64(len(p.Data)) > uint64(q.OutputBufferSize) {
			return newError("IOControlReply", "cbBytesReadReturned", ErrInvalid, "%d > cbOut %d", len(p.Data), q.OutputBufferSize)
		}
	}
	return nil
}

func typeName(m Message) string {
	switch m.(type) {
	case ReadReply:
		return "ReadReply"
	case WriteReply:
		return "WriteReply"
	case IOControlReply:
		return "IOControlReply"
	case CreateFileReply:
		return "CreateFileReply"
	case ClientCapabilitiesReply:
		return "ClientCapabilitiesReply"
	}
	return "Reply"
}

// SpecName returns the specification's name and section for a message
// of this package, such as "Read Reply Message (2.2.2.3.4)", for logs and
// `rdpdvc decode`; "" for anything else.
func SpecName(m Message) string {
	switch m.(type) {
	case ServerVersion:
		return "Server Version Message (2.2.1.2.1)"
	case ClientVersion:
		return "Client Version Message (2.2.1.2.2)"
	case AuthenticatedClient:
		return "Authenticated Client Message (2.2.1.2.3)"
	case ClientDeviceAddition:
		return "Client Device Addition Message (2.2.1.3.1)"
	case ClientDeviceRemoval:
		return "Client Device Removal Message (2.2.1.3.2)"
	case ServerCapabilitiesRequest:
		return "Server Capabilities Request Message (2.2.2.2.1)"
	case ClientCapabilitiesReply:
		return "Client Capabilities Reply Message (2.2.2.2.2)"
	case CreateFileRequest:
		return "CreateFile Request Message (2.2.2.3.1)"
	case CreateFileReply:
		return "CreateFile Reply Message (2.2.2.3.2)"
	case ReadRequest:
		return "Read Request Message (2.2.2.3.3)"
	case ReadReply:
		return "Read Reply Message (2.2.2.3.4)"
	case WriteRequest:
		return "Write Request Message (2.2.2.3.5)"
	case WriteReply:
		return "Write Reply Message (2.2.2.3.6)"
	case IOControlRequest:
		return "IOControl Request Message (2.2.2.3.7)"
	case IOControlReply:
		return "IOControl Reply Message (2.2.2.3.8)"
	case SpecificIoCancelRequest:
		return "Specific IoCancel Request Message (2.2.2.3.9)"
	case ClientDeviceCustomEvent:
		return "Client Device Custom Event Message (2.2.2.3.10)"
	}
	return ""
}
