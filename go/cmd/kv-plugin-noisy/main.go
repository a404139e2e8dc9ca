// Command kv-plugin-noisy is go-plugin's examples/grpc KV plugin with
// output for the tests: it logs through hclog (JSON on stderr, as every
// go-plugin plugin does), writes to os.Stdout and os.Stderr (which go-plugin
// forwards over plugin.GRPCStdio), and panics on the key "panic".
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/examples/grpc/shared"

	"github.com/connect-plugin/connect-plugin/go/internal/memkv"
)

// The logger go-plugin is given: JSON lines on the real stderr.
var logger = hclog.New(&hclog.LoggerOptions{
	Level:      hclog.Trace,
	Output:     os.Stderr,
	JSONFormat: true,
})

type KV struct{ *memkv.Store }

func (kv *KV) Put(key string, value []byte) error {
	logger.Info("put called", "key", key, "bytes", len(value))
	switch key {
	case "panic":
		go func() { panic("boom: the plugin crashed on purpose") }()
		select {}
	case "stdio":
		fmt.Fprintln(os.Stdout, "hello on stdout")
		fmt.Fprintln(os.Stderr, "hello on stderr")
	}
	return kv.Store.Put(key, value)
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins: map[string]plugin.Plugin{
			"kv": &shared.KVGRPCPlugin{Impl: &KV{memkv.New("")}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger,
	})
}
