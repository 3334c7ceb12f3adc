package wire

// docExamples are the examples of docs/tunnel.md, by the name each line
// starts with there.
var docExamples = []struct {
	name string
	msg  Message
}{
	{"OPEN", Open{Window: 262144, Target: Addr{Host: "example.com", Port: 80}}},
	{"OPEN4", Open{Window: 262144, Target: Addr{Host: "192.0.2.10", Port: 443}}},
	{"OPEN6", Open{Window: 65536, Target: Addr{Host: "2001:db8::1", Port: 22}}},
	{"REPLY", Reply{Code: ReplySucceeded, Window: 262144, Bound: Addr{Host: "198.51.100.7", Port: 50123}}},
	{"REFUSED", Reply{Code: ReplyConnectionRefused, Bound: Addr{Host: "0.0.0.0"}}},
	{"DATA", Data{Payload: []byte("hello")}},
	{"CREDIT", Credit{Increment: 65536}},
	{"EOF", EOF{}},
	{"CLOSE", Close{Reason: CloseNormal}},
	{"LISTEN", Listen{Addr: Addr{Host: "127.0.0.1", Port: 8080}}},
	{"ACCEPTED", Accepted{ID: 1, Peer: Addr{Host: "127.0.0.1", Port: 51000}}},
	{"ATTACH", Attach{ID: 1, Window: 262144}},
}
