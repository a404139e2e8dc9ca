// Command kv-answer-early is a connect-go server of the KV example's
// example.kv.v1.KV whose Exchange (bidi) reads one request, sends
// ANSWERS (3) answers and returns while the client's request is still
// open. Go's HTTP/2 server then ends the response and resets the stream
// with NO_ERROR (RFC 9113 §8.1): a host must read that as a whole answer,
// not a cut one, on every protocol (Connect, gRPC, gRPC-web). It listens
// on 127.0.0.1 (h2c) and prints its URL on stdout; it exits when stdin
// closes.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"

	kvv1 "github.com/connect-plugin/connect-plugin/go/gen/example/kv/v1"
	"github.com/connect-plugin/connect-plugin/go/gen/example/kv/v1/kvv1connect"
)

// answers sent for the one request read.
const answers = 3

type kv struct {
	kvv1connect.UnimplementedKVHandler
}

func (kv) Exchange(_ context.Context, stream *connect.BidiStream[kvv1.GetRequest, kvv1.GetResponse]) error {
	req, err := stream.Receive()
	if err != nil {
		return err
	}
	stream.ResponseHeader().Set("x-head", "early")
	stream.ResponseTrailer().Set("x-tail", "early")
	for i := 0; i < answers; i++ {
		value := fmt.Sprintf("%s:%d", req.GetKey(), i)
		if err := stream.Send(&kvv1.GetResponse{Value: []byte(value), Found: true}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.Handle(kvv1connect.NewKVHandler(kv{}))
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	server := &http.Server{Handler: mux, Protocols: protocols, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(ln) }()
	fmt.Printf("http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = server.Close()
}
