"""SQLTraceBench's dialect plugin in Python (examples/dialect): SchemaConverter
and QueryTranslator served with grpcio, speaking connect-plugin's protocol
(docs/protocol.md) in gRPC: the cookie, the launch token on stdin, a unix
socket in a private directory, the handshake line, PluginController and
grpc.health.v1, shutdown on Shutdown, SIGTERM or end-of-file on stdin, and
network mode with CONNECT_PLUGIN_LISTEN."""

import json
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent import futures
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402

from connectplugin.v1 import controller_pb2, controller_pb2_grpc  # noqa: E402
from example.dialect.v1 import dialect_pb2, dialect_pb2_grpc  # noqa: E402

import convert  # noqa: E402

COOKIE_KEY, COOKIE_VALUE = "SQLTRACEBENCH_PLUGIN", "dialect"
VERSIONS = [1]
CAPABILITIES = ["mysql->postgresql", "mysql->sqlite"]
PLUGINS = [
    ("schema", "example.dialect.v1.SchemaConverter"),
    ("query", "example.dialect.v1.QueryTranslator"),
]


def log(level, message, **fields):
    entry = {"@level": level, "@message": message,
             "@timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    entry.update(fields)
    sys.stderr.write(json.dumps(entry) + "\n")
    sys.stderr.flush()


def negotiate(host_versions):
    shared = [int(v) for v in host_versions.split(",") if v.strip().isdigit() and int(v) in VERSIONS]
    return max(shared) if shared else min(VERSIONS)


class Dialects(dialect_pb2_grpc.SchemaConverterServicer, dialect_pb2_grpc.QueryTranslatorServicer):
    def _check(self, source, context):
        if source != "mysql":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f'unsupported source dialect "{source}" (supported: mysql)')

    def ConvertSchema(self, request, context):
        self._check(request.source_dialect, context)
        try:
            ddl, warnings = convert.convert_schema(request.ddl, request.target_dialect)
        except convert.ConversionError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        return dialect_pb2.ConvertSchemaResponse(ddl=ddl, warnings=warnings)

    def TranslateQuery(self, request, context):
        self._check(request.source_dialect, context)
        try:
            query, warnings = convert.translate_query(request.query, request.target_dialect)
        except convert.ConversionError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        return dialect_pb2.TranslateQueryResponse(query=query, warnings=warnings)


class Controller(controller_pb2_grpc.PluginControllerServicer):
    def __init__(self, state):
        self.state = state

    def Handshake(self, request, context):
        shared = [v for v in request.protocol_versions if v in VERSIONS]
        res = controller_pb2.HandshakeResponse(supported_versions=VERSIONS)
        if shared:
            res.protocol_version = max(shared)
            for name, service in PLUGINS:
                res.available_plugins.add(name=name, version="1.0.0-python",
                                          capabilities=CAPABILITIES, service=service)
        return res

    def Health(self, request, context):
        status = (controller_pb2.HealthResponse.STATUS_SHUTTING_DOWN if self.state.stopping.is_set()
                  else controller_pb2.HealthResponse.STATUS_SERVING)
        return controller_pb2.HealthResponse(status=status)

    def Shutdown(self, request, context):
        if not self.state.allow_shutdown:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "this plugin runs as a network service and does not accept Shutdown from hosts")
        # Answer first; then drain and exit.
        threading.Timer(0.01, self.state.stop, args=(request.reason or "host requested shutdown",)).start()
        return controller_pb2.ShutdownResponse()


class RequireToken(grpc.ServerInterceptor):
    """Refuses every call without the launch token, health checks excepted."""

    def __init__(self, token):
        self.expected = "Bearer " + token

    def intercept_service(self, continuation, details):
        method = details.method
        if method == "/connectplugin.v1.PluginController/Health" or method.startswith("/grpc.health.v1.Health/"):
            return continuation(details)
        given = dict(details.invocation_metadata).get("authorization", "")
        if given == self.expected:
            return continuation(details)

        def refuse(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "this plugin only answers the host that launched it (missing or wrong launch token)")
        return grpc.unary_unary_rpc_method_handler(refuse)


class State:
    def __init__(self, allow_shutdown):
        self.allow_shutdown = allow_shutdown
        self.stopping = threading.Event()
        self.reason = ""

    def stop(self, reason):
        if not self.stopping.is_set():
            self.reason = reason
            self.stopping.set()


def build_server(state, interceptors):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=interceptors)
    dialects = Dialects()
    dialect_pb2_grpc.add_SchemaConverterServicer_to_server(dialects, server)
    dialect_pb2_grpc.add_QueryTranslatorServicer_to_server(dialects, server)
    controller_pb2_grpc.add_PluginControllerServicer_to_server(Controller(state), server)
    checker = health.HealthServicer()
    for name in ["", "plugin"] + [service for _, service in PLUGINS]:
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    return server, checker


def run(state, server, checker, cleanup=lambda: None):
    signal.signal(signal.SIGTERM, lambda *_: state.stop("SIGTERM"))
    while not state.stopping.wait(0.5):
        pass
    checker.enter_graceful_shutdown()
    server.stop(grace=2).wait()
    cleanup()
    log("info", "plugin stopped", reason=state.reason)
    sys.exit(0)


def serve_network(listen):
    state = State(allow_shutdown=False)
    server, checker = build_server(state, [])
    host, _, port = listen.rpartition(":")
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    log("info", "plugin serving", url=f"http://{host}:{bound}", versions=VERSIONS)
    run(state, server, checker)


def serve_launched():
    token = ""
    if os.environ.get("CONNECT_PLUGIN_LAUNCH_TOKEN") == "stdin":
        line = sys.stdin.readline()
        if not line.endswith("\n"):
            sys.exit(1)  # the host died before we started
        token = line[:-1]
    directory = tempfile.mkdtemp(prefix="cp-", dir=os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or None)
    os.chmod(directory, 0o700)
    socket_path = os.path.join(directory, "plugin.sock")
    state = State(allow_shutdown=True)
    server, checker = build_server(state, [RequireToken(token)] if token else [])
    server.add_insecure_port("unix:" + socket_path)
    server.start()
    # SIGINT reaches the host's whole process group on Ctrl-C; the host decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # grpcio speaks gRPC only, whatever CONNECT_PLUGIN_TRANSPORTS offers.
    version = negotiate(os.environ.get("PLUGIN_PROTOCOL_VERSIONS", ""))
    sys.stdout.write(f"1|{version}|unix|{socket_path}|grpc|\n")
    sys.stdout.flush()
    if os.environ.get("CONNECT_PLUGIN_PARENT_WATCH") == "stdin":
        def watch():
            while sys.stdin.read(4096):
                pass
            state.stop("host process went away")
        threading.Thread(target=watch, daemon=True).start()

    def cleanup():
        for path in (socket_path, directory):
            try:
                os.unlink(path) if path == socket_path else os.rmdir(path)
            except OSError:
                pass
    run(state, server, checker, cleanup)


def main():
    listen = os.environ.get("CONNECT_PLUGIN_LISTEN")
    if listen:
        serve_network(listen)
        return
    if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
        sys.stderr.write(f"This program is a plugin (the magic cookie {COOKIE_KEY} is not set).\n"
                         "Plugins are not meant to be executed directly. Run the program that uses this plugin.\n")
        sys.exit(1)
    serve_launched()


if __name__ == "__main__":
    main()
