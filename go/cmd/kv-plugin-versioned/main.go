// Command kv-plugin-versioned is go-plugin's examples/grpc KV plugin served
// at two protocol versions with ServeConfig.VersionedPlugins, as Terraform
// providers serve tfprotov5 and tfprotov6. Version 2's Get prefixes values
// with "v2:", so that a test can tell which set the host got.
package main

import (
	"fmt"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/examples/grpc/shared"
)

type KV struct {
	prefix string
	values map[string][]byte
}

func (kv *KV) Put(key string, value []byte) error {
	kv.values[key] = value
	return nil
}

func (kv *KV) Get(key string) ([]byte, error) {
	v, ok := kv.values[key]
	if !ok {
		return nil, fmt.Errorf("no such key %q", key)
	}
	return append([]byte(kv.prefix), v...), nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			1: {"kv": &shared.KVGRPCPlugin{Impl: &KV{prefix: "v1:", values: map[string][]byte{}}}},
			2: {"kv": &shared.KVGRPCPlugin{Impl: &KV{prefix: "v2:", values: map[string][]byte{}}}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}
