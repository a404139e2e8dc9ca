// Command kv-plugin-connect is a connect-plugin plugin written in Go with
// connect-go, without go-plugin: it serves connectplugin.v1.PluginController
// and the KV example's example.kv.v1.KV, so that connect-plugin's TypeScript
// KV host uses it exactly like the TypeScript KV plugin, as a subprocess or
// as a remote service (CONNECT_PLUGIN_LISTEN=HOST:PORT).
//
// It is the whole protocol in one file, as a model for plugins in any
// language: check the cookie, negotiate the version, listen on a private
// unix socket, print the handshake line, require the launch token, exit when
// the host goes away or calls Shutdown. See docs/go-plugin.md.
package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"

	cpv1 "github.com/connect-plugin/connect-plugin/go/gen/connectplugin/v1"
	"github.com/connect-plugin/connect-plugin/go/gen/connectplugin/v1/connectpluginv1connect"
	kvv1 "github.com/connect-plugin/connect-plugin/go/gen/example/kv/v1"
	"github.com/connect-plugin/connect-plugin/go/gen/example/kv/v1/kvv1connect"
	"github.com/connect-plugin/connect-plugin/go/internal/tracing"
)

// The handshake shared with the TypeScript KV example (examples/kv/shared.ts).
const (
	cookieKey   = "KV_PLUGIN"
	cookieValue = "hello"
	version     = 1
)

func main() {
	// With OTEL_EXPORTER_OTLP_ENDPOINT set, otelconnect records a server span
	// per call, in the trace of the traceparent the host sent.
	stopTracing, err := tracing.Setup("kv-plugin-connect")
	if err != nil {
		fatal("tracing", err)
	}
	defer stopTracing()
	if listen := os.Getenv("CONNECT_PLUGIN_LISTEN"); listen != "" {
		serveNetwork(listen)
		return
	}
	if os.Getenv(cookieKey) != cookieValue {
		fmt.Fprintf(os.Stderr, "This binary is a plugin (the magic cookie %s is not set).\n"+
			"Plugins are not meant to be executed directly. Run the program that uses this plugin.\n", cookieKey)
		os.Exit(1)
	}
	serveLaunched()
}

func serveLaunched() {
	// The launch token comes first on stdin; afterwards stdin only tells us,
	// by reaching end-of-file, that the host is gone.
	stdin := bufio.NewReader(os.Stdin)
	var token string
	if os.Getenv("CONNECT_PLUGIN_LAUNCH_TOKEN") == "stdin" {
		line, err := stdin.ReadString('\n')
		if err != nil {
			os.Exit(1) // the host died before we started
		}
		token = strings.TrimSuffix(line, "\n")
	}
	dir, err := os.MkdirTemp(os.Getenv("PLUGIN_UNIX_SOCKET_DIR"), "cp-")
	if err != nil {
		fatal("socket directory", err)
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "plugin.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		fatal("listen", err)
	}

	p := newPlugin()
	handler := p.handler()
	if token != "" {
		handler = requireToken(token, handler)
	}
	server := newServer(handler)
	go func() { _ = server.Serve(ln) }()

	protocol := "grpc"
	if slices.Contains(strings.Split(os.Getenv("CONNECT_PLUGIN_TRANSPORTS"), ","), "connect") {
		protocol = "connect"
	}
	fmt.Printf("1|%d|unix|%s|%s|\n", negotiate(os.Getenv("PLUGIN_PROTOCOL_VERSIONS")), socket, protocol)

	if os.Getenv("CONNECT_PLUGIN_PARENT_WATCH") == "stdin" {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			p.stop("host process went away")
		}()
	}
	reason := <-p.stopped
	shutdown(server, reason)
}

func serveNetwork(listen string) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fatal("listen", err)
	}
	p := newPlugin()
	p.allowShutdown = false
	server := newServer(p.handler())
	go func() { _ = server.Serve(ln) }()
	log("info", "plugin serving", map[string]any{"url": "http://" + ln.Addr().String(), "versions": []int{version}})
	reason := <-p.stopped
	shutdown(server, reason)
}

// newServer serves HTTP/1.1 and HTTP/2 without TLS (h2c), which Connect,
// gRPC and gRPC-web clients all speak.
func newServer(h http.Handler) *http.Server {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{Handler: h, Protocols: protocols, ReadHeaderTimeout: 10 * time.Second}
}

func shutdown(server *http.Server, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx)
	log("info", "plugin stopped", map[string]any{"reason": reason})
}

// negotiate picks the highest version both sides speak, or falls back to
// ours so that the host reports the mismatch (go-plugin's rule).
func negotiate(hostVersions string) int {
	for _, v := range strings.Split(hostVersions, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n == version {
			return version
		}
	}
	return version
}

type plugin struct {
	mu            sync.Mutex
	values        map[string][]byte
	stopped       chan string
	stopOnce      sync.Once
	shuttingDown  bool
	allowShutdown bool
}

func newPlugin() *plugin {
	return &plugin{values: map[string][]byte{}, stopped: make(chan string, 1), allowShutdown: true}
}

func (p *plugin) stop(reason string) {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.shuttingDown = true
		p.mu.Unlock()
		p.stopped <- reason
	})
}

func (p *plugin) handler() http.Handler {
	// The host launched (or is trusted to call) this plugin: its spans are
	// parents, not only links (otelconnect's default for servers).
	otel, err := otelconnect.NewInterceptor(otelconnect.WithTrustRemote())
	if err != nil {
		fatal("otelconnect", err)
	}
	traced := connect.WithInterceptors(otel)
	mux := http.NewServeMux()
	mux.Handle(connectpluginv1connect.NewPluginControllerHandler(&controller{p}, traced))
	mux.Handle(kvv1connect.NewKVHandler(&kv{p: p}, traced))
	return mux
}

// requireToken refuses every call without the launch token, health checks excepted.
func requireToken(token string, next http.Handler) http.Handler {
	expected := []byte("Bearer " + token)
	errs := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given := []byte(r.Header.Get("Authorization"))
		if r.URL.Path != connectpluginv1connect.PluginControllerHealthProcedure &&
			subtle.ConstantTimeCompare(given, expected) != 1 {
			_ = errs.Write(w, r, connect.NewError(connect.CodeUnauthenticated,
				errors.New("this plugin only answers the host that launched it (missing or wrong launch token)")))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type controller struct{ p *plugin }

func (c *controller) Handshake(_ context.Context, req *connect.Request[cpv1.HandshakeRequest]) (*connect.Response[cpv1.HandshakeResponse], error) {
	res := &cpv1.HandshakeResponse{SupportedVersions: []int32{version}}
	if slices.Contains(req.Msg.ProtocolVersions, version) {
		res.ProtocolVersion = version
		res.AvailablePlugins = []*cpv1.PluginInfo{{
			Name:         "kv",
			Version:      "1.0.0-go",
			Capabilities: []string{"connect-go"},
			Service:      kvv1connect.KVName,
		}}
	}
	return connect.NewResponse(res), nil
}

func (c *controller) Health(context.Context, *connect.Request[cpv1.HealthRequest]) (*connect.Response[cpv1.HealthResponse], error) {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	status := cpv1.HealthResponse_STATUS_SERVING
	if c.p.shuttingDown {
		status = cpv1.HealthResponse_STATUS_SHUTTING_DOWN
	}
	return connect.NewResponse(&cpv1.HealthResponse{Status: status}), nil
}

func (c *controller) Shutdown(_ context.Context, req *connect.Request[cpv1.ShutdownRequest]) (*connect.Response[cpv1.ShutdownResponse], error) {
	if !c.p.allowShutdown {
		return nil, connect.NewError(connect.CodePermissionDenied,
			errors.New("this plugin runs as a network service and does not accept Shutdown from hosts"))
	}
	reason := req.Msg.Reason
	if reason == "" {
		reason = "host requested shutdown"
	}
	// Answer first; the server then drains and the process exits.
	time.AfterFunc(10*time.Millisecond, func() { c.p.stop(reason) })
	return connect.NewResponse(&cpv1.ShutdownResponse{}), nil
}

type kv struct {
	kvv1connect.UnimplementedKVHandler
	p *plugin
}

func (k *kv) Get(_ context.Context, req *connect.Request[kvv1.GetRequest]) (*connect.Response[kvv1.GetResponse], error) {
	k.p.mu.Lock()
	defer k.p.mu.Unlock()
	v, ok := k.p.values[req.Msg.Key]
	return connect.NewResponse(&kvv1.GetResponse{Value: v, Found: ok}), nil
}

func (k *kv) Put(_ context.Context, req *connect.Request[kvv1.PutRequest]) (*connect.Response[kvv1.PutResponse], error) {
	k.p.mu.Lock()
	defer k.p.mu.Unlock()
	k.p.values[req.Msg.Key] = append([]byte("go:"), req.Msg.Value...)
	return connect.NewResponse(&kvv1.PutResponse{}), nil
}

// log writes one hclog-style JSON line to stderr, which hosts parse.
func log(level, message string, fields map[string]any) {
	entry := map[string]any{
		"@level":     level,
		"@message":   message,
		"@timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
	}
	for k, v := range fields {
		entry[k] = v
	}
	line, _ := json.Marshal(entry)
	fmt.Fprintln(os.Stderr, string(line))
}

func fatal(what string, err error) {
	log("error", what+" failed", map[string]any{"error": err.Error()})
	os.Exit(1)
}
