// Command kv-plugin-debug is go-plugin's examples/grpc KV plugin started by
// hand in debug mode, as Terraform's providers do with -debug: it serves
// with ServeConfig.Test (so no host launched it and none may stop it),
// prints its reattach config on stdout as one line
// `CONNECT_PLUGIN_REATTACH=<json>` (go-plugin's ReattachConfig in the JSON
// shape of Terraform's TF_REATTACH_PROVIDERS), and serves until SIGINT or
// SIGTERM. A host detaching does not stop it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/examples/grpc/shared"

	"github.com/connect-plugin/connect-plugin/go/internal/memkv"
	"github.com/connect-plugin/connect-plugin/go/internal/reattachjson"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	configs := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	go func() {
		select {
		case c := <-configs:
			line, err := json.Marshal(reattachjson.From(c))
			if err != nil {
				fmt.Fprintf(os.Stderr, "error: %v\n", err)
				os.Exit(1)
			}
			fmt.Printf("CONNECT_PLUGIN_REATTACH=%s\n", line)
		case <-closed:
		}
	}()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins: map[string]plugin.Plugin{
			"kv": &shared.KVGRPCPlugin{Impl: memkv.New("")},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Test: &plugin.ServeTestConfig{
			Context:          ctx,
			ReattachConfigCh: configs,
			CloseCh:          closed,
		},
	})
}
