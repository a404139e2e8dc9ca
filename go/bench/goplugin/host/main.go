// The go-plugin benchmark's host: a Go host calling a Go plugin over gRPC,
// the anchor of connect-plugin's benchmark. It reads one JSON command per
// line on stdin and answers one JSON line on stdout, so that the Node
// harness can interleave it with the other contenders round by round.
//
//	{"op":"unary","n":1000,"size":16}        -> {"samples_us":[...]}
//	{"op":"concurrent","ms":1000,"c":64}     -> {"ops_per_s":N}
//	{"op":"stream","n":100000}               -> {"ops_per_s":N}
//	{"op":"cold","n":5}                      -> {"samples_us":[...]}
//	{"op":"rss","plugins":50}                -> {"rss_mb_per_plugin":X}
//
// Usage: host [-automtls] PLUGIN. With -automtls, go-plugin's AutoMTLS is on
// (a throwaway certificate each way, mutual TLS), as connect-plugin's
// default is, so the two can be compared like for like.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/connect-plugin/connect-plugin/go/bench/goplugin/shared"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

type command struct {
	Op      string `json:"op"`
	N       int    `json:"n"`
	Size    int    `json:"size"`
	Ms      int    `json:"ms"`
	C       int    `json:"c"`
	Plugins int    `json:"plugins"`
}

var (
	pluginPath string
	autoMTLS   bool
)

func start() (*plugin.Client, *shared.Client, error) {
	c := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		Plugins:          map[string]plugin.Plugin{"bench": &shared.BenchPlugin{}},
		Cmd:              exec.Command(pluginPath),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         autoMTLS,
		Logger:           hclog.NewNullLogger(),
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
	})
	rpc, err := c.Client()
	if err != nil {
		c.Kill()
		return nil, nil, err
	}
	raw, err := rpc.Dispense("bench")
	if err != nil {
		c.Kill()
		return nil, nil, err
	}
	return c, raw.(*shared.Client), nil
}

func rssMB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "-automtls" {
		autoMTLS = true
		args = args[1:]
	}
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: host [-automtls] PLUGIN")
		os.Exit(2)
	}
	pluginPath = args[0]
	pc, client, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer pc.Kill()
	// A harness gone mid-command (Ctrl-C, crash) must not kill this host with
	// SIGPIPE on its answer: the write fails, stdin ends, and the deferred Kill
	// stops the plugin (go-plugin plugins ignore SIGINT and outlive their host).
	signal.Ignore(syscall.SIGPIPE)
	ctx := context.Background()
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var cmd command
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			_ = out.Encode(map[string]string{"error": err.Error()})
			continue
		}
		res, err := run(ctx, client, cmd)
		if err != nil {
			_ = out.Encode(map[string]string{"error": err.Error()})
			continue
		}
		_ = out.Encode(res)
	}
}

func run(ctx context.Context, client *shared.Client, cmd command) (map[string]interface{}, error) {
	switch cmd.Op {
	case "unary":
		payload := make([]byte, cmd.Size)
		samples := make([]float64, 0, cmd.N)
		for i := 0; i < cmd.N; i++ {
			t := time.Now()
			if _, err := client.Echo(ctx, payload); err != nil {
				return nil, err
			}
			samples = append(samples, float64(time.Since(t).Nanoseconds())/1000)
		}
		return map[string]interface{}{"samples_us": samples}, nil
	case "concurrent":
		payload := make([]byte, 16)
		var done int64
		var wg sync.WaitGroup
		end := time.Now().Add(time.Duration(cmd.Ms) * time.Millisecond)
		start := time.Now()
		for w := 0; w < cmd.C; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					if _, err := client.Echo(ctx, payload); err == nil {
						atomic.AddInt64(&done, 1)
					}
				}
			}()
		}
		wg.Wait()
		return map[string]interface{}{"ops_per_s": float64(done) / time.Since(start).Seconds()}, nil
	case "stream":
		t := time.Now()
		got, err := client.Stream(ctx, int64(cmd.N))
		if err != nil {
			return nil, err
		}
		return map[string]interface{}{"ops_per_s": float64(got) / time.Since(t).Seconds()}, nil
	case "cold":
		samples := make([]float64, 0, cmd.N)
		for i := 0; i < cmd.N; i++ {
			t := time.Now()
			pc, c, err := start()
			if err != nil {
				return nil, err
			}
			if _, err := c.Echo(ctx, []byte("x")); err != nil {
				pc.Kill()
				return nil, err
			}
			samples = append(samples, float64(time.Since(t).Nanoseconds())/1000)
			pc.Kill()
		}
		return map[string]interface{}{"samples_us": samples}, nil
	case "rss":
		runtime.GC()
		debug.FreeOSMemory()
		before := rssMB()
		clients := make([]*plugin.Client, 0, cmd.Plugins)
		for i := 0; i < cmd.Plugins; i++ {
			pc, c, err := start()
			if err != nil {
				return nil, err
			}
			if _, err := c.Echo(ctx, []byte("x")); err != nil {
				return nil, err
			}
			clients = append(clients, pc)
		}
		runtime.GC()
		debug.FreeOSMemory()
		after := rssMB()
		for _, pc := range clients {
			pc.Kill()
		}
		return map[string]interface{}{"rss_mb_per_plugin": (after - before) / float64(cmd.Plugins)}, nil
	}
	return nil, fmt.Errorf("unknown op %q", cmd.Op)
}
