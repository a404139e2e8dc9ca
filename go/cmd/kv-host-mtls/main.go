// Command kv-host-mtls is go-plugin's examples/grpc host with one change:
// AutoMTLS is on. The tests use it to show that a TypeScript plugin answers
// a go-plugin host's automatic mutual TLS. (With AutoMTLS off, the tests run
// go-plugin's unmodified example host.) With KV_HOST_MUX set, it also asks
// for go-plugin's gRPC broker multiplexing (GRPCBrokerMultiplex). `hold KEY
// VALUE` puts, prints "ready PID" (the pid of the sh that runs the plugin)
// and waits to be killed: the tests SIGKILL it and watch the plugin.
package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/examples/grpc/shared"
)

func run() error {
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:     shared.Handshake,
		Plugins:             shared.PluginMap,
		Cmd:                 exec.Command("sh", "-c", os.Getenv("KV_PLUGIN")),
		AllowedProtocols:    []plugin.Protocol{plugin.ProtocolNetRPC, plugin.ProtocolGRPC},
		AutoMTLS:            true,
		GRPCBrokerMultiplex: os.Getenv("KV_HOST_MUX") != "",
	})
	defer client.Kill()

	rpcClient, err := client.Client()
	if err != nil {
		return err
	}
	if err := rpcClient.Ping(); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	raw, err := rpcClient.Dispense(shared.PluginGRPC)
	if err != nil {
		return err
	}
	kv := raw.(shared.KV)
	os.Args = os.Args[1:]
	switch os.Args[0] {
	case "get":
		result, err := kv.Get(os.Args[1])
		if err != nil {
			return err
		}
		fmt.Println(string(result))
	case "put":
		if err := kv.Put(os.Args[1], []byte(os.Args[2])); err != nil {
			return err
		}
	case "hold":
		if err := kv.Put(os.Args[1], []byte(os.Args[2])); err != nil {
			return err
		}
		fmt.Printf("ready %d\n", client.ReattachConfig().Pid)
		select {}
	default:
		return fmt.Errorf("please only use 'get', 'put' or 'hold', given: %q", os.Args[0])
	}
	return nil
}

func main() {
	log.SetOutput(io.Discard)
	if err := run(); err != nil {
		fmt.Printf("error: %+v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}
