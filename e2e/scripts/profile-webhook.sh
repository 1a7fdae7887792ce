#!/usr/bin/env bash
# Flame graph of the release webhook's per-request path: the webhook pinned to CPU 0 answers
# keep-alive AdmissionReviews of the 3-broker KafkaCluster at RATE per second (default
# 15000) from the load tool on CPU 1 while `perf record` samples it (DWARF call graphs; this
# machine's perf has software clocks only, which is enough for where the time goes). inferno
# (crates.io) folds the stacks and draws the SVG. Usage: profile-webhook.sh [out.svg]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${KOP_E2E_CACHE:-$repo/.cache/e2e}
out=${1:-$repo/docs/flamegraph-webhook.svg}
rate=${RATE:-15000}
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }
tools=$repo/.cache/tools
[[ -x $tools/bin/inferno-flamegraph ]] || cargo install inferno --locked --root "$tools"
cd "$repo"
cargo build --release -p koperator-webhook
cargo build --release -p koperator-e2e --bin bench-webhook
data=$cache/perf-webhook.data
KOP_E2E_CACHE=$cache target/release/bench-webhook --profile-rate "$rate" --profile-out "$data"
perf script -i "$data" 2>/dev/null | "$tools/bin/inferno-collapse-perf" >"$cache/perf-webhook.folded"
"$tools/bin/inferno-flamegraph" --title "koperator-webhook at $rate reviews/s (keep-alive, one core)" \
  <"$cache/perf-webhook.folded" >"$out"
echo "flame graph: $out" >&2
