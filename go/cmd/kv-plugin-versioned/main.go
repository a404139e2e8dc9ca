// Command kv-plugin-versioned is go-plugin's examples/grpc KV plugin served
// at two protocol versions with ServeConfig.VersionedPlugins, as Terraform
// providers serve tfprotov5 and tfprotov6. Version 2's Get prefixes values
// with "v2:", so that a test can tell which set the host got.
package main

import (
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/examples/grpc/shared"

	"github.com/connect-plugin/connect-plugin/go/internal/memkv"
)

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			1: {"kv": &shared.KVGRPCPlugin{Impl: memkv.New("v1:")}},
			2: {"kv": &shared.KVGRPCPlugin{Impl: memkv.New("v2:")}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}
