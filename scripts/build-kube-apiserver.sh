#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy for the Kubernetes tests and
# prints the binary's path. The binary is cached under
# ${CONNECT_PLUGIN_TEST_CACHE:-~/.cache/connect-plugin/test-deps}/kube-apiserver/<version>/,
# so only the first run pays the ~3 minute build (later runs return at once).
#
# Why not `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.31.14`: the
# module's go.mod replaces every k8s.io/* staging module with ./staging/...,
# and the staging directory is empty in the module zip. So: copy the module,
# drop vendor/ and go.work, swap each ./staging replace for the published
# v0.<minor>.<patch> module with `go mod edit`, and build with -mod=mod.
# Never `go mod tidy`: the proxy refuses zips of staging modules that
# kube-apiserver never imports (kube-controller-manager among them).
set -euo pipefail

version="${KUBE_APISERVER_VERSION:-v1.31.14}"
staging_version="v0.${version#v1.}"
cache_root="${CONNECT_PLUGIN_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/connect-plugin/test-deps}"
out_dir="$cache_root/kube-apiserver/$version"
binary="$out_dir/kube-apiserver"

if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "build-kube-apiserver: Go is not installed" >&2; exit 1; }

mkdir -p "$out_dir"
work="$(mktemp -d "$out_dir/build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "build-kube-apiserver: downloading k8s.io/kubernetes@$version" >&2
module_dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
cp -r "$module_dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
rm -rf vendor go.work go.work.sum

# Every `replace k8s.io/X => ./staging/...` becomes a require of the published module.
edits=()
while read -r path; do
  edits+=("-dropreplace=$path" "-require=$path@$staging_version")
done < <(go mod edit -json | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        print(r["Old"]["Path"])')
[ ${#edits[@]} -gt 0 ] || { echo "build-kube-apiserver: no ./staging replaces found in go.mod" >&2; exit 1; }
go mod edit "${edits[@]}"

echo "build-kube-apiserver: building cmd/kube-apiserver (about 3 minutes cold)" >&2
GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o "$work/kube-apiserver" ./cmd/kube-apiserver
mv "$work/kube-apiserver" "$binary"
echo "$binary"
