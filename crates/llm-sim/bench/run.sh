#!/usr/bin/env bash
# Throughput of llm-sim on ONE core with zero latency (see ../README.md).
# Needs wrk (apt-get install -y wrk) and a release build:
#   cargo build --release -p llm-sim
# Usage: crates/llm-sim/bench/run.sh [runs] [port]
set -euo pipefail
runs=${1:-3}
port=${2:-18090}
here=$(cd "$(dirname "$0")" && pwd)
target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/../Cargo.toml" |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target/release/llm-sim"

taskset -c 0 "$bin" --listen "127.0.0.1:$port" --worker-threads 1 --latency fixed:0 --tokens 16 \
  >/dev/null 2>&1 &
sim=$!
trap 'kill "$sim" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done

for i in $(seq "$runs"); do
  rps=$(taskset -c 1 wrk -t1 -c64 -d10s -s "$here/post.lua" \
    "http://127.0.0.1:$port/v1/chat/completions" | awk '/Requests\/sec/ {print $2}')
  echo "run $i: $rps req/s"
done
