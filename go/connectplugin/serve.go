// Package connectplugin serves a connect-go plugin to a connect-plugin host:
// the protocol of docs/protocol.md in one place, so that each Go plugin of
// the examples is only its services. go/cmd/kv-plugin-connect is the same
// protocol written out in a single file, as a model for other languages.
//
// What Serve does, in order: in network mode (CONNECT_PLUGIN_LISTEN) serve
// HTTP/1.1 and h2c on that address; otherwise check the magic cookie, read
// the launch token from stdin, listen on a unix socket in a fresh 0700
// directory under PLUGIN_UNIX_SOCKET_DIR, turn on AutoMTLS when the host
// sent PLUGIN_CLIENT_CERT, print the handshake line, serve
// connectplugin.v1.PluginController and grpc.health.v1 beside the plugin's
// services, and exit 0 on Shutdown, SIGTERM, or end-of-file on stdin.
package connectplugin

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	cpv1 "github.com/connect-plugin/connect-plugin/go/gen/connectplugin/v1"
	"github.com/connect-plugin/connect-plugin/go/gen/connectplugin/v1/connectpluginv1connect"
)

// Plugin is one service the plugin serves, as the host's Handshake lists it.
type Plugin struct {
	Name         string
	Version      string
	Capabilities []string
	// Service is the fully qualified protobuf service name.
	Service string
	// Path and Handler are what a generated NewXxxHandler returns.
	Path    string
	Handler http.Handler
}

// Config is what the plugin and its hosts agree on.
type Config struct {
	CookieKey   string
	CookieValue string
	// Versions this plugin speaks; the first is used when none is shared.
	Versions []int32
	Plugins  []Plugin
	// OnStop runs after the server has drained (close pools here).
	OnStop func()
}

// ConfigEnv carries the plugin's configuration (JSON), validated by the host
// against the manifest's configSchema.
const ConfigEnv = "CONNECT_PLUGIN_CONFIG"

// DecodeConfig reads CONNECT_PLUGIN_CONFIG into v, rejecting unknown fields.
// A missing variable leaves v as it is.
func DecodeConfig(v any) error {
	raw := os.Getenv(ConfigEnv)
	if raw == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid %s: %w", ConfigEnv, err)
	}
	return nil
}

// Serve runs the plugin until the host stops it, then exits the process.
func Serve(cfg Config) {
	// Registered before the handshake line, so that a SIGTERM right after it
	// is a graceful stop too.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	stopSignals = signals
	if len(cfg.Versions) == 0 {
		cfg.Versions = []int32{1}
	}
	if listen := os.Getenv("CONNECT_PLUGIN_LISTEN"); listen != "" {
		serveNetwork(cfg, listen)
		return
	}
	if os.Getenv(cfg.CookieKey) != cfg.CookieValue {
		fmt.Fprintf(os.Stderr, "This binary is a plugin (the magic cookie %s is not set).\n"+
			"Plugins are not meant to be executed directly. Run the program that uses this plugin.\n", cfg.CookieKey)
		os.Exit(1)
	}
	serveLaunched(cfg)
}

func serveLaunched(cfg Config) {
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

	cert := ""
	var tlsConfig *tls.Config
	if pem := os.Getenv("PLUGIN_CLIENT_CERT"); pem != "" {
		tlsConfig, cert, err = autoMTLS([]byte(pem))
		if err != nil {
			fatal("AutoMTLS", err)
		}
		ln = tls.NewListener(ln, tlsConfig)
	}

	s := newState(cfg, true)
	handler := s.handler()
	if token != "" {
		handler = requireToken(token, handler)
	}
	server := newServer(handler, tlsConfig != nil)
	go func() { _ = server.Serve(ln) }()

	protocol := "grpc"
	if slices.Contains(strings.Split(os.Getenv("CONNECT_PLUGIN_TRANSPORTS"), ","), "connect") {
		protocol = "connect"
	}
	fmt.Printf("1|%d|unix|%s|%s|%s\n", negotiate(cfg.Versions, os.Getenv("PLUGIN_PROTOCOL_VERSIONS")), socket, protocol, cert)

	if os.Getenv("CONNECT_PLUGIN_PARENT_WATCH") == "stdin" {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			s.stop("host process went away")
		}()
	}
	s.run(server)
}

func serveNetwork(cfg Config, listen string) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fatal("listen", err)
	}
	s := newState(cfg, false)
	server := newServer(s.handler(), false)
	go func() { _ = server.Serve(ln) }()
	Log("info", "plugin serving", map[string]any{"url": "http://" + ln.Addr().String(), "versions": cfg.Versions})
	s.run(server)
}

// newServer serves HTTP/2 (h2c, or over TLS) and HTTP/1.1: Connect, gRPC
// and gRPC-web clients all speak one of them.
func newServer(h http.Handler, overTLS bool) *http.Server {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	if overTLS {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Server{Handler: h, Protocols: protocols, ReadHeaderTimeout: 10 * time.Second}
}

// negotiate picks the highest version both sides speak, or falls back to
// our lowest so that the host reports the mismatch (go-plugin's rule).
func negotiate(ours []int32, hostVersions string) int32 {
	best := int32(-1)
	for _, v := range strings.Split(hostVersions, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err == nil && slices.Contains(ours, int32(n)) && int32(n) > best {
			best = int32(n)
		}
	}
	if best >= 0 {
		return best
	}
	return slices.Min(ours)
}

// stopSignals receives SIGTERM and SIGINT from the start of Serve.
var stopSignals chan os.Signal

type state struct {
	cfg           Config
	mu            sync.Mutex
	stopped       chan string
	stopOnce      sync.Once
	shuttingDown  bool
	allowShutdown bool
}

func newState(cfg Config, allowShutdown bool) *state {
	return &state{cfg: cfg, stopped: make(chan string, 1), allowShutdown: allowShutdown}
}

func (s *state) stop(reason string) {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.shuttingDown = true
		s.mu.Unlock()
		s.stopped <- reason
	})
}

// run waits for a stop (Shutdown, SIGTERM, the host gone), drains, exits 0.
// SIGINT is ignored: Ctrl-C reaches the host's whole process group, and the
// host decides when its plugins stop.
func (s *state) run(server *http.Server) {
	go func() {
		for sig := range stopSignals {
			if sig == syscall.SIGTERM {
				s.stop("SIGTERM")
			}
		}
	}()
	reason := <-s.stopped
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx)
	if s.cfg.OnStop != nil {
		s.cfg.OnStop()
	}
	Log("info", "plugin stopped", map[string]any{"reason": reason})
}

func (s *state) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(connectpluginv1connect.NewPluginControllerHandler(&controller{s}))
	names := []string{"plugin"}
	for _, p := range s.cfg.Plugins {
		mux.Handle(p.Path, p.Handler)
		names = append(names, p.Service)
	}
	mux.Handle(grpchealth.NewHandler(&healthChecker{s: s, names: names}))
	return mux
}

// requireToken refuses every call without the launch token, health checks excepted.
func requireToken(token string, next http.Handler) http.Handler {
	expected := []byte("Bearer " + token)
	errs := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given := []byte(r.Header.Get("Authorization"))
		health := r.URL.Path == connectpluginv1connect.PluginControllerHealthProcedure ||
			strings.HasPrefix(r.URL.Path, "/grpc.health.v1.Health/")
		if !health && subtle.ConstantTimeCompare(given, expected) != 1 {
			_ = errs.Write(w, r, connect.NewError(connect.CodeUnauthenticated,
				errors.New("this plugin only answers the host that launched it (missing or wrong launch token)")))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type controller struct{ s *state }

func (c *controller) Handshake(_ context.Context, req *connect.Request[cpv1.HandshakeRequest]) (*connect.Response[cpv1.HandshakeResponse], error) {
	res := &cpv1.HandshakeResponse{SupportedVersions: c.s.cfg.Versions}
	for _, v := range req.Msg.ProtocolVersions {
		if slices.Contains(c.s.cfg.Versions, v) && v > res.ProtocolVersion {
			res.ProtocolVersion = v
		}
	}
	if res.ProtocolVersion != 0 {
		for _, p := range c.s.cfg.Plugins {
			res.AvailablePlugins = append(res.AvailablePlugins, &cpv1.PluginInfo{
				Name: p.Name, Version: p.Version, Capabilities: p.Capabilities, Service: p.Service,
			})
		}
	}
	return connect.NewResponse(res), nil
}

func (c *controller) status() cpv1.HealthResponse_Status {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.shuttingDown {
		return cpv1.HealthResponse_STATUS_SHUTTING_DOWN
	}
	return cpv1.HealthResponse_STATUS_SERVING
}

func (c *controller) Health(context.Context, *connect.Request[cpv1.HealthRequest]) (*connect.Response[cpv1.HealthResponse], error) {
	return connect.NewResponse(&cpv1.HealthResponse{Status: c.status()}), nil
}

func (c *controller) Shutdown(_ context.Context, req *connect.Request[cpv1.ShutdownRequest]) (*connect.Response[cpv1.ShutdownResponse], error) {
	if !c.s.allowShutdown {
		return nil, connect.NewError(connect.CodePermissionDenied,
			errors.New("this plugin runs as a network service and does not accept Shutdown from hosts"))
	}
	reason := req.Msg.Reason
	if reason == "" {
		reason = "host requested shutdown"
	}
	// Answer first; the server then drains and the process exits.
	time.AfterFunc(10*time.Millisecond, func() { c.s.stop(reason) })
	return connect.NewResponse(&cpv1.ShutdownResponse{}), nil
}

// healthChecker answers grpc.health.v1 for "", "plugin" and each service.
type healthChecker struct {
	s     *state
	names []string
}

func (h *healthChecker) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && !slices.Contains(h.names, req.Service) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
	}
	if (&controller{h.s}).status() != cpv1.HealthResponse_STATUS_SERVING {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

// Log writes one hclog-style JSON line to stderr, which hosts parse.
func Log(level, message string, fields map[string]any) {
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
	Log("error", what+" failed", map[string]any{"error": err.Error()})
	os.Exit(1)
}
