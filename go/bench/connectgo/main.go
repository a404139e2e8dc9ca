// Command connectgo is the benchmark's connect-go plugin: bench.v1.BenchService
// (echo, and a server stream of 16-byte messages, as bench/service.ts and
// go/bench/goplugin/plugin) served by connectplugin.Serve, the way a plugin
// in another language meets a connect-plugin host. The harness runs it as a
// remote service: CONNECT_PLUGIN_LISTEN=127.0.0.1:0 serves HTTP/1.1 and h2c
// on that address and logs {"url":"http://..."} to stderr.
//
// The service is declared with connect-go's handler constructors over
// protobuf's wrapper messages, as go/bench/goplugin/shared declares it for
// grpc-go, so that the benchmark needs no generated code; a generated
// NewBenchServiceHandler makes the same two calls.
//
// Responses under 1 KiB go uncompressed (connect.WithCompressMinBytes), as
// the Node bench plugin's connect-es handlers do by default: connect-go's
// own default, 0, gzips every response to a client that accepts gzip, as
// connect-plugin's host does, 16-byte ones and each streamed message
// included. BENCH_COMPRESS_MIN_BYTES=N sets another threshold (0 measures
// connect-go's default; docs/http2-client.md has both).
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/connect-plugin/connect-plugin/go/connectplugin"
)

const (
	serviceName     = "bench.v1.BenchService"
	echoProcedure   = "/" + serviceName + "/Echo"
	streamProcedure = "/" + serviceName + "/Stream"
)

// small is every streamed message's payload: 16 bytes of 7, as the Node plugin's.
var small = bytes.Repeat([]byte{7}, 16)

func echo(_ context.Context, req *connect.Request[wrapperspb.BytesValue]) (*connect.Response[wrapperspb.BytesValue], error) {
	return connect.NewResponse(req.Msg), nil
}

func stream(_ context.Context, req *connect.Request[wrapperspb.Int64Value], out *connect.ServerStream[wrapperspb.BytesValue]) error {
	n := req.Msg.GetValue()
	if n < 0 {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("the stream's length must not be negative"))
	}
	msg := wrapperspb.Bytes(small)
	for i := int64(0); i < n; i++ {
		if err := out.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

// compressMinBytes is the smallest response gzipped: BENCH_COMPRESS_MIN_BYTES,
// or 1024 (connect-es' default) when unset.
func compressMinBytes() (int, error) {
	raw := os.Getenv("BENCH_COMPRESS_MIN_BYTES")
	if raw == "" {
		return 1024, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("BENCH_COMPRESS_MIN_BYTES must be a whole number of bytes, 0 or more, got %q", raw)
	}
	return n, nil
}

// handler routes the service's two procedures, as a generated handler does.
func handler(minBytes int) http.Handler {
	opt := connect.WithCompressMinBytes(minBytes)
	echoHandler := connect.NewUnaryHandler(echoProcedure, echo, opt)
	streamHandler := connect.NewServerStreamHandler(streamProcedure, stream, opt)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case echoProcedure:
			echoHandler.ServeHTTP(w, r)
		case streamProcedure:
			streamHandler.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

func main() {
	minBytes, err := compressMinBytes()
	if err != nil {
		connectplugin.Log("error", "bench plugin misconfigured", map[string]any{"error": err.Error()})
		os.Exit(2)
	}
	// The handshake of bench/service.ts (benchHandshake); network mode checks no cookie.
	connectplugin.Serve(connectplugin.Config{
		CookieKey:   "BENCH_PLUGIN",
		CookieValue: "bench",
		Versions:    []int32{1},
		Plugins: []connectplugin.Plugin{{
			Name:    "bench",
			Version: "1.0.0-connect-go",
			Service: serviceName,
			Path:    "/" + serviceName + "/",
			Handler: handler(minBytes),
		}},
	})
}
