import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
msg = sys.argv[2].encode()
s.sendall(struct.pack("<I", len(msg)) + msg)
def recv(n):
    b = b""
    while len(b) < n: b += s.recv(n - len(b)) or sys.exit("bridge closed")
    return b
print(recv(struct.unpack("<I", recv(4))[0]).decode())
