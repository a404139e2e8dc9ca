// The go-plugin benchmark's plugin: echoes bytes, streams small messages.
package main

import (
	"context"

	"github.com/connect-plugin/connect-plugin/go/bench/goplugin/shared"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type server struct{}

func (server) Echo(_ context.Context, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
	return in, nil
}

func (server) Stream(in *wrapperspb.Int64Value, stream grpc.ServerStream) error {
	msg := wrapperspb.Bytes(make([]byte, 16))
	for i := int64(0); i < in.GetValue(); i++ {
		if err := stream.SendMsg(msg); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins:         map[string]plugin.Plugin{"bench": &shared.BenchPlugin{Impl: server{}}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
