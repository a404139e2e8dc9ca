// Command grpc-probe is a grpc-go client for the tests: it makes one call to
// a plugin listening on h2c and prints what grpc-go reports, as one JSON line
// per event on stdout.
//
//	grpc-probe ADDR call /pkg.Service/Method   # unary call with an empty message
//	grpc-probe ADDR watch SERVICE              # grpc.health.v1.Health/Watch
//	grpc-probe ADDR putmany N                  # KV/PutMany: N puts (k0..), one answer
//	grpc-probe ADDR exchange N                 # KV/Exchange: N gets, each answer read before the next
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
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	kvv1 "github.com/connect-plugin/connect-plugin/go/gen/example/kv/v1"
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
		fmt.Fprintln(os.Stderr, "usage: grpc-probe ADDR call|watch|putmany|exchange ARG")
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
	case "putmany":
		putMany(ctx, conn, count(os.Args[3]))
	case "exchange":
		exchange(ctx, conn, count(os.Args[3]))
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

func count(arg string) int {
	n, err := strconv.Atoi(arg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return n
}

// putMany sends n puts on one client stream and prints the count the plugin answers.
func putMany(ctx context.Context, conn *grpc.ClientConn, n int) {
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, "/example.kv.v1.KV/PutMany")
	if err != nil {
		emitError(err)
		return
	}
	for i := 0; i < n; i++ {
		if err := s.SendMsg(&kvv1.PutRequest{Key: fmt.Sprintf("k%d", i), Value: []byte{byte(i)}}); err != nil {
			break // the status comes from RecvMsg
		}
	}
	if err := s.CloseSend(); err != nil {
		emitError(err)
		return
	}
	var res kvv1.PutManyResponse
	if err := s.RecvMsg(&res); err != nil {
		emitError(err)
		return
	}
	emit(map[string]any{"code": "OK", "count": res.GetCount()})
}

// exchange sends n gets (k0..) on one bidi stream, reading each answer
// before the next get, and prints how many were found, and their values.
func exchange(ctx context.Context, conn *grpc.ClientConn, n int) {
	desc := &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}
	s, err := conn.NewStream(ctx, desc, "/example.kv.v1.KV/Exchange")
	if err != nil {
		emitError(err)
		return
	}
	found := 0
	values := []int{}
	for i := 0; i < n; i++ {
		if err := s.SendMsg(&kvv1.GetRequest{Key: fmt.Sprintf("k%d", i)}); err != nil {
			break
		}
		var res kvv1.GetResponse
		if err := s.RecvMsg(&res); err != nil {
			emitError(err)
			return
		}
		if res.GetFound() {
			found++
		}
		for _, b := range res.GetValue() {
			values = append(values, int(b))
		}
	}
	if err := s.CloseSend(); err != nil {
		emitError(err)
		return
	}
	var res kvv1.GetResponse
	if err := s.RecvMsg(&res); err != io.EOF {
		emitError(err)
		return
	}
	emit(map[string]any{"code": "OK", "found": found, "values": values})
}
