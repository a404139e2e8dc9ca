// Command kv-plugin-otelgrpc is go-plugin's examples/grpc KV plugin with its
// gRPC server instrumented by otelgrpc: with OTEL_EXPORTER_OTLP_ENDPOINT set,
// every call the host makes records a server span, continuing the trace
// whose W3C traceparent came in the call's metadata.
package main

import (
	"log"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/examples/grpc/shared"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"

	"github.com/connect-plugin/connect-plugin/go/internal/memkv"
	"github.com/connect-plugin/connect-plugin/go/internal/tracing"
)

func main() {
	stop, err := tracing.Setup("kv-plugin-otelgrpc")
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins:         plugin.PluginSet{"kv": &shared.KVGRPCPlugin{Impl: memkv.New("")}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler()))...)
		},
	})
}
