#!/usr/bin/env bash
# Fails when src/gen or examples/kv/gen differ from what buf generates from
# the .proto files now, so that nobody edits generated code by hand and no
# .proto change lands without its generated code.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npx buf generate -o "$out"
npx buf generate --template buf.gen.examples.yaml -o "$out"
npx buf generate --template buf.gen.goplugin.yaml -o "$out"
for e in dbengine workload dialect dataprocessor callbacks; do
  npx buf generate --template "examples/$e/buf.gen.yaml" -o "$out"
done
status=0
diff -r "$out/src/gen" src/gen || status=1
diff -r "$out/examples/kv/gen" examples/kv/gen || status=1
diff -r "$out/examples/goplugin/gen" examples/goplugin/gen || status=1
for e in dbengine workload dialect dataprocessor callbacks; do
  diff -r "$out/examples/$e/gen" "examples/$e/gen" || status=1
done
if [ $status -ne 0 ]; then
  echo "generated code is stale: run 'npm run generate' and commit the result" >&2
fi
exit $status
