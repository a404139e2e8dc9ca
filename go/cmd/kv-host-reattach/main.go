// kv-host-reattach is go-plugin's examples/grpc host, attaching instead of
// launching: it reads a plugin's reattach config (the JSON a connect-plugin
// plugin prints in debug mode, Terraform's TF_REATTACH_PROVIDERS shape) from
// CONNECT_PLUGIN_REATTACH, attaches with plugin.ClientConfig.Reattach, runs
// `put KEY VALUE` or `get KEY`, and detaches (Kill does not kill a plugin in
// Test mode).
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/examples/grpc/shared"

	"github.com/connect-plugin/connect-plugin/go/internal/reattachjson"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var r reattachjson.Config
	if err := json.Unmarshal([]byte(os.Getenv("CONNECT_PLUGIN_REATTACH")), &r); err != nil {
		return fmt.Errorf("CONNECT_PLUGIN_REATTACH: %w", err)
	}
	reattach, err := r.ReattachConfig()
	if err != nil {
		return err
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		Plugins:          shared.PluginMap,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Reattach:         reattach,
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		return err
	}
	raw, err := rpc.Dispense(shared.PluginGRPC)
	if err != nil {
		return err
	}
	kv := raw.(shared.KV)
	switch os.Args[1] {
	case "put":
		return kv.Put(os.Args[2], []byte(os.Args[3]))
	case "get":
		v, err := kv.Get(os.Args[2])
		if err != nil {
			return err
		}
		fmt.Println(string(v))
	}
	return nil
}
