#!/usr/bin/env bash
# Makes the Python plugin's venv (.venv at the repository root, from
# requirements.txt) and generates its gRPC stubs into examples/dialect/python/gen
# (not committed; run by scripts/setup-test-deps.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r "$root/examples/dialect/python/requirements.txt"
out="$root/examples/dialect/python/gen"
rm -rf "$out"
mkdir -p "$out"
"$venv/bin/python" -m grpc_tools.protoc -I "$root/proto" -I "$root/examples/dialect/proto" \
  --python_out="$out" --grpc_python_out="$out" \
  connectplugin/v1/controller.proto example/dialect/v1/dialect.proto
