// Command tls-wrong-key is a TLS client for the tests that presents a
// certificate with a private key that is not the certificate's: node refuses
// to load such a pair, and Go's tls.X509KeyPair checks it too, but a
// tls.Certificate built by hand is sent as it is. It dials, writes one line,
// reads, and prints one JSON line: how far it got and the error it met.
//
//	tls-wrong-key ADDR CERT_PEM_FILE KEY_PEM_FILE [ALPN]
//
// ADDR is "unix:/path" or "host:port". The server's certificate is not
// checked (the test is about the client's).
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: tls-wrong-key ADDR CERT_PEM_FILE KEY_PEM_FILE [ALPN]")
		os.Exit(2)
	}
	certDER := pemBlock(os.Args[2])
	key, err := x509.ParsePKCS8PrivateKey(pemBlock(os.Args[3]))
	if err != nil {
		fail("key", err)
	}
	config := &tls.Config{
		InsecureSkipVerify: true,
		Certificates:       []tls.Certificate{{Certificate: [][]byte{certDER}, PrivateKey: key}},
	}
	if len(os.Args) > 4 {
		config.NextProtos = []string{os.Args[4]}
	}
	network, address := "tcp", os.Args[1]
	if strings.HasPrefix(address, "unix:") {
		network, address = "unix", strings.TrimPrefix(address, "unix:")
	}
	raw, err := net.DialTimeout(network, address, 10*time.Second)
	if err != nil {
		fail("dial", err)
	}
	conn := tls.Client(raw, config)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := conn.Handshake(); err != nil {
		fail("handshake", err)
	}
	// In TLS 1.3 the client finishes its handshake before the server has
	// checked its certificate: the server's verdict comes with the first read.
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		fail("write", err)
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		fail("read", err)
	}
	emit(map[string]any{"stage": "answered", "bytes": n})
}

func pemBlock(file string) []byte {
	data, err := os.ReadFile(file)
	if err != nil {
		fail("read "+file, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		fail("pem "+file, fmt.Errorf("no PEM block"))
	}
	return block.Bytes
}

func fail(stage string, err error) {
	emit(map[string]any{"stage": stage, "error": err.Error()})
	os.Exit(1)
}

func emit(fields map[string]any) {
	line, _ := json.Marshal(fields)
	fmt.Println(string(line))
}
