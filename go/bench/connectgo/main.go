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
package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"

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

// handler routes the service's two procedures, as a generated handler does.
func handler() http.Handler {
	echoHandler := connect.NewUnaryHandler(echoProcedure, echo)
	streamHandler := connect.NewServerStreamHandler(streamProcedure, stream)
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
			Handler: handler(),
		}},
	})
}
