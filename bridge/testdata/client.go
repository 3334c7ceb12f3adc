package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	c, err := net.Dial("unix", os.Args[1])
	if err != nil {
		panic(err)
	}
	msg := []byte(os.Args[2])
	c.Write(append(binary.LittleEndian.AppendUint32(nil, uint32(len(msg))), msg...))
	var head [4]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		panic(err)
	}
	reply := make([]byte, binary.LittleEndian.Uint32(head[:]))
	if _, err := io.ReadFull(c, reply); err != nil {
		panic(err)
	}
	fmt.Println(string(reply))
}
