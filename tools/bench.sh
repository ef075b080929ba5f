#!/usr/bin/env bash
# Runs the benchmark suite (optimized build) on the embedded default, the
# "local" connector. Installs what it needs first. Writes Google Benchmark
# JSON to bench-out/ (or $PROXYSTORE_BENCH_OUT).
#
#   tools/bench.sh                 # the whole suite
#   tools/bench.sh --quick         # a short smoke pass (what CI runs)
#   tools/bench.sh --filter=REGEX  # only benchmarks matching REGEX
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
filter="."
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --filter=*) filter="${arg#--filter=}" ;;
    *) echo "usage: $0 [--quick] [--filter=REGEX]" >&2; exit 2 ;;
  esac
done

bash tools/setup.sh
out="${PROXYSTORE_BENCH_OUT:-bench-out}"
mkdir -p "$out"

bazel build --config=opt //bench:all
args=(--benchmark_filter="$filter" --benchmark_out_format=json)
if [ "$quick" -eq 1 ]; then
  args+=(--benchmark_min_time=0.01)
else
  args+=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true)
fi
for b in store_benchmark; do
  echo "=== $b"
  "bazel-bin/bench/$b" "${args[@]}" --benchmark_out="$out/$b.json"
done
echo "results: $out/"
