// Command kv-host-mtls is go-plugin's examples/grpc host with one change:
// AutoMTLS is on (unless KV_HOST_MTLS=off). The tests use it to show that a TypeScript plugin answers
// a go-plugin host's automatic mutual TLS. (With AutoMTLS off, the tests run
// go-plugin's unmodified example host.) With KV_HOST_MUX set, it also asks
// for go-plugin's gRPC broker multiplexing (GRPCBrokerMultiplex). `hold KEY
// VALUE` puts, prints "ready PID" (the pid of the sh that runs the plugin)
// and waits to be killed: the tests SIGKILL it and watch the plugin. `idle
// KEY VALUE SECONDS` puts, leaves the connection idle that long, then gets,
// as a long-lived host does between calls. KV_HOST_MTLS=off turns AutoMTLS
// off (the plugin then serves h2c).
package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/examples/grpc/shared"
)

func run() error {
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:     shared.Handshake,
		Plugins:             shared.PluginMap,
		Cmd:                 exec.Command("sh", "-c", os.Getenv("KV_PLUGIN")),
		AllowedProtocols:    []plugin.Protocol{plugin.ProtocolNetRPC, plugin.ProtocolGRPC},
		AutoMTLS:            os.Getenv("KV_HOST_MTLS") != "off",
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
	case "idle":
		if err := kv.Put(os.Args[1], []byte(os.Args[2])); err != nil {
			return err
		}
		seconds, err := strconv.Atoi(os.Args[3])
		if err != nil {
			return err
		}
		time.Sleep(time.Duration(seconds) * time.Second)
		result, err := kv.Get(os.Args[1])
		if err != nil {
			return fmt.Errorf("get after %d s idle: %w", seconds, err)
		}
		fmt.Println(string(result))
	default:
		return fmt.Errorf("please only use 'get', 'put', 'hold' or 'idle', given: %q", os.Args[0])
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
