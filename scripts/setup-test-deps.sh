#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages (Debian packages when
# run as root), or says clearly what is missing and how to get it.
set -euo pipefail

# Debian packages the tests use, as "command:package".
# dnsmasq (DNS SRV), etcd (discovery) and docker-registry (OCI distribution)
# are real servers that the tests start on loopback ports; kubectl applies
# deploy/kubernetes/ to a real kube-apiserver; buildah builds the plugin image;
# chromium (headless, driven by playwright-core) runs the browser example and
# the status page; valgrind counts a cold start's instructions
# (`npm run bench:cold -- --instructions`).
debian_packages=(
  "openssl:openssl"
  "dnsmasq:dnsmasq-base"
  "etcd:etcd-server"
  "docker-registry:docker-registry"
  "htpasswd:apache2-utils"
  "kubectl:kubernetes-client"
  "buildah:buildah"
  "ip:iproute2"
  "prometheus:prometheus"
  "sqlite3:sqlite3"
  "chromium:chromium"
  "valgrind:valgrind"
)
# PostgreSQL's server binaries are not on PATH (/usr/lib/postgresql/N/bin);
# the seed examples' tests start one with initdb and postgres directly.
# Debian puts dnsmasq in /usr/sbin, which is not on every user's PATH.
export PATH="$PATH:/usr/sbin"

missing=()
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  missing+=("Node.js 20 or later (found $(node --version))")
fi
if [ ! -d node_modules ]; then
  missing+=("npm packages: run 'npm ci' first")
fi

to_install=()
for entry in "${debian_packages[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || to_install+=("${entry#*:}")
done
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || to_install+=("postgresql")
# The Python dialect plugin runs in a venv (Debian splits venv out of python3).
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || to_install+=("python3-venv")
if [ ${#to_install[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${to_install[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${to_install[@]}" >/dev/null
  else
    missing+=("Debian packages ${to_install[*]} (install them, or run the tests as root to have them installed)")
  fi
fi

# The Go programs the tests build (go-plugin's own examples, our Go plugins,
# the benchmark's Go contenders) come from the Go module proxy.
if command -v go >/dev/null 2>&1; then
  # Building once warms the build cache, so that the tests' go builds (pgx and
  # the pure-Go SQLite driver are large) only link.
  (cd go && go mod download && go build ./...)
  # kube-apiserver for the Kubernetes tests, from the module proxy; cached
  # (about 3 minutes the first time, instant afterwards).
  kube_apiserver=$(bash scripts/build-kube-apiserver.sh)
  # A minimal OpenTelemetry Collector (OTLP receiver, file exporter) for the
  # observability tests, rebuilt only when its sources change.
  collector=.cache/otelcol-test
  if [ ! -x "$collector" ] || [ go/otelcol-test/main.go -nt "$collector" ] || [ go/otelcol-test/go.sum -nt "$collector" ]; then
    echo "building the test OpenTelemetry Collector (go/otelcol-test; a few minutes the first time)"
    mkdir -p .cache
    (cd go/otelcol-test && go build -o ../../"$collector" .)
  fi
else
  missing+=("Go 1.24 or later (the go-plugin interoperability tests build Go programs)")
fi

# The Python dialect plugin: grpcio from PyPI in .venv, and its generated stubs.
if [ ${#missing[@]} -eq 0 ]; then
  bash examples/dialect/python/generate.sh
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "cannot run the tests; missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "ok: node $(node --version), npm packages, $(openssl version), $(go version), dnsmasq, etcd, docker-registry, kubectl, buildah, prometheus, otelcol-test, postgresql, sqlite3, python venv, chromium, $kube_apiserver"
