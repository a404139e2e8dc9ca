//go:build tools

// Package tools pins the Go modules that the tests and benchmarks build:
// go-plugin's own examples are compiled straight from the module cache.
package tools

import (
	_ "connectrpc.com/connect"
	_ "github.com/hashicorp/go-plugin"
	_ "github.com/hashicorp/go-plugin/examples/bidirectional/proto"
	_ "github.com/hashicorp/go-plugin/examples/grpc/proto"
	_ "golang.org/x/net/http2"
	_ "google.golang.org/grpc"
	_ "google.golang.org/protobuf/proto"
)
