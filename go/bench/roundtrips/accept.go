package roundtrips

import (
	"fmt"
	"net"
)

// AcceptOne listens on the unix socket path, prints line on stdout (the
// Node bench waits for it), and returns the first connection.
func AcceptOne(path, line string) (net.Conn, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	fmt.Println(line)
	return l.Accept()
}
