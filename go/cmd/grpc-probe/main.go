// Command grpc-probe is a grpc-go client for the tests: it makes one call to
// a plugin listening on h2c and prints what grpc-go reports, as one JSON line
// per event on stdout.
//
//	grpc-probe ADDR call /pkg.Service/Method   # unary call with an empty message
//	grpc-probe ADDR watch SERVICE              # grpc.health.v1.Health/Watch
//
// The watch prints each status, and exits when stdin is closed (the test
// holds it open while it checks that the stream is still open).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

func emit(fields map[string]any) {
	line, _ := json.Marshal(fields)
	fmt.Println(string(line))
}

func emitError(err error) {
	st := status.Convert(err)
	emit(map[string]any{"code": st.Code().String(), "message": st.Message()})
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: grpc-probe ADDR call|watch ARG")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(os.Args[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	switch os.Args[2] {
	case "call":
		err := conn.Invoke(ctx, os.Args[3], &emptypb.Empty{}, &emptypb.Empty{})
		if err == nil {
			emit(map[string]any{"code": "OK"})
		} else {
			emitError(err)
		}
	case "watch":
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
		stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: os.Args[3]})
		if err != nil {
			emitError(err)
			return
		}
		for {
			res, err := stream.Recv()
			if err != nil {
				emitError(err)
				return
			}
			emit(map[string]any{"status": res.GetStatus().String()})
		}
	}
}
