#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages (Debian packages when
# run as root), or says clearly what is missing and how to get it.
set -euo pipefail

# Debian packages the tests use, as "command:package".
# dnsmasq (DNS SRV), etcd (discovery) and docker-registry (OCI distribution)
# are real servers that the tests start on loopback ports; kubectl applies
# deploy/kubernetes/ to a real kube-apiserver; buildah builds the plugin image;
# chromium (headless, driven by playwright-core) runs the browser example and
# the status page.
debian_packages=(
  "openssl:openssl"
  "dnsmasq:dnsmasq-base"
  "etcd:etcd-server"
  "docker-registry:docker-registry"
  "htpasswd:apache2-utils"
  "kubectl:kubernetes-client"
  "buildah:buildah"
  "ip:iproute2"
  "chromium:chromium"
)
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
  (cd go && go mod download)
  # kube-apiserver for the Kubernetes tests, from the module proxy; cached
  # (about 3 minutes the first time, instant afterwards).
  kube_apiserver=$(bash scripts/build-kube-apiserver.sh)
else
  missing+=("Go 1.24 or later (the go-plugin interoperability tests build Go programs)")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "cannot run the tests; missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "ok: node $(node --version), npm packages, $(openssl version), $(go version), dnsmasq, etcd, docker-registry, kubectl, buildah, chromium, $kube_apiserver"
