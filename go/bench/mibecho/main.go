// The Go side of bench/mib-floor.ts: [u32 length][payload] frames echoed
// store and forward over a unix socket, each end a process of its own.
//
//	mibecho call PATH N   listens on PATH, prints "listening"; once the echo
//	                      dialled, N/3 round trips of 1 MiB, prints "warm",
//	                      waits for a line on stdin, N timed: {"p50_us":X}
//	mibecho echo PATH     dials PATH and writes every frame back whole
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"github.com/connect-plugin/connect-plugin/go/bench/roundtrips"
)

const mib = 1 << 20

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: mibecho call PATH N | echo PATH"))
	}
	var err error
	switch os.Args[1] {
	case "call":
		n := 300
		if len(os.Args) > 3 {
			n, err = strconv.Atoi(os.Args[3])
			if err != nil {
				fail(err)
			}
		}
		err = call(os.Args[2], n)
	case "echo":
		err = echo(os.Args[2])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mibecho:", err)
	os.Exit(1)
}

// readFrame reads one frame's payload into a buffer of its size.
func readFrame(r io.Reader) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	payload := make([]byte, binary.BigEndian.Uint32(head[:]))
	_, err := io.ReadFull(r, payload)
	return payload, err
}

// writeFrame writes header and payload as one buffer (one write).
func writeFrame(w io.Writer, payload []byte) error {
	buf := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(len(payload)))
	copy(buf[4:], payload)
	_, err := w.Write(buf)
	return err
}

func echo(path string) error {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return err
	}
	for {
		payload, err := readFrame(conn)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := writeFrame(conn, payload); err != nil {
			return err
		}
	}
}

func call(path string, n int) error {
	conn, err := roundtrips.AcceptOne(path, "listening")
	if err != nil {
		return err
	}
	msg := make([]byte, mib)
	roundTrip := func() error {
		if err := writeFrame(conn, msg); err != nil {
			return err
		}
		_, err := readFrame(conn)
		return err
	}
	if err := roundtrips.Run(n/3, n, roundTrip); err != nil {
		return err
	}
	return conn.Close()
}
