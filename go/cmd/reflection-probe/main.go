// Command reflection-probe is a gRPC server reflection client for the tests,
// built on grpc-go's own reflection stubs: it asks a plugin listening on h2c
// which services it serves, fetches the file descriptors of each over the
// same stream, builds them into a registry with protodesc (which fails on a
// missing or malformed dependency), and prints one JSON object:
//
//	reflection-probe ADDR v1|v1alpha
//
//	{"services":[...],"methods":{"pkg.Service":["Method",...]},
//	 "unknownSymbol":{"code":5,"message":"..."}}
//
// A call that fails prints {"error":{"code":"Unimplemented","message":...}}.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	v1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	v1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// asker sends one request on the stream and returns its answer. Both
// versions' messages are the same on the wire, so a v1alpha stream takes and
// gives v1 messages converted through their encoding.
type asker func(*v1.ServerReflectionRequest) (*v1.ServerReflectionResponse, error)

func convert(from, to proto.Message) {
	raw, err := proto.Marshal(from)
	if err == nil {
		err = proto.Unmarshal(raw, to)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// sendError is what a failed Send means. grpc-go's Send returns io.EOF when
// the server has ended the stream (a trailers-only Unimplemented can arrive
// before the request is written); the status is then Recv's.
func sendError(err error, recv func() error) error {
	if errors.Is(err, io.EOF) {
		return recv()
	}
	return err
}

func v1Asker(s grpc.BidiStreamingClient[v1.ServerReflectionRequest, v1.ServerReflectionResponse]) asker {
	return func(req *v1.ServerReflectionRequest) (*v1.ServerReflectionResponse, error) {
		if err := s.Send(req); err != nil {
			return nil, sendError(err, func() error { _, e := s.Recv(); return e })
		}
		return s.Recv()
	}
}

func v1alphaAsker(s grpc.BidiStreamingClient[v1alpha.ServerReflectionRequest, v1alpha.ServerReflectionResponse]) asker {
	return func(req *v1.ServerReflectionRequest) (*v1.ServerReflectionResponse, error) {
		alpha := &v1alpha.ServerReflectionRequest{}
		convert(req, alpha)
		if err := s.Send(alpha); err != nil {
			return nil, sendError(err, func() error { _, e := s.Recv(); return e })
		}
		res, err := s.Recv()
		if err != nil {
			return nil, err
		}
		out := &v1.ServerReflectionResponse{}
		convert(res, out)
		return out, nil
	}
}

func listServices(ask asker) (*v1.ServerReflectionResponse, error) {
	return ask(&v1.ServerReflectionRequest{MessageRequest: &v1.ServerReflectionRequest_ListServices{ListServices: "*"}})
}

func fileContainingSymbol(ask asker, symbol string) (*v1.ServerReflectionResponse, error) {
	return ask(&v1.ServerReflectionRequest{MessageRequest: &v1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}})
}

func fail(err error) {
	st := status.Convert(err)
	out, _ := json.Marshal(map[string]any{"error": map[string]any{"code": st.Code().String(), "message": st.Message()}})
	fmt.Println(string(out))
	os.Exit(0)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: reflection-probe ADDR v1|v1alpha")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(os.Args[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ask asker
	if os.Args[2] == "v1alpha" {
		bidi, err := v1alpha.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			fail(err)
		}
		ask = v1alphaAsker(bidi)
	} else {
		bidi, err := v1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			fail(err)
		}
		ask = v1Asker(bidi)
	}

	list, err := listServices(ask)
	if err != nil {
		fail(err)
	}
	services := []string{}
	for _, s := range list.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	// Every file the server sends, by name: a dependency comes once per stream.
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	for _, name := range services {
		a, err := fileContainingSymbol(ask, name)
		if err != nil {
			fail(err)
		}
		if e := a.GetErrorResponse(); e != nil {
			fmt.Fprintf(os.Stderr, "no file for %s: %d %s\n", name, e.GetErrorCode(), e.GetErrorMessage())
			os.Exit(1)
		}
		for _, raw := range a.GetFileDescriptorResponse().GetFileDescriptorProto() {
			fd := &descriptorpb.FileDescriptorProto{}
			if err := proto.Unmarshal(raw, fd); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if !seen[fd.GetName()] {
				seen[fd.GetName()] = true
				set.File = append(set.File, fd)
			}
		}
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the descriptors:", err)
		os.Exit(1)
	}
	methods := map[string][]string{}
	for _, name := range services {
		d, err := files.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sd := d.(protoreflect.ServiceDescriptor)
		for i := 0; i < sd.Methods().Len(); i++ {
			methods[name] = append(methods[name], string(sd.Methods().Get(i).Name()))
		}
		sort.Strings(methods[name])
	}
	unknown, err := fileContainingSymbol(ask, "no.such.Symbol")
	if err != nil {
		fail(err)
	}
	e := unknown.GetErrorResponse()
	out, _ := json.Marshal(map[string]any{
		"services":      services,
		"methods":       methods,
		"unknownSymbol": map[string]any{"code": e.GetErrorCode(), "message": e.GetErrorMessage()},
	})
	fmt.Println(string(out))
}
