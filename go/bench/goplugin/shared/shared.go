// Package shared is what the go-plugin benchmark's Go host and Go plugin
// share: the handshake and bench.v1.BenchService. The service is declared by
// hand with grpc.ServiceDesc over protobuf's wrapper messages, so that no
// code generation is needed; connect-plugin's side declares the same service
// (bench/service.ts), so one Node host can call this plugin too.
package shared

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Handshake is the go-plugin handshake both sides use.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BENCH_PLUGIN",
	MagicCookieValue: "bench",
}

const (
	EchoMethod   = "/bench.v1.BenchService/Echo"
	StreamMethod = "/bench.v1.BenchService/Stream"
)

// Server is the plugin's implementation.
type Server interface {
	Echo(context.Context, *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error)
	Stream(*wrapperspb.Int64Value, grpc.ServerStream) error
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: "bench.v1.BenchService",
	HandlerType: (*Server)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return srv.(Server).Echo(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: EchoMethod}
			return interceptor(ctx, in, info, func(ctx context.Context, req interface{}) (interface{}, error) {
				return srv.(Server).Echo(ctx, req.(*wrapperspb.BytesValue))
			})
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		ServerStreams: true,
		Handler: func(srv interface{}, stream grpc.ServerStream) error {
			in := new(wrapperspb.Int64Value)
			if err := stream.RecvMsg(in); err != nil {
				return err
			}
			return srv.(Server).Stream(in, stream)
		},
	}},
	Metadata: "bench/v1/bench.proto",
}

// Client calls the plugin.
type Client struct{ conn *grpc.ClientConn }

func (c *Client) Echo(ctx context.Context, payload []byte) ([]byte, error) {
	out := new(wrapperspb.BytesValue)
	err := c.conn.Invoke(ctx, EchoMethod, wrapperspb.Bytes(payload), out)
	return out.GetValue(), err
}

// Stream asks for n messages and returns how many arrived.
func (c *Client) Stream(ctx context.Context, n int64) (int64, error) {
	desc := &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true}
	stream, err := c.conn.NewStream(ctx, desc, StreamMethod)
	if err != nil {
		return 0, err
	}
	if err := stream.SendMsg(wrapperspb.Int64(n)); err != nil {
		return 0, err
	}
	if err := stream.CloseSend(); err != nil {
		return 0, err
	}
	var got int64
	msg := new(wrapperspb.BytesValue)
	for {
		if err := stream.RecvMsg(msg); err != nil {
			if err.Error() == "EOF" {
				return got, nil
			}
			return got, err
		}
		got++
	}
}

// BenchPlugin is the go-plugin GRPCPlugin for the service.
type BenchPlugin struct {
	plugin.Plugin
	Impl Server
}

func (p *BenchPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&serviceDesc, p.Impl)
	return nil
}

func (p *BenchPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &Client{conn: c}, nil
}
