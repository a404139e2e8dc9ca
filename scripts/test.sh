#!/usr/bin/env bash
# The whole test suite: `npm test`. It sets up what the tests need, checks that
# generated code is current, builds, lints, and runs every test file.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "setup: test dependencies"
bash scripts/setup-test-deps.sh

step "generated code is up to date (buf generate)"
npm run --silent generate:check

step "type-check and build"
npm run --silent build

step "lint and format"
npm run --silent lint

step "tests"
npm run --silent test:only

# Minutes, not seconds (npm pack, npm install from the registry, a build), so
# apart from the per-file timeout above.
step "the package as npm users get it: pack, scaffold, install, start"
npm run --silent test:package
