// Command counter-host-otel is a go-plugin host for examples/bidirectional's
// Counter plugin, traced with otelgrpc: `counter-host-otel KEY VALUE` starts
// a root span, calls Put (the traceparent travels in the gRPC metadata) and
// serves the AddHelper callback through the GRPCBroker with otelgrpc too,
// so that the plugin's call back is a span in the same trace. It prints the
// trace id. Spans go to OTEL_EXPORTER_OTLP_ENDPOINT.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/examples/bidirectional/proto"
	"github.com/hashicorp/go-plugin/examples/bidirectional/shared"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"google.golang.org/grpc"

	"github.com/connect-plugin/connect-plugin/go/internal/tracing"
)

// counterPlugin hands the host the raw Counter client and the broker.
type counterPlugin struct{ plugin.Plugin }

type counter struct {
	broker *plugin.GRPCBroker
	client proto.CounterClient
}

func (counterPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }

func (counterPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return &counter{broker: broker, client: proto.NewCounterClient(conn)}, nil
}

type addHelper struct {
	proto.UnimplementedAddHelperServer
}

func (addHelper) Sum(_ context.Context, req *proto.SumRequest) (*proto.SumResponse, error) {
	return &proto.SumResponse{R: req.A + req.B}, nil
}

func main() {
	log.SetOutput(io.Discard)
	stop, err := tracing.Setup("go-counter-host")
	if err != nil {
		fail(err)
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		Plugins:          plugin.PluginSet{"counter": counterPlugin{}},
		Cmd:              exec.Command("sh", "-c", os.Getenv("COUNTER_PLUGIN")),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler())},
	})
	rpcClient, err := client.Client()
	if err != nil {
		fail(err)
	}
	raw, err := rpcClient.Dispense("counter")
	if err != nil {
		fail(err)
	}
	c := raw.(*counter)
	value, err := strconv.ParseInt(os.Args[2], 10, 64)
	if err != nil {
		fail(err)
	}

	ctx, span := otel.Tracer("counter-host-otel").Start(context.Background(), "go host request")
	id := c.broker.NextId()
	servers := make(chan *grpc.Server, 1)
	go c.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler()))...)
		proto.RegisterAddHelperServer(s, addHelper{})
		servers <- s
		return s
	})
	_, err = c.client.Put(ctx, &proto.PutRequest{AddServer: id, Key: os.Args[1], Value: value})
	span.End()
	select {
	case s := <-servers:
		s.Stop()
	case <-time.After(5 * time.Second):
	}
	client.Kill()
	stop()
	if err != nil {
		fail(err)
	}
	fmt.Println(span.SpanContext().TraceID().String())
}

func fail(err error) {
	fmt.Println("Error:", err.Error())
	os.Exit(1)
}
