// The Go side of bench/tls-floor.ts's ping-pong: small round trips over a
// unix socket, plain or over crypto/tls (TLS 1.3, Go's default suite
// order), each end a process of its own, so that what Go's TLS adds to a
// small call can be set beside what node:tls adds.
//
//	tlsping serve PATH plain|tls CERT KEY   echoes what it reads; prints "ready"
//	tlsping call PATH plain|tls CERT N SIZE N/5 round trips to warm up, prints
//	                                        "warm", waits for a line on stdin,
//	                                        then N timed: prints {"p50_us":X}
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"

	"github.com/connect-plugin/connect-plugin/go/bench/roundtrips"
)

func main() {
	if len(os.Args) < 5 {
		fail(fmt.Errorf("usage: tlsping serve PATH MODE CERT KEY | call PATH MODE CERT N SIZE"))
	}
	path, mode, cert := os.Args[2], os.Args[3], os.Args[4]
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(path, mode, cert, arg(5))
	case "call":
		n, e1 := strconv.Atoi(arg(5))
		size, e2 := strconv.Atoi(arg(6))
		if e1 != nil || e2 != nil {
			fail(fmt.Errorf("N and SIZE must be numbers"))
		}
		err = call(path, mode, cert, n, size)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func arg(i int) string {
	if i >= len(os.Args) {
		fail(fmt.Errorf("missing argument %d", i))
	}
	return os.Args[i]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tlsping:", err)
	os.Exit(1)
}

func serve(path, mode, certFile, keyFile string) error {
	raw, err := roundtrips.AcceptOne(path, "ready")
	if err != nil {
		return err
	}
	conn := raw
	if mode == "tls" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return err
		}
		conn = tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13})
	}
	buf := make([]byte, 64*1024)
	for {
		n, err := conn.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := conn.Write(buf[:n]); err != nil {
			return err
		}
	}
}

func call(path, mode, certFile string, n, size int) error {
	raw, err := net.Dial("unix", path)
	if err != nil {
		return err
	}
	conn := raw
	if mode == "tls" {
		pem, err := os.ReadFile(certFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13})
		if err := c.Handshake(); err != nil {
			return err
		}
		conn = c
	}
	msg := make([]byte, size)
	back := make([]byte, size)
	roundTrip := func() error {
		if _, err := conn.Write(msg); err != nil {
			return err
		}
		_, err := io.ReadFull(conn, back)
		return err
	}
	if err := roundtrips.Run(n/5, n, roundTrip); err != nil {
		return err
	}
	return conn.Close()
}
