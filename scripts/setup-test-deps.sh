#!/usr/bin/env bash
# Installs what the test suite needs beyond npm packages, or says clearly
# what is missing. Today the suite needs only Node.js itself; the later
# suites (go-plugin interop, DNS, etcd, OCI) add their packages here.
set -euo pipefail

missing=()
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  missing+=("Node.js 20 or later (found $(node --version))")
fi
if [ ! -d node_modules ]; then
  missing+=("npm packages: run 'npm ci' first")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "cannot run the tests; missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "ok: node $(node --version), npm packages installed"
