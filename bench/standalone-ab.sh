#!/usr/bin/env bash
# Stream and 1 MiB figures of single contenders, each host and plugin alone
# (nothing else of the benchmark alive): go-plugin with and without
# AutoMTLS, and the framed transport (AutoMTLS, and autoMTLS: false) of two
# builds, driven through their hosts' JSON-lines protocol (bench/node-host.ts).
#   bench/standalone-ab.sh MAIN_DIST BRANCH_DIST [ROUNDS]
# Prints per run: round, scenario, contender, and the three 200k-message
# streams' msgs/s (after one 30k warm-up stream), or the p50 in µs of 90
# 1 MiB calls (after 30 to warm up), or the p50 in µs of 3 x 2000 sequential
# 16 B calls (scenario unary, after 500 to warm up). Contenders run in a
# shuffled order per round, a fresh host each time. Compare within a round.
# SCENARIOS (default "stream mib"; also "unary") and CONTENDERS (default: the
# six below without the remote ones) pick; the remote ones
# ({main,branch}-remote-framed{,-tls}) run the plugin in network mode on
# loopback TCP.
set -euo pipefail
main=$(realpath "$1"); branch=$(realpath "$2"); rounds=${3:-3}
here=$(dirname "$(realpath "$0")")
go_dir=$(realpath "$here/../go" 2>/dev/null || realpath "$here/../../go")
bin=$(mktemp -d); trap 'rm -rf "$bin"' EXIT
(cd "$go_dir" && go build -o "$bin" ./bench/goplugin/host ./bench/goplugin/plugin)

stream_feed() { echo '{"op":"unary","n":1,"size":1}'; sleep 1; echo '{"op":"stream","n":30000}'; sleep 1; for _ in 1 2 3; do echo '{"op":"stream","n":200000}'; sleep 1.2; done; }
mib_feed() { echo '{"op":"unary","n":1,"size":1}'; sleep 1; for _ in 1 2 3 4; do echo '{"op":"unary","n":30,"size":1048576}'; sleep 1.5; done; }
stream_out() { grep -o '"ops_per_s":[0-9.]*' | tail -3 | cut -d: -f2 | cut -d. -f1 | tr '\n' ' '; }
unary_feed() { echo '{"op":"unary","n":500,"size":16}'; sleep 1; for _ in 1 2 3; do echo '{"op":"unary","n":2000,"size":16}'; sleep 1.5; done; }
unary_out() { node -e 'const ls=require("fs").readFileSync(0,"utf8").trim().split("\n").slice(1).flatMap((l)=>JSON.parse(l).samples_us).sort((a,b)=>a-b); console.log(Math.round(ls[ls.length>>1]))'; }
mib_out() { node -e 'const ls=require("fs").readFileSync(0,"utf8").trim().split("\n").slice(2).flatMap((l)=>JSON.parse(l).samples_us).sort((a,b)=>a-b); console.log(Math.round(ls[ls.length>>1]))'; }

# The command of contender $1, in the array `cmd`.
contender() {
  case $1 in
    go-plugin) cmd=("$bin/host" "$bin/plugin");;
    go-plugin-automtls) cmd=("$bin/host" -automtls "$bin/plugin");;
    main-framed-automtls) cmd=(node "$main/bench/node-host.js" subprocess-framed x);;
    main-framed-plain) cmd=(node "$main/bench/node-host.js" subprocess-framed-plain x);;
    branch-framed-automtls) cmd=(node "$branch/bench/node-host.js" subprocess-framed x);;
    branch-framed-plain) cmd=(node "$branch/bench/node-host.js" subprocess-framed-plain x);;
    main-remote-framed) cmd=(node "$main/bench/node-host.js" remote-framed x);;
    main-remote-framed-tls) cmd=(node "$main/bench/node-host.js" remote-framed-tls x);;
    branch-remote-framed) cmd=(node "$branch/bench/node-host.js" remote-framed x);;
    branch-remote-framed-tls) cmd=(node "$branch/bench/node-host.js" remote-framed-tls x);;
  esac
}

names=${CONTENDERS:-go-plugin go-plugin-automtls main-framed-automtls main-framed-plain branch-framed-automtls branch-framed-plain}
for scenario in ${SCENARIOS:-stream mib}; do
  for round in $(seq 1 "$rounds"); do
    for c in $(echo "$names" | tr ' ' '\n' | shuf); do
      contender "$c"
      echo "$round $scenario $c $("${scenario}_feed" | timeout 60 "${cmd[@]}" 2>/dev/null | "${scenario}_out")"
    done
  done
done
